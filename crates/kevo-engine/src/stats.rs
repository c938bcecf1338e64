//! [`Stats`]: what `Db::stats` reports, and the counters behind it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kevo_compaction::CompactionStats;
use kevo_manifest::{ManifestStats, NUM_LEVELS, Version};
use kevo_wal::WalStats;

use crate::keyspace::KeyspaceCore;

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
    user_bytes: AtomicU64,
    /// Per output level.
    compaction: [LevelCounters; NUM_LEVELS],
    compaction_errors: AtomicU64,
    resumes: AtomicU64,
    tables_deleted: AtomicU64,
    bytes_deleted: AtomicU64,
    covered_dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct LevelCounters {
    compactions: AtomicU64,
    trivial_moves: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    tables_read: AtomicU64,
    tables_written: AtomicU64,
    versions_dropped: AtomicU64,
    tombstones_dropped: AtomicU64,
    micros: AtomicU64,
}

impl Counters {
    pub(crate) fn new(wal_tail_bytes_dropped: u64) -> Self {
        let counters = Counters::default();
        counters
            .wal_tail_bytes_dropped
            .store(wal_tail_bytes_dropped, Ordering::Relaxed);
        counters
    }

    pub(crate) fn record_write_group(&self, batches: u64, entries: u64, user_bytes: u64) {
        self.user_bytes.fetch_add(user_bytes, Ordering::Relaxed);
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

    pub(crate) fn record_compaction(&self, output_level: usize, stats: &CompactionStats) {
        let Some(level) = self.compaction.get(output_level) else {
            return;
        };
        let add = |counter: &AtomicU64, value: u64| {
            counter.fetch_add(value, Ordering::Relaxed);
        };
        add(&self.covered_dropped, stats.covered_dropped);
        if stats.tables_deleted > 0 {
            // A delete-only compaction: tables dropped, nothing read.
            add(&self.tables_deleted, stats.tables_deleted);
            add(&self.bytes_deleted, stats.bytes_deleted);
            return;
        }
        add(&level.compactions, 1);
        if stats.tables_written == 0 && stats.bytes_written == 0 && stats.tables_read > 0 {
            add(&level.trivial_moves, 1);
        } else {
            add(&level.bytes_read, stats.bytes_read);
            add(&level.bytes_written, stats.bytes_written);
            add(&level.tables_read, stats.tables_read);
            add(&level.tables_written, stats.tables_written);
        }
        add(&level.versions_dropped, stats.versions_dropped);
        add(&level.tombstones_dropped, stats.tombstones_dropped);
        add(&level.micros, stats.duration.as_micros() as u64);
    }

    /// A compaction failed (it is retried, or its caller told).
    pub(crate) fn record_compaction_error(&self) {
        self.compaction_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_resume(&self) {
        self.resumes.fetch_add(1, Ordering::Relaxed);
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

/// Compactions whose output went to one level, since open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelCompactionStats {
    /// Compactions (trivial moves included).
    pub compactions: u64,
    /// Tables moved down without rewriting.
    pub trivial_moves: u64,
    /// Bytes of input tables read.
    pub bytes_read: u64,
    /// Bytes of output tables written.
    pub bytes_written: u64,
    /// Input tables.
    pub tables_read: u64,
    /// Output tables.
    pub tables_written: u64,
    /// Overwritten versions no snapshot needed, dropped.
    pub versions_dropped: u64,
    /// Tombstones dropped at the bottom.
    pub tombstones_dropped: u64,
    /// Time spent.
    pub time: Duration,
}

/// One live table, from [`Db::table_files`](crate::Db::table_files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFile {
    /// Its level.
    pub level: usize,
    /// Its file number (`NNNNNN.sst`).
    pub number: u64,
    /// Its size in bytes.
    pub file_size: u64,
    /// Smallest user key.
    pub smallest_key: bytes::Bytes,
    /// Largest user key.
    pub largest_key: bytes::Bytes,
    /// Smallest seqno.
    pub smallest_seqno: u64,
    /// Largest seqno.
    pub largest_seqno: u64,
    /// Entries, tombstones included.
    pub entries: u64,
    /// Tombstones.
    pub tombstones: u64,
}

impl TableFile {
    /// Every table of `version`, level by level (L0 newest first).
    pub(crate) fn all(version: &Version) -> Vec<TableFile> {
        version
            .tables()
            .map(|(level, t)| TableFile {
                level,
                number: t.number,
                file_size: t.file_size,
                smallest_key: bytes::Bytes::copy_from_slice(t.smallest_user_key()),
                largest_key: bytes::Bytes::copy_from_slice(t.largest_user_key()),
                smallest_seqno: t.smallest_seqno,
                largest_seqno: t.largest_seqno,
                entries: t.entries,
                tombstones: t.tombstones,
            })
            .collect()
    }
}

/// Sizes of one level.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LevelStats {
    /// Tables in the level.
    pub tables: usize,
    /// Their total file size.
    pub bytes: u64,
    /// Entries in them (tombstones included).
    pub entries: u64,
    /// The compaction strategy's target size (0 where it sets none).
    pub target_bytes: u64,
    /// The strategy's score: a compaction is due at 1 or more.
    pub score: f64,
    /// Compactions into this level.
    pub compaction: LevelCompactionStats,
}

/// One keyspace's levels and memtables, from
/// [`Keyspace::stats`](crate::Keyspace::stats) and in [`Stats::keyspaces`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct KeyspaceStats {
    /// Its name.
    pub name: String,
    /// Per level, L0 first (sizes and scores; compaction counters are kept
    /// for the whole database, in [`Stats::levels`]).
    pub levels: Vec<LevelStats>,
    /// Bytes in its active memtable (approximate).
    pub memtable_bytes: u64,
    /// Its immutable memtables waiting for a flush, and their bytes.
    pub immutable_memtables: usize,
    /// Bytes in its immutable memtables.
    pub immutable_memtable_bytes: u64,
    /// Its strategy's estimate of the bytes compaction is behind.
    pub pending_compaction_bytes: u64,
    /// Its compaction strategy (`leveled` or `tiered`).
    pub compaction_style: &'static str,
}

impl KeyspaceStats {
    /// The stats of `keyspace` now.
    pub(crate) fn of(keyspace: &KeyspaceCore) -> KeyspaceStats {
        let memory = keyspace.read.memory_use();
        let settings = keyspace.settings();
        let scores = settings.strategy.level_scores(&memory.version);
        let version = &memory.version;
        let levels = (0..version.num_levels())
            .map(|level| {
                let score = scores.iter().find(|s| s.level == level);
                LevelStats {
                    tables: version.level(level).len(),
                    bytes: version.level_bytes(level),
                    entries: version.level(level).iter().map(|t| t.entries).sum(),
                    target_bytes: score.map_or(0, |s| s.target_bytes),
                    score: score.map_or(0.0, |s| s.score),
                    compaction: LevelCompactionStats::default(),
                }
            })
            .collect();
        KeyspaceStats {
            name: keyspace.name.clone(),
            levels,
            memtable_bytes: memory.memtable_bytes,
            immutable_memtables: memory.immutables,
            immutable_memtable_bytes: memory.immutable_bytes,
            pending_compaction_bytes: memory.pending_compaction_bytes,
            compaction_style: settings.strategy.name(),
        }
    }

    /// Bytes of its live tables.
    pub fn table_bytes(&self) -> u64 {
        self.levels.iter().map(|l| l.bytes).sum()
    }

    /// Its live tables.
    pub fn table_count(&self) -> usize {
        self.levels.iter().map(|l| l.tables).sum()
    }
}

/// A plain snapshot of the database's counters and sizes, from
/// [`Db::stats`](crate::Db::stats). Counters run since the database was
/// opened. `Display` prints it for humans.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Per level, L0 first, summed over every keyspace (the compaction
    /// counters are the database's).
    pub levels: Vec<LevelStats>,
    /// Each keyspace's levels and memtables, the default first.
    pub keyspaces: Vec<KeyspaceStats>,
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
    /// WAL segments started since open (one per memtable switch, however
    /// many keyspaces switch together, recycled files included).
    pub wal_segments_started: u64,
    /// The longest a WAL rotation (a memtable switch) held up writes.
    pub wal_slowest_rotation: Duration,
    /// Bytes of a torn WAL tail dropped by the recovery at open (by a
    /// read-only open: skipped in memory, left in the file).
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
    /// The block cache's capacity now (under a memory budget: the budget's
    /// cache share less `table_metadata_bytes` and `pinned_block_bytes`).
    pub block_cache_capacity: u64,
    /// Index and filter blocks of the open tables (held in memory beside
    /// the block cache).
    pub table_metadata_bytes: u64,
    /// Data blocks table cursors hold (iterators, cursors, gets and
    /// compactions in flight); partly also in the block cache.
    pub pinned_block_bytes: u64,
    /// [`Options::memory_budget_bytes`](crate::Options::memory_budget_bytes)
    /// (0: none).
    pub memory_budget_bytes: u64,
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
    /// Why the database is read-only, if it is: the background error, or,
    /// for a database opened with
    /// [`Db::open_read_only`](crate::Db::open_read_only), that it was
    /// opened read-only ([`Error::OpenedReadOnly`](crate::Error::OpenedReadOnly)'s
    /// message).
    pub read_only_cause: Option<String>,
    /// Times the database was made writable again after a background
    /// error ([`Db::resume`](crate::Db::resume) or automatically).
    pub resumes: u64,
    /// Key and value bytes the caller wrote (puts and deletes).
    pub user_bytes_written: u64,
    /// Compactions run (all levels).
    pub compactions: u64,
    /// Bytes read by compactions.
    pub compaction_bytes_read: u64,
    /// Bytes written by compactions.
    pub compaction_bytes_written: u64,
    /// Time spent in compactions.
    pub compaction_time: Duration,
    /// Compactions that failed (retried later).
    pub compaction_errors: u64,
    /// Tables removed whole by delete-only compactions (covered by a range
    /// tombstone every reader sees), without reading or writing them.
    pub tables_deleted_whole: u64,
    /// Their bytes.
    pub bytes_deleted_whole: u64,
    /// Entries compactions dropped because a range tombstone deleted them.
    pub range_deleted_entries_dropped: u64,
    /// The strategy's estimate of bytes compaction is behind.
    pub pending_compaction_bytes: u64,
    /// The compaction strategy (`leveled` or `tiered`).
    pub compaction_style: &'static str,
    /// kevo's files in the directory that the manifest could not explain
    /// at open (say, a table a format 1 manifest never named): left in
    /// place, never deleted on a guess. Look at them with the file tools,
    /// or let `repair` decide.
    pub unexplained_files: Vec<String>,
}

impl Stats {
    /// Write amplification: bytes written to disk (WAL, flushes,
    /// compactions) per byte the caller wrote; 0 before any write.
    pub fn write_amplification(&self) -> f64 {
        if self.user_bytes_written == 0 {
            return 0.0;
        }
        (self.wal_bytes_written + self.flush_bytes_written + self.compaction_bytes_written) as f64
            / self.user_bytes_written as f64
    }

    /// Bytes of all live tables.
    pub fn table_bytes(&self) -> u64 {
        self.levels.iter().map(|l| l.bytes).sum()
    }

    /// The memory the parts a budget covers hold now: memtables (active
    /// and immutable), the block cache, the open tables' index and filter
    /// blocks, and the blocks cursors hold (which may count a block the
    /// cache holds too, so this errs high).
    pub fn memory_bytes(&self) -> u64 {
        self.memtable_bytes
            + self.immutable_memtable_bytes
            + self.block_cache_bytes
            + self.table_metadata_bytes
            + self.pinned_block_bytes
    }

    /// Live tables.
    pub fn table_count(&self) -> usize {
        self.levels.iter().map(|l| l.tables).sum()
    }
}

/// Memory figures besides the memtables and the cache's bytes (see
/// [`Stats::memory_bytes`]).
#[derive(Debug, Default)]
pub(crate) struct MemoryGauges {
    pub(crate) cache_capacity: u64,
    pub(crate) table_metadata: u64,
    pub(crate) pinned_blocks: u64,
    pub(crate) budget: u64,
}

/// What the engine's components report at the moment of a
/// [`Counters::stats`] call: everything in [`Stats`] that is not counted.
#[derive(Debug)]
pub(crate) struct Gauges {
    /// Every keyspace, the default first.
    pub(crate) keyspaces: Vec<KeyspaceStats>,
    pub(crate) last_seqno: u64,
    pub(crate) wal: WalStats,
    pub(crate) manifest: ManifestStats,
    pub(crate) snapshots: usize,
    pub(crate) oldest_snapshot: Option<u64>,
    /// Block cache hits, misses and bytes held.
    pub(crate) cache: (u64, u64, u64),
    pub(crate) memory: MemoryGauges,
    pub(crate) open_tables: usize,
    pub(crate) read_only_cause: Option<String>,
    pub(crate) unexplained_files: Vec<String>,
}

impl Counters {
    /// The counters and `gauges` as one [`Stats`].
    pub(crate) fn stats(&self, gauges: Gauges) -> Stats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ks = &gauges.keyspaces;
        let num_levels = ks
            .iter()
            .map(|k| k.levels.len())
            .max()
            .unwrap_or(NUM_LEVELS);
        let levels: Vec<LevelStats> = (0..num_levels)
            .map(|level| {
                let of = |k: &KeyspaceStats| k.levels.get(level).copied().unwrap_or_default();
                let l = &self.compaction[level.min(NUM_LEVELS - 1)];
                LevelStats {
                    tables: ks.iter().map(|k| of(k).tables).sum(),
                    bytes: ks.iter().map(|k| of(k).bytes).sum(),
                    entries: ks.iter().map(|k| of(k).entries).sum(),
                    target_bytes: ks.iter().map(|k| of(k).target_bytes).sum(),
                    score: ks.iter().map(|k| of(k).score).fold(0.0, f64::max),
                    compaction: LevelCompactionStats {
                        compactions: get(&l.compactions),
                        trivial_moves: get(&l.trivial_moves),
                        bytes_read: get(&l.bytes_read),
                        bytes_written: get(&l.bytes_written),
                        tables_read: get(&l.tables_read),
                        tables_written: get(&l.tables_written),
                        versions_dropped: get(&l.versions_dropped),
                        tombstones_dropped: get(&l.tombstones_dropped),
                        time: Duration::from_micros(get(&l.micros)),
                    },
                }
            })
            .collect();
        let (hits, misses, cache_bytes) = gauges.cache;
        Stats {
            memtable_bytes: ks.iter().map(|k| k.memtable_bytes).sum(),
            immutable_memtables: ks.iter().map(|k| k.immutable_memtables).sum(),
            immutable_memtable_bytes: ks.iter().map(|k| k.immutable_memtable_bytes).sum(),
            last_seqno: gauges.last_seqno,
            writes: get(&self.writes),
            write_groups: get(&self.write_groups),
            entries_written: get(&self.entries_written),
            wal_bytes_written: gauges.wal.bytes_written,
            wal_syncs: gauges.wal.syncs,
            wal_segments_started: gauges.wal.segments_started,
            wal_slowest_rotation: gauges.wal.slowest_rotation,
            wal_tail_bytes_dropped: get(&self.wal_tail_bytes_dropped),
            flushes: get(&self.flushes),
            flush_bytes_written: get(&self.flush_bytes),
            flush_entries: get(&self.flush_entries),
            flush_time: Duration::from_micros(get(&self.flush_micros)),
            stall_time: Duration::from_micros(get(&self.stall_micros)),
            slowdowns: get(&self.slowdowns),
            stops: get(&self.stops),
            block_cache_hits: hits,
            block_cache_misses: misses,
            block_cache_bytes: cache_bytes,
            block_cache_capacity: gauges.memory.cache_capacity,
            table_metadata_bytes: gauges.memory.table_metadata,
            pinned_block_bytes: gauges.memory.pinned_blocks,
            memory_budget_bytes: gauges.memory.budget,
            open_tables: gauges.open_tables,
            snapshots: gauges.snapshots,
            oldest_snapshot: gauges.oldest_snapshot,
            manifest_edits: gauges.manifest.edits,
            manifest_rewrites: gauges.manifest.rewrites,
            read_only_cause: gauges.read_only_cause,
            resumes: get(&self.resumes),
            user_bytes_written: get(&self.user_bytes),
            compactions: levels.iter().map(|l| l.compaction.compactions).sum(),
            compaction_bytes_read: levels.iter().map(|l| l.compaction.bytes_read).sum(),
            compaction_bytes_written: levels.iter().map(|l| l.compaction.bytes_written).sum(),
            compaction_time: levels.iter().map(|l| l.compaction.time).sum(),
            compaction_errors: get(&self.compaction_errors),
            tables_deleted_whole: get(&self.tables_deleted),
            bytes_deleted_whole: get(&self.bytes_deleted),
            range_deleted_entries_dropped: get(&self.covered_dropped),
            pending_compaction_bytes: ks.iter().map(|k| k.pending_compaction_bytes).sum(),
            compaction_style: ks.first().map_or("leveled", |k| k.compaction_style),
            unexplained_files: gauges.unexplained_files,
            keyspaces: gauges.keyspaces,
            levels,
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "level  tables      MiB   target MiB  score      entries | compactions  read MiB  written MiB  moves      s"
        )?;
        for (level, l) in self.levels.iter().enumerate() {
            if l.tables > 0 || level == 0 || l.compaction.compactions > 0 {
                let c = &l.compaction;
                writeln!(
                    f,
                    "L{level:<5} {:>6} {:>8.1} {:>12.1} {:>6.2} {:>12} | {:>11} {:>9.1} {:>12.1} {:>6} {:>6.2}",
                    l.tables,
                    mib(l.bytes),
                    mib(l.target_bytes),
                    l.score,
                    l.entries,
                    c.compactions,
                    mib(c.bytes_read),
                    mib(c.bytes_written),
                    c.trivial_moves,
                    c.time.as_secs_f64()
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
        if self.keyspaces.len() > 1 {
            for k in &self.keyspaces {
                let levels: Vec<String> = k
                    .levels
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.tables > 0)
                    .map(|(level, l)| format!("L{level}:{}", l.tables))
                    .collect();
                writeln!(
                    f,
                    "keyspace {} ({}): {} tables, {:.1} MiB [{}]; memtable {:.1} MiB, {} immutable",
                    k.name,
                    k.compaction_style,
                    k.table_count(),
                    mib(k.table_bytes()),
                    levels.join(" "),
                    mib(k.memtable_bytes),
                    k.immutable_memtables
                )?;
            }
        }
        let group = if self.write_groups == 0 {
            0.0
        } else {
            self.writes as f64 / self.write_groups as f64
        };
        writeln!(
            f,
            "writes {} in {} groups ({group:.2} per group), {} entries; WAL {:.1} MiB, {} syncs, {} segments (slowest rotation {} µs)",
            self.writes,
            self.write_groups,
            self.entries_written,
            mib(self.wal_bytes_written),
            self.wal_syncs,
            self.wal_segments_started,
            self.wal_slowest_rotation.as_micros()
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
        writeln!(
            f,
            "memory {:.1} MiB{}: memtables {:.1}, block cache {:.1} of {:.1}, index and filters {:.1}, \
             blocks held by cursors {:.1}",
            mib(self.memory_bytes()),
            if self.memory_budget_bytes > 0 {
                format!(" of a {:.1} MiB budget", mib(self.memory_budget_bytes))
            } else {
                String::new()
            },
            mib(self.memtable_bytes + self.immutable_memtable_bytes),
            mib(self.block_cache_bytes),
            mib(self.block_cache_capacity),
            mib(self.table_metadata_bytes),
            mib(self.pinned_block_bytes),
        )?;
        writeln!(
            f,
            "compaction ({}): {} runs, {:.1} MiB read, {:.1} MiB written, {:.2} s, {} errors, {:.1} MiB pending",
            self.compaction_style,
            self.compactions,
            mib(self.compaction_bytes_read),
            mib(self.compaction_bytes_written),
            self.compaction_time.as_secs_f64(),
            self.compaction_errors,
            mib(self.pending_compaction_bytes)
        )?;
        if self.tables_deleted_whole > 0 || self.range_deleted_entries_dropped > 0 {
            writeln!(
                f,
                "range deletes: {} tables ({:.1} MiB) dropped whole without reading, {} covered entries dropped by compactions",
                self.tables_deleted_whole,
                mib(self.bytes_deleted_whole),
                self.range_deleted_entries_dropped
            )?;
        }
        writeln!(
            f,
            "write amplification {:.2} (WAL + flushes + compactions per user byte, {:.1} MiB written by the user)",
            self.write_amplification(),
            mib(self.user_bytes_written)
        )?;
        write!(
            f,
            "manifest {} edits, {} rewrites",
            self.manifest_edits, self.manifest_rewrites
        )?;
        if !self.unexplained_files.is_empty() {
            write!(
                f,
                "\nunexplained files (left in place): {}",
                self.unexplained_files.join(", ")
            )?;
        }
        if self.resumes > 0 {
            write!(
                f,
                "\nresumed {} times after a background error",
                self.resumes
            )?;
        }
        if let Some(cause) = &self.read_only_cause {
            write!(f, "\nREAD-ONLY: {cause}")?;
        }
        Ok(())
    }
}
