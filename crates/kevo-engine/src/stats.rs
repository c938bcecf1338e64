//! [`Stats`]: what `Db::stats` reports, and the counters behind it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::db::Shared;
use crate::lock;

/// Counters updated on the hot paths (relaxed atomics).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    writes: AtomicU64,
    write_groups: AtomicU64,
    entries_written: AtomicU64,
    flushes: AtomicU64,
    flush_bytes: AtomicU64,
    flush_entries: AtomicU64,
    flush_micros: AtomicU64,
    stall_micros: AtomicU64,
    slowdowns: AtomicU64,
    stops: AtomicU64,
    wal_tail_bytes_dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn new(wal_tail_bytes_dropped: u64) -> Self {
        let counters = Counters::default();
        counters
            .wal_tail_bytes_dropped
            .store(wal_tail_bytes_dropped, Ordering::Relaxed);
        counters
    }

    pub(crate) fn record_write_group(&self, batches: u64, entries: u64) {
        self.writes.fetch_add(batches, Ordering::Relaxed);
        self.write_groups.fetch_add(1, Ordering::Relaxed);
        self.entries_written.fetch_add(entries, Ordering::Relaxed);
    }

    pub(crate) fn record_flush(&self, bytes: u64, entries: u64, took: Duration) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flush_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.flush_entries.fetch_add(entries, Ordering::Relaxed);
        self.flush_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// A writer was delayed (`stopped == false`) or waited (`true`).
    pub(crate) fn record_stall(&self, took: Duration, stopped: bool) {
        self.stall_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let counter = if stopped {
            &self.stops
        } else {
            &self.slowdowns
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sizes of one level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelStats {
    /// Tables in the level.
    pub tables: usize,
    /// Their total file size.
    pub bytes: u64,
    /// Entries in them (tombstones included).
    pub entries: u64,
}

/// A plain snapshot of the database's counters and sizes, from
/// [`Db::stats`](crate::Db::stats). Counters run since the database was
/// opened. `Display` prints it for humans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Per level, L0 first.
    pub levels: Vec<LevelStats>,
    /// Bytes in the active memtable (approximate).
    pub memtable_bytes: u64,
    /// Immutable memtables waiting for a flush.
    pub immutable_memtables: usize,
    /// Bytes in them (approximate).
    pub immutable_memtable_bytes: u64,
    /// The newest sequence number visible to reads.
    pub last_seqno: u64,
    /// Write calls (batches) applied.
    pub writes: u64,
    /// Write groups (one WAL record each); `writes / write_groups` is the
    /// average group size.
    pub write_groups: u64,
    /// Puts and deletes applied.
    pub entries_written: u64,
    /// Bytes appended to the WAL (framing included).
    pub wal_bytes_written: u64,
    /// WAL syncs.
    pub wal_syncs: u64,
    /// Bytes of a torn WAL tail dropped by the recovery at open.
    pub wal_tail_bytes_dropped: u64,
    /// Memtable flushes.
    pub flushes: u64,
    /// Bytes of tables written by flushes.
    pub flush_bytes_written: u64,
    /// Entries written by flushes.
    pub flush_entries: u64,
    /// Time spent in flushes.
    pub flush_time: Duration,
    /// Total time writers were delayed or waited for room.
    pub stall_time: Duration,
    /// Writes delayed by the L0 slowdown trigger.
    pub slowdowns: u64,
    /// Writes that waited for a flush (or compaction).
    pub stops: u64,
    /// Block cache hits.
    pub block_cache_hits: u64,
    /// Block cache misses.
    pub block_cache_misses: u64,
    /// Bytes held by the block cache.
    pub block_cache_bytes: u64,
    /// Table readers open in the table cache.
    pub open_tables: usize,
    /// Live snapshots.
    pub snapshots: usize,
    /// The seqno of the oldest live snapshot, if any: what compaction must
    /// keep visible.
    pub oldest_snapshot: Option<u64>,
    /// Version edits written to the manifest.
    pub manifest_edits: u64,
    /// Times the manifest was rewritten from a snapshot.
    pub manifest_rewrites: u64,
    /// Why the database is read-only, if it is.
    pub read_only_cause: Option<String>,
}

impl Stats {
    /// Bytes of all live tables.
    pub fn table_bytes(&self) -> u64 {
        self.levels.iter().map(|l| l.bytes).sum()
    }

    /// Live tables.
    pub fn table_count(&self) -> usize {
        self.levels.iter().map(|l| l.tables).sum()
    }
}

pub(crate) fn collect(shared: &Shared) -> Stats {
    let c = &shared.counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (memtable_bytes, immutable_memtables, immutable_memtable_bytes, version) = {
        let state = lock(&shared.mem);
        (
            state.mem.approximate_bytes() as u64,
            state.imms.len(),
            state
                .imms
                .iter()
                .map(|imm| imm.table.approximate_bytes() as u64)
                .sum(),
            state.version.clone(),
        )
    };
    let levels = (0..version.num_levels())
        .map(|level| LevelStats {
            tables: version.level(level).len(),
            bytes: version.level_bytes(level),
            entries: version.level(level).iter().map(|t| t.entries).sum(),
        })
        .collect();
    let wal = shared
        .wal
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|wal| wal.stats())
        .unwrap_or_default();
    let manifest = shared.versions.stats();
    let (snapshots, oldest_snapshot) = {
        let live = lock(&shared.snapshots);
        (live.values().sum(), live.keys().next().copied())
    };
    let (hits, misses, cache_bytes) = shared.tables.block_cache().map_or((0, 0, 0), |cache| {
        use kevo_sstable::BlockCache as _;
        (
            get(&cache.hits),
            get(&cache.misses),
            cache.used_bytes() as u64,
        )
    });
    Stats {
        levels,
        memtable_bytes,
        immutable_memtables,
        immutable_memtable_bytes,
        last_seqno: shared.visible_seqno.load(Ordering::Acquire),
        writes: get(&c.writes),
        write_groups: get(&c.write_groups),
        entries_written: get(&c.entries_written),
        wal_bytes_written: wal.bytes_written,
        wal_syncs: wal.syncs,
        wal_tail_bytes_dropped: get(&c.wal_tail_bytes_dropped),
        flushes: get(&c.flushes),
        flush_bytes_written: get(&c.flush_bytes),
        flush_entries: get(&c.flush_entries),
        flush_time: Duration::from_micros(get(&c.flush_micros)),
        stall_time: Duration::from_micros(get(&c.stall_micros)),
        slowdowns: get(&c.slowdowns),
        stops: get(&c.stops),
        block_cache_hits: hits,
        block_cache_misses: misses,
        block_cache_bytes: cache_bytes,
        open_tables: shared.tables.len(),
        snapshots,
        oldest_snapshot,
        manifest_edits: manifest.edits,
        manifest_rewrites: manifest.rewrites,
        read_only_cause: shared.bg_error.get().map(|e| e.to_string()),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "level  tables      MiB      entries")?;
        for (level, l) in self.levels.iter().enumerate() {
            if l.tables > 0 || level == 0 {
                writeln!(
                    f,
                    "L{level:<5} {:>6} {:>8.1} {:>12}",
                    l.tables,
                    mib(l.bytes),
                    l.entries
                )?;
            }
        }
        writeln!(
            f,
            "total  {:>6} {:>8.1}",
            self.table_count(),
            mib(self.table_bytes())
        )?;
        writeln!(
            f,
            "memtable {:.1} MiB, {} immutable ({:.1} MiB); last seqno {}",
            mib(self.memtable_bytes),
            self.immutable_memtables,
            mib(self.immutable_memtable_bytes),
            self.last_seqno
        )?;
        let group = if self.write_groups == 0 {
            0.0
        } else {
            self.writes as f64 / self.write_groups as f64
        };
        writeln!(
            f,
            "writes {} in {} groups ({group:.2} per group), {} entries; WAL {:.1} MiB, {} syncs",
            self.writes,
            self.write_groups,
            self.entries_written,
            mib(self.wal_bytes_written),
            self.wal_syncs
        )?;
        writeln!(
            f,
            "flushes {} ({} entries, {:.1} MiB, {:.2} s); stalls {:.3} s ({} slowdowns, {} waits)",
            self.flushes,
            self.flush_entries,
            mib(self.flush_bytes_written),
            self.flush_time.as_secs_f64(),
            self.stall_time.as_secs_f64(),
            self.slowdowns,
            self.stops
        )?;
        let lookups = self.block_cache_hits + self.block_cache_misses;
        let ratio = if lookups == 0 {
            0.0
        } else {
            100.0 * self.block_cache_hits as f64 / lookups as f64
        };
        writeln!(
            f,
            "block cache {:.1} MiB, {} hits, {} misses ({ratio:.1}% hit); {} tables open; {} snapshots",
            mib(self.block_cache_bytes),
            self.block_cache_hits,
            self.block_cache_misses,
            self.open_tables,
            self.snapshots
        )?;
        write!(
            f,
            "manifest {} edits, {} rewrites",
            self.manifest_edits, self.manifest_rewrites
        )?;
        if let Some(cause) = &self.read_only_cause {
            write!(f, "\nREAD-ONLY: {cause}")?;
        }
        Ok(())
    }
}
