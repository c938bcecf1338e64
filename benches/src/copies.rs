//! The `checkpoint` workload (kevo only; `--only checkpoint`): how long a
//! checkpoint of an `N`-key database takes while a writer keeps writing,
//! and what an incremental backup copies after 1% of the keys changed.
//!
//! 1. `N` puts in fillrandom's order, flushed, compactions settled (not
//!    timed);
//! 2. a writer thread overwrites random keys without pause; meanwhile three
//!    `Db::checkpoint`s to fresh directories, each timed (tables
//!    hard-linked, WAL tail copied); the writer's puts/s during them;
//! 3. the writer stops; the first checkpoint is opened and counted (`N`
//!    keys);
//! 4. `Backup::create` into an empty backup directory (timed, bytes
//!    copied); `N / 100` keys overwritten; a second `Backup::create`: its
//!    bytes copied over the first's; `verify` and `restore` of the second,
//!    the restored database counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use kevo_engine::{Backup, Db};

use crate::engine::{Res, kevo_options};
use crate::workload::{Rng, Values, key};

fn err(e: kevo_engine::Error) -> String {
    format!("kevo: {e}")
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Keys in the database (a full scan).
fn count(db: &Db) -> Res<u64> {
    let mut n = 0;
    for item in db.range::<&[u8], _>(..) {
        item.map_err(err)?;
        n += 1;
    }
    Ok(n)
}

/// Runs the workload once and prints its rows.
pub(crate) fn run(num: u64, cache_bytes: usize, values: &Values, order: &[u64]) -> Res<()> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = Db::open_with(dir.path().join("db"), kevo_options(cache_bytes)).map_err(err)?;
    for &i in order {
        db.put(key(i), values.get(i)).map_err(err)?;
    }
    db.flush().map_err(err)?;
    db.wait_for_compactions().map_err(err)?;
    let stats = db.stats();
    println!(
        "checkpoint (kevo only): {num} keys, {} tables ({:.1} MiB); a writer overwrites random \
         keys throughout the checkpoints",
        stats.table_count(),
        mib(stats.table_bytes())
    );

    let stop = Arc::new(AtomicBool::new(false));
    let puts = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, puts) = (db.clone(), stop.clone(), puts.clone());
        let values = values.clone();
        std::thread::spawn(move || -> Res<()> {
            let mut rng = Rng::new(97);
            while !stop.load(Ordering::Relaxed) {
                let i = rng.below(num);
                db.put(key(i), values.get(i)).map_err(err)?;
                puts.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let mut times = Vec::new();
    for c in 0..3 {
        let target = dir.path().join(format!("cp{c}"));
        let (puts_before, started) = (puts.load(Ordering::Relaxed), Instant::now());
        let info = db.checkpoint(&target).map_err(err)?;
        let secs = started.elapsed().as_secs_f64();
        let during = puts.load(Ordering::Relaxed) - puts_before;
        println!(
            "cp checkpoint {c}: {:.3} s; {} tables ({:.1} MiB, {} hard-linked), {} WAL \
             segment(s), {:.1} MiB copied; the writer put {during} keys meanwhile",
            secs,
            info.tables,
            mib(info.table_bytes),
            info.tables_linked,
            info.wal_segments,
            mib(info.bytes_copied),
        );
        times.push(secs);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let written = puts.load(Ordering::Relaxed);
    writer
        .join()
        .map_err(|_| "the writer panicked".to_string())??;
    times.sort_by(f64::total_cmp);
    println!(
        "cp checkpoint median {:.3} s (lowest {:.3}, highest {:.3}); the writer put {written} \
         keys in all",
        times[1], times[0], times[2]
    );
    let copy = Db::open_with(dir.path().join("cp0"), kevo_options(cache_bytes)).map_err(err)?;
    let held = count(&copy)?;
    copy.close().map_err(err)?;
    if held != num {
        return Err(format!("checkpoint 0 holds {held} keys, not {num}"));
    }

    let backups = Backup::open(dir.path().join("backups")).map_err(err)?;
    let started = Instant::now();
    let first = backups.create(&db).map_err(err)?;
    let first_secs = started.elapsed().as_secs_f64();
    let mut rng = Rng::new(101);
    for _ in 0..num / 100 {
        let i = rng.below(num);
        db.put(key(i), values.get(i)).map_err(err)?;
    }
    let started = Instant::now();
    let second = backups.create(&db).map_err(err)?;
    let second_secs = started.elapsed().as_secs_f64();
    let (one, two) = (
        backups.info(first).map_err(err)?,
        backups.info(second).map_err(err)?,
    );
    println!(
        "cp backup 1: {:.1} MiB copied in {first_secs:.2} s; backup 2 after {} puts (1%): \
         {:.2} MiB copied ({:.4} of backup 1's), {:.1} MiB reused, {second_secs:.2} s",
        mib(one.bytes_copied),
        num / 100,
        mib(two.bytes_copied),
        two.bytes_copied as f64 / one.bytes_copied.max(1) as f64,
        mib(two.bytes_reused),
    );
    let started = Instant::now();
    backups.verify(second).map_err(err)?;
    let verify_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let target = dir.path().join("restored");
    backups.restore(second, &target).map_err(err)?;
    let restore_secs = started.elapsed().as_secs_f64();
    db.close().map_err(err)?;
    let restored = Db::open_with(&target, kevo_options(cache_bytes)).map_err(err)?;
    let held = count(&restored)?;
    restored.close().map_err(err)?;
    if held != num {
        return Err(format!("the restored backup holds {held} keys, not {num}"));
    }
    println!("cp verify backup 2: {verify_secs:.2} s; restore: {restore_secs:.2} s, {held} keys");
    Ok(())
}
