//! `cargo xtask bench-wal [--seconds S]`: the write-ahead log's own
//! throughput table (the engine's workloads are `cargo xtask bench`).
//!
//! It measures the write-ahead log alone: writer
//! threads append batches of one put (16-byte key, 100-byte value) to a `Wal`
//! in a fresh temp directory on the real file system, for `S` seconds per row.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use kevo_core::OsFs;
use kevo_wal::{Batch, SyncMode, Wal, WalOptions};

const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;

/// What one row measured.
struct Row {
    records: u64,
    /// Log bytes written, framing included.
    bytes: u64,
    syncs: u64,
    seconds: f64,
    /// Per-append latencies of all writers, in nanoseconds, sorted.
    latencies: Vec<u64>,
}

impl Row {
    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

/// Runs the table; `args` are those after `bench`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let seconds = match args {
        [] => 2.0,
        [flag, s] if flag == "--seconds" => s
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .ok_or_else(|| format!("--seconds wants a positive number, not `{s}`"))?,
        _ => return Err("usage: cargo xtask bench-wal [--seconds S]".to_string()),
    };
    let per_row = Duration::from_secs_f64(seconds);
    let tmp = std::env::temp_dir();
    println!(
        "WAL append, one put per batch: {KEY_BYTES} B key + {VALUE_BYTES} B value ({} B batch); {seconds} s per row",
        batch(0, VALUE_BYTES).as_bytes().len()
    );
    println!(
        "temp dir: {} ({}), a fresh directory per row",
        tmp.display(),
        filesystem(&tmp)
    );
    if cfg!(debug_assertions) {
        println!(
            "note: debug build; `cargo run --release -p xtask -- bench` for optimised numbers"
        );
    }
    println!(
        "{:<34} {:>7} {:>10} {:>7} {:>7} {:>9} {:>8} {:>8}",
        "mode", "threads", "records/s", "MB/s", "syncs", "rec/sync", "p50 µs", "p99 µs"
    );

    // The fsync rows go first: the bulk writes of the unsynced rows slow
    // every fsync on this disk for seconds after.
    let mut always = Vec::new();
    for threads in [1, 2, 4, 8] {
        let row = fresh_row("Always", SyncMode::Always, threads, per_row)?;
        always.push((threads, row.records_per_s()));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let wal = recycled_wal(dir.path(), seconds)?;
    let started = wal.stats().segments_started;
    print_row(
        "Always, 1 writer, recycled segment",
        1,
        &measure(&wal, 1, per_row)?,
    );
    if wal.stats().segments_started != started {
        println!("  (the row outgrew the recycled file and went on in a new segment)");
    }
    let interval = SyncMode::Interval(Duration::from_millis(10));
    for (name, sync_mode) in [("Interval(10ms)", interval), ("None", SyncMode::None)] {
        for threads in [1, 4] {
            fresh_row(name, sync_mode, threads, per_row)?;
        }
    }

    let rate = |threads| {
        always
            .iter()
            .find(|&&(t, _)| t == threads)
            .map_or(0.0, |&(_, r)| r)
    };
    for threads in [4, 8] {
        println!(
            "group commit: Always {threads} writers / 1 writer = {:.2}x records/s",
            rate(threads) / rate(1)
        );
    }
    Ok(())
}

/// Measures and prints one row on a new log in a fresh temp directory.
fn fresh_row(
    name: &str,
    sync_mode: SyncMode,
    threads: usize,
    duration: Duration,
) -> Result<Row, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let wal = open(
        dir.path(),
        WalOptions {
            sync_mode,
            ..WalOptions::default()
        },
    )?;
    let row = measure(&wal, threads, duration)?;
    print_row(name, threads, &row);
    Ok(row)
}

/// Opens a new log in `dir` on the real file system.
fn open(dir: &Path, options: WalOptions) -> Result<Wal, String> {
    let (wal, _) = Wal::open(Arc::new(OsFs::new()), dir, options)
        .and_then(|recovery| recovery.finish())
        .map_err(|e| e.to_string())?;
    Ok(wal)
}

/// A batch of one put: a 16-byte key naming the writer, `value_len` bytes.
fn batch(writer: usize, value_len: usize) -> Batch {
    let mut batch = Batch::new();
    batch.set_seqno(1);
    batch.put(format!("writer-{writer:09}"), vec![b'v'; value_len]);
    batch
}

/// An `Always` log whose current segment reuses a full, allocated file, so
/// that appends overwrite blocks instead of growing the file. The segment
/// size allows for about 4 MB of records per second of the row.
fn recycled_wal(dir: &Path, seconds: f64) -> Result<Wal, String> {
    let options = WalOptions {
        sync_mode: SyncMode::Always,
        segment_bytes: ((seconds * 4e6) as u64).max(4 << 20),
        recycle_segments: 1,
        ..WalOptions::default()
    };
    let wal = open(dir, options)?;
    // Fill the first segment with large records until the log rolls over.
    let fill = batch(0, 64 << 10);
    let first = wal.current_segment();
    while wal.current_segment() == first {
        wal.append(&fill).map_err(|e| e.to_string())?;
    }
    // The full segment goes to the free pool, and the next one reuses it.
    wal.remove_segments_before(wal.current_segment())
        .map_err(|e| e.to_string())?;
    wal.rotate().map_err(|e| e.to_string())?;
    if wal.stats().segments_recycled != 1 {
        return Err("bench: the WAL did not recycle the free segment".to_string());
    }
    Ok(wal)
}

/// Runs `threads` writers on `wal` for `duration`, each appending until a
/// shared stop flag is set.
fn measure(wal: &Wal, threads: usize, duration: Duration) -> Result<Row, String> {
    let before = wal.stats();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let per_thread = thread::scope(|s| {
        let writers: Vec<_> = (0..threads)
            .map(|id| {
                let stop = &stop;
                s.spawn(move || append_until(wal, id, stop))
            })
            .collect();
        thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        writers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| "bench: a writer panicked".to_string())?
            })
            .collect::<Result<Vec<_>, String>>()
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let after = wal.stats();
    let mut latencies = per_thread.concat();
    latencies.sort_unstable();
    Ok(Row {
        records: after.appends - before.appends,
        bytes: after.bytes_written - before.bytes_written,
        syncs: after.syncs - before.syncs,
        seconds,
        latencies,
    })
}

/// One writer: appends its batch until `stop`; returns each append's latency
/// in nanoseconds.
fn append_until(wal: &Wal, id: usize, stop: &AtomicBool) -> Result<Vec<u64>, String> {
    let batch = batch(id, VALUE_BYTES);
    let mut latencies = Vec::with_capacity(1 << 16);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        wal.append(&batch).map_err(|e| e.to_string())?;
        latencies.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    Ok(latencies)
}

/// Prints one table row.
fn print_row(mode: &str, threads: usize, row: &Row) {
    let per_sync = match row.syncs {
        0 => "-".to_string(),
        syncs => format!("{:.1}", row.records as f64 / syncs as f64),
    };
    println!(
        "{mode:<34} {threads:>7} {:>10.0} {:>7.1} {:>7} {per_sync:>9} {:>8.1} {:>8.1}",
        row.records_per_s(),
        row.bytes as f64 / row.seconds / 1e6,
        row.syncs,
        percentile_us(&row.latencies, 0.50),
        percentile_us(&row.latencies, 0.99),
    );
}

/// The `q` quantile of sorted nanoseconds, in microseconds (0 if empty).
fn percentile_us(sorted: &[u64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0.0;
    };
    sorted[(last as f64 * q).round() as usize] as f64 / 1e3
}

/// The type and mount point of the file system holding `path`, from
/// `/proc/self/mounts` ("unknown file system" elsewhere).
fn filesystem(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            Some((fields.next()?, fields.next()?))
        })
        .filter(|(mount, _)| path.starts_with(mount))
        .max_by_key(|(mount, _)| mount.len())
        .map_or_else(
            || "unknown file system".to_string(),
            |(mount, kind)| format!("{kind} on {mount}"),
        )
}
