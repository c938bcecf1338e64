#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! `Wal::append` on a real directory (`OsFs` in a fresh temp dir): one put
//! per batch, 16-byte key, 100 B and 1 KiB values, in every sync mode, plus
//! `Always` on a fresh segment versus a recycled (already allocated) one.
//!
//! `cargo bench -p kevo-wal --bench append` takes about 70 s;
//! add a filter (`-- always`) or `--quick` for less.

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
    measurement::WallTime,
};
use kevo_core::OsFs;
use kevo_wal::{
    Batch, FRAGMENT_HEADER_BYTES, SEGMENT_HEADER_BYTES, SyncMode, Wal, WalOptions,
    segment_file_name,
};

const KEY_BYTES: usize = 16;
const VALUE_SIZES: [(usize, &str); 2] = [(100, "100B"), (1024, "1KiB")];
const RECYCLE_SEGMENT_BYTES: u64 = 8 << 20;
/// Record bytes used of each segment in the fresh/recycled group: less than
/// the recycled file's length (a full segment less one 64 KiB fill record).
const SEGMENT_CAPACITY: u64 = RECYCLE_SEGMENT_BYTES - (128 << 10);

fn open(dir: &Path, options: WalOptions) -> Wal {
    Wal::open(Arc::new(OsFs::new()), dir, options)
        .unwrap()
        .finish()
        .unwrap()
        .0
}

/// One put of a 16-byte key (distinct per writer) and a `value_len` value.
fn batch(writer: usize, value_len: usize) -> Batch {
    let mut batch = Batch::new();
    batch.set_seqno(1);
    let key = format!("key-{writer:012}");
    assert_eq!(key.len(), KEY_BYTES);
    batch.put(key.as_bytes(), vec![b'v'; value_len]);
    batch
}

/// Appends `iters` batches from `writers` threads sharing the log; returns
/// the wall time of the whole run.
fn append_timed(wal: &Wal, batches: &[Batch], iters: u64) -> Duration {
    let writers = batches.len() as u64;
    let started = Instant::now();
    thread::scope(|s| {
        for (i, batch) in batches.iter().enumerate() {
            let n = iters / writers + u64::from((i as u64) < iters % writers);
            s.spawn(move || {
                for _ in 0..n {
                    wal.append(batch).unwrap();
                }
            });
        }
    });
    started.elapsed()
}

/// Drops sealed segments so that long runs do not fill the disk (untimed).
fn trim(wal: &Wal) {
    wal.remove_segments_before(wal.current_segment()).unwrap();
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, fsyncs: bool) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    if fsyncs {
        // ~7k syncs/s: few, equally long samples.
        group
            .sampling_mode(SamplingMode::Flat)
            .measurement_time(Duration::from_secs(4));
    } else {
        group.measurement_time(Duration::from_secs(2));
    }
}

/// `Always` with one and four writers (run first: the bulk writes of the
/// unsynced modes slow every fsync for seconds after).
fn synced(c: &mut Criterion) {
    modes(
        c,
        &[
            ("always_1_writer", SyncMode::Always, 1),
            ("always_4_writers", SyncMode::Always, 4),
        ],
    );
}

/// `None` and `Interval(10 ms)`, one writer.
fn buffered(c: &mut Criterion) {
    let interval = SyncMode::Interval(Duration::from_millis(10));
    modes(
        c,
        &[("none", SyncMode::None, 1), ("interval_10ms", interval, 1)],
    );
}

/// One group per (name, sync mode, writers) case, with both value sizes.
fn modes(c: &mut Criterion, cases: &[(&str, SyncMode, usize)]) {
    for &(name, sync_mode, writers) in cases {
        let mut group = c.benchmark_group(format!("append/{name}"));
        configure(&mut group, sync_mode == SyncMode::Always);
        group.throughput(Throughput::Elements(1));
        for (value_len, label) in VALUE_SIZES {
            let dir = tempfile::tempdir().unwrap();
            let wal = open(
                dir.path(),
                WalOptions {
                    sync_mode,
                    ..WalOptions::default()
                },
            );
            let batches: Vec<Batch> = (0..writers).map(|w| batch(w, value_len)).collect();
            group.bench_function(label, |b| {
                b.iter_custom(|iters| {
                    let elapsed = append_timed(&wal, &batches, iters);
                    trim(&wal);
                    elapsed
                });
            });
        }
        group.finish();
    }
}

/// A log whose current segment can be made to reuse an allocated file of
/// [`RECYCLE_SEGMENT_BYTES`] (when `recycled`) or be a new, empty one.
struct SegmentBench {
    wal: Wal,
    dir: tempfile::TempDir,
    recycled: bool,
    /// `bytes_written` when the current segment started.
    segment_start: u64,
}

impl SegmentBench {
    fn new(recycled: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions {
            sync_mode: SyncMode::Always,
            segment_bytes: RECYCLE_SEGMENT_BYTES,
            recycle_segments: usize::from(recycled),
            ..WalOptions::default()
        };
        let wal = open(dir.path(), options);
        let mut bench = SegmentBench {
            wal,
            dir,
            recycled,
            segment_start: 0,
        };
        if recycled {
            // Fill one segment with large records until the log rolls over.
            let fill = batch(0, 64 * 1024);
            let first = bench.wal.current_segment();
            while bench.wal.current_segment() == first {
                bench.wal.append(&fill).unwrap();
            }
        }
        bench.next_segment();
        bench
    }

    /// Moves to a new current segment: a recycled full-size file, or a new
    /// one. Keeps at most one small spare file in the free pool.
    fn next_segment(&mut self) {
        let wal = &self.wal;
        if self.recycled {
            // Free the full previous segment, then rotate into it (the
            // rotation takes the only free file); free the small one after.
            wal.remove_segments_before(wal.current_segment()).unwrap();
            let before = wal.stats().segments_recycled;
            wal.rotate().unwrap();
            assert_eq!(
                wal.stats().segments_recycled,
                before + 1,
                "segment not recycled"
            );
            trim(wal);
            let path = self
                .dir
                .path()
                .join(segment_file_name(wal.current_segment()));
            assert!(std::fs::metadata(path).unwrap().len() >= SEGMENT_CAPACITY);
        } else {
            wal.rotate().unwrap();
            trim(wal);
        }
        self.segment_start = wal.stats().bytes_written;
    }

    /// Appends `iters` batches with one writer, moving to the next segment
    /// (untimed) whenever the current one cannot hold the next chunk.
    fn run(&mut self, batch: &Batch, iters: u64) -> Duration {
        let record_max = (batch.as_bytes().len() + 3 * FRAGMENT_HEADER_BYTES) as u64;
        let capacity = SEGMENT_CAPACITY - SEGMENT_HEADER_BYTES as u64;
        let mut left = iters;
        let mut elapsed = Duration::ZERO;
        while left > 0 {
            let used = self.wal.stats().bytes_written - self.segment_start;
            let room = capacity.saturating_sub(used) / record_max;
            if room == 0 {
                if self.recycled {
                    // Rotate first, so the full current file becomes the
                    // previous segment that `next_segment` reuses.
                    self.wal.rotate().unwrap();
                }
                self.next_segment();
                continue;
            }
            let n = room.min(left);
            elapsed += append_timed(&self.wal, std::slice::from_ref(batch), n);
            left -= n;
        }
        elapsed
    }
}

/// `Always`, one writer: appending into a new file (each sync also journals
/// the file's growth) versus overwriting a recycled, allocated file.
fn recycling(c: &mut Criterion) {
    let mut group = c.benchmark_group("append/always_1_writer_segment");
    configure(&mut group, true);
    group.throughput(Throughput::Elements(1));
    let batch = batch(0, VALUE_SIZES[0].0);
    for (label, recycled) in [("fresh_100B", false), ("recycled_100B", true)] {
        let mut bench = SegmentBench::new(recycled);
        group.bench_function(label, |b| b.iter_custom(|iters| bench.run(&batch, iters)));
    }
    group.finish();
}

criterion_group!(benches, synced, recycling, buffered);
criterion_main!(benches);
