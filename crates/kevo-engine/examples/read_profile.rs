//! One read shape in a loop, for a profiler: opens the database at `DIR`
//! (filling it first, if it does not exist, with 1 M keys as `cargo xtask
//! bench` writes them: 16-byte keys in random order, 100-byte values, then
//! flushed and settled) and runs `MODE` for `ROUNDS` rounds, printing each
//! round's rate, so that `perf record` sees that shape and nothing else.
//!
//! ```text
//! cargo build --release -p kevo-engine --example read_profile
//! perf record -e cpu-clock -g target/release/examples/read_profile /tmp/rp MODE [ROUNDS] [CACHE_MIB]
//! ```
//!
//! `MODE`: `get1`, `get2` (1 M random gets on 1 or 2 threads), `cursor`
//! (a full scan with `Db::cursor`), `range` (a full scan with
//! `Db::range`) or `seek` (100 k seeks as the bench's seekrandom: a new
//! cursor, a seek, 10 nexts; the rate is still per key, 10 per seek). `CACHE_MIB` (default 64) is the block cache.

use std::time::{Duration, Instant};

use kevo_engine::{Db, Error, Options, Result};

mod common;

use common::{KEYS, key, next, shuffled, value};

fn usage() -> Error {
    Error::InvalidArgument(
        "usage: read_profile DIR get1|get2|cursor|range|seek [ROUNDS] [CACHE_MIB]".to_string(),
    )
}

fn fill(db: &Db) -> Result<()> {
    let value = value();
    for i in shuffled(12_345) {
        db.put(key(i), &value)?;
    }
    db.flush()?;
    db.wait_for_compactions()?;
    // As the bench's chain rests: the idle compaction runs after 1 s.
    std::thread::sleep(Duration::from_millis(1500));
    db.wait_for_compactions()
}

/// `KEYS` random gets spread over `threads` threads; every key must exist.
fn gets(db: &Db, threads: u64) -> Result<u64> {
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<u64> {
                    let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (t + 1);
                    let mut found = 0;
                    for _ in 0..KEYS / threads {
                        found += u64::from(db.get(key(next(&mut rng) % KEYS))?.is_some());
                    }
                    Ok(found)
                })
            })
            .collect();
        runs.into_iter().try_fold(0, |sum, run| match run.join() {
            Ok(found) => Ok(sum + found?),
            Err(panic) => std::panic::resume_unwind(panic),
        })
    })
}

/// `KEYS / 10` seeks as the bench's seekrandom makes them (a new cursor,
/// a seek to a random existing key, 10 nexts); counts 10 per seek that
/// finds its key, so that a full run counts `KEYS`.
fn seeks(db: &Db) -> Result<u64> {
    let mut rng = 0x2545_f491_4f6c_dd1d;
    let mut found = 0;
    for _ in 0..KEYS / 10 {
        let target = key(next(&mut rng) % KEYS);
        let mut cursor = db.cursor();
        cursor.seek(target)?;
        if cursor.key() == target.as_slice() {
            found += 10;
        }
        for _ in 0..10 {
            if !cursor.valid() {
                break;
            }
            cursor.next()?;
        }
    }
    Ok(found)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(mode)) = (args.get(1), args.get(2)) else {
        return Err(usage());
    };
    let number = |i: usize, default: u64| match args.get(i) {
        Some(s) => s.parse::<u64>().map_err(|_| usage()),
        None => Ok(default),
    };
    let (rounds, cache_mib) = (number(3, 3)?, number(4, 64)?);
    let fresh = !std::path::Path::new(dir).exists();
    let options = Options::default().block_cache_bytes((cache_mib as usize) << 20);
    let db = Db::open_with(dir, options)?;
    if fresh {
        fill(&db)?;
    }
    for _ in 0..rounds {
        let started = Instant::now();
        let done = match mode.as_str() {
            "get1" => gets(&db, 1)?,
            "get2" => gets(&db, 2)?,
            "cursor" => {
                let (mut cursor, mut n) = (db.cursor(), 0);
                cursor.seek_to_first()?;
                while cursor.valid() {
                    n += u64::from(!cursor.key().is_empty() && !cursor.value().is_empty());
                    cursor.next()?;
                }
                n
            }
            "seek" => seeks(&db)?,
            "range" => {
                let mut n = 0;
                for item in db.range::<&[u8], _>(..) {
                    let (key, value) = item?;
                    n += u64::from(!key.is_empty() && !value.is_empty());
                }
                n
            }
            _ => return Err(usage()),
        };
        if done != KEYS {
            return Err(Error::InvalidArgument(format!(
                "{mode} saw {done} of {KEYS} keys: {dir} holds another database"
            )));
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{mode}: {:.0} k/s, {:.1} ns each",
            KEYS as f64 / seconds / 1e3,
            seconds * 1e9 / KEYS as f64
        );
    }
    db.close()
}
