//! The [`Engine`] trait the workloads run against (and [`KeyspaceEngine`],
//! what the keyspaces workload runs against, and [`RangeDeleteEngine`],
//! what the deleterange workload needs besides [`Engine`]), and one
//! implementation per engine: kevo always, each peer behind its own cargo
//! feature.

use std::ops::Bound;
use std::path::Path;
use std::time::Duration;

use crate::Config;

mod kevo;

#[cfg(feature = "fjall")]
mod fjall;
#[cfg(feature = "redb")]
mod redb;
#[cfg(feature = "rocksdb")]
mod rocksdb;
#[cfg(feature = "sled")]
mod sled;

/// Every error is reported as text: the harness only prints it.
pub(crate) type Res<T> = Result<T, String>;

/// A forward or reverse scan; each item is the bytes of one entry (key and
/// value).
pub(crate) type Scan<'a> = Box<dyn Iterator<Item = Res<usize>> + 'a>;

/// `[from, to)`, or `[from, ..)` when `to` is `None`.
pub(crate) fn bounds<'k>(
    from: &'k [u8],
    to: Option<&'k [u8]>,
) -> (Bound<&'k [u8]>, Bound<&'k [u8]>) {
    (
        Bound::Included(from),
        to.map_or(Bound::Unbounded, Bound::Excluded),
    )
}

/// What a workload needs from a key-value engine. Implementations are
/// shared by all the threads of a workload.
pub(crate) trait Engine: Send + Sync {
    /// One put. `sync`: durable on disk when it returns (fillsync);
    /// otherwise the engine's ordinary, non-syncing write path.
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Res<()>;

    /// One point read: the value's length if the key is present.
    fn get(&self, key: &[u8]) -> Res<Option<usize>>;

    /// One delete (not synced).
    fn delete(&self, key: &[u8]) -> Res<()>;

    /// An iterator over `[from, to)` (`to: None`: to the end), forward or
    /// in reverse. Creating it is not timed; each step is.
    fn scan<'a>(&'a self, from: &[u8], to: Option<&[u8]>, reverse: bool) -> Res<Scan<'a>>;

    /// A forward scan of `[from, to)` through an iterator of owned pairs,
    /// where the engine has one besides the one `scan` uses (kevo:
    /// `Db::range`, while `scan` uses `Db::cursor`); `None` otherwise.
    fn scan_iter<'a>(&'a self, from: &[u8], to: Option<&[u8]>) -> Res<Option<Scan<'a>>> {
        let _ = (from, to);
        Ok(None)
    }

    /// A seek to `from` and up to `n` steps forward: (entries, bytes).
    fn seek_next(&self, from: &[u8], n: usize) -> Res<(u64, u64)> {
        let (mut found, mut bytes) = (0, 0);
        for item in self.scan(from, None, false)?.take(n) {
            bytes += item? as u64;
            found += 1;
        }
        Ok((found, bytes))
    }

    /// Writes every buffered write to the engine's files and syncs them
    /// (LSMs: the memtable to a table), so that the directory's size is
    /// what the data takes.
    fn flush(&self) -> Res<()>;

    /// Waits until background compactions have brought the tree to its
    /// target shape, where the engine offers a way to know (kevo's
    /// `Db::wait_for_compactions`); a no-op otherwise.
    fn settle(&self) -> Res<()> {
        Ok(())
    }

    /// Closes the database, waiting for its background threads.
    fn close(self: Box<Self>) -> Res<()>;

    /// The engine's own statistics, for humans, where it keeps some.
    fn stats_text(&self) -> Option<String> {
        None
    }

    /// The engine's own accounting, where it keeps one.
    fn own_figures(&self) -> OwnFigures {
        OwnFigures::default()
    }

    /// Optimistic read-write transactions, where the engine has them (the
    /// txn workload; engines without them are reported as n/a).
    fn txn(&self) -> Option<&dyn TxnEngine> {
        None
    }

    /// Range deletes, full compaction and table bytes, where the harness
    /// has them for this engine (the deleterange workload; engines without
    /// them are reported as n/a).
    fn range_deletes(&self) -> Option<&dyn RangeDeleteEngine> {
        None
    }
}

/// What the deleterange workload needs besides [`Engine`] (whose `put`,
/// `get`, `seek_next`, `scan` and `flush` it uses as well).
pub(crate) trait RangeDeleteEngine: Sync {
    /// Deletes every key in `[from, to)`, as a user of the engine would:
    /// kevo one `Db::delete_range` (one range tombstone); an engine without
    /// range deletes (fjall) finds the keys with a range scan and removes
    /// them one by one. `Some(n)`: the engine removed `n` keys one by one;
    /// `None`: one range delete, whatever it covered.
    fn delete_range(&self, from: &[u8], to: &[u8]) -> Res<Option<u64>>;

    /// Deletes every key starting with `prefix`, as [`delete_range`] does
    /// (kevo: `Db::delete_prefix`; fjall: a prefix scan and removes).
    ///
    /// [`delete_range`]: RangeDeleteEngine::delete_range
    fn delete_prefix(&self, prefix: &[u8]) -> Res<Option<u64>>;

    /// The value of `key` (the workload's check, not timed).
    fn get_value(&self, key: &[u8]) -> Res<Option<Vec<u8>>>;

    /// The first key at or after `from` (the workload's check, not timed).
    fn first_key_from(&self, from: &[u8]) -> Res<Option<Vec<u8>>>;

    /// Writes the memtable out and compacts the whole key space into the
    /// bottom of the tree, dropping what is deleted, and returns when it is
    /// done (kevo: `Db::compact_range(..)` and `wait_for_compactions`;
    /// fjall: the memtable flushed, then `Keyspace::major_compact`).
    fn compact_all(&self) -> Res<()>;

    /// Bytes of the live tables (kevo: `Stats::table_bytes`; fjall:
    /// `Keyspace::disk_space`).
    fn table_bytes(&self) -> Res<u64>;

    /// The engine's own compaction counters, where it keeps them (kevo).
    fn compaction_counters(&self) -> Option<CompactionCounters> {
        None
    }

    /// Where the engine can show it (kevo): one range delete over exactly
    /// the keys of the middle third of the tables of its lowest level
    /// (from the first key of one table to just past the last key of
    /// another), the memtable written out, and every compaction that
    /// follows waited for. `Ok(None)`: not wired in, or fewer than 3 tables
    /// to choose from.
    fn delete_whole_tables(&self) -> Res<Option<WholeTables>> {
        Ok(None)
    }
}

/// What [`RangeDeleteEngine::delete_whole_tables`] deleted and what it
/// cost.
#[derive(Debug, Clone)]
pub(crate) struct WholeTables {
    /// The range deleted: `[from, to)`.
    pub(crate) from: Vec<u8>,
    pub(crate) to: Vec<u8>,
    /// The tables it covers whole, and their bytes.
    pub(crate) tables: u64,
    pub(crate) table_bytes: u64,
    /// The compaction counters over the delete, the flush and the
    /// compactions after it.
    pub(crate) counters: CompactionCounters,
    /// Bytes the flush wrote (the range tombstone's table).
    pub(crate) flush_bytes: u64,
}

/// kevo's compaction counters (from `Stats`), running since open.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CompactionCounters {
    /// Tables removed whole, unread, because a range tombstone covers them.
    pub(crate) tables_deleted_whole: u64,
    /// Their bytes.
    pub(crate) bytes_deleted_whole: u64,
    /// Bytes of tables compactions wrote.
    pub(crate) bytes_written: u64,
    /// Entries compactions dropped because a range tombstone deleted them.
    pub(crate) range_deleted_entries_dropped: u64,
}

impl CompactionCounters {
    /// What was counted between `earlier` and `self`.
    pub(crate) fn since(self, earlier: CompactionCounters) -> CompactionCounters {
        CompactionCounters {
            tables_deleted_whole: self
                .tables_deleted_whole
                .saturating_sub(earlier.tables_deleted_whole),
            bytes_deleted_whole: self
                .bytes_deleted_whole
                .saturating_sub(earlier.bytes_deleted_whole),
            bytes_written: self.bytes_written.saturating_sub(earlier.bytes_written),
            range_deleted_entries_dropped: self
                .range_deleted_entries_dropped
                .saturating_sub(earlier.range_deleted_entries_dropped),
        }
    }
}

/// A transaction's writes: `update(i, old value of keys[i])` is the new
/// value of `keys[i]`.
pub(crate) type Update<'u> = &'u mut dyn FnMut(usize, Option<&[u8]>) -> Vec<u8>;

/// An engine's optimistic read-write transactions.
pub(crate) trait TxnEngine: Sync {
    /// One attempt at one transaction: begin, read both `keys` (at the
    /// transaction's snapshot), put `update(i, old value of keys[i])` to
    /// each, commit. `Ok(true)`: committed; `Ok(false)`: the commit lost to
    /// a conflict and wrote nothing (the caller counts an abort and runs the
    /// same transaction again); `Err`: anything else.
    fn read2_write2(&self, keys: [&[u8]; 2], update: Update<'_>) -> Res<bool>;
}

/// An engine's keyspaces (kevo keyspaces, fjall keyspaces, sled trees,
/// redb tables), opened by [`open_keyspaces`] as `0..count`: the keyspaces
/// workload. Shared by all the threads of a row.
pub(crate) trait KeyspaceEngine: Send + Sync {
    /// One put into keyspace `ks`: the engine's ordinary, non-syncing
    /// write path into that keyspace.
    fn put_in(&self, ks: usize, key: &[u8], value: &[u8]) -> Res<()>;

    /// The value of `key` in keyspace `ks` (the workload's check, not
    /// timed).
    fn get_in(&self, ks: usize, key: &[u8]) -> Res<Option<Vec<u8>>>;

    /// One atomic write of `puts`, each `(keyspace, key, value)`, each into
    /// a different keyspace: all of them are applied or none (not synced).
    fn batch_in(&self, puts: &[(usize, &[u8], &[u8])]) -> Res<()>;

    /// Closes the database, waiting for its background threads.
    fn close(self: Box<Self>) -> Res<()>;
}

/// Keyspace `ks` of `all`, or an error naming the engine (the workload
/// only asks for the keyspaces it opened).
fn nth<'a, T>(engine: &str, all: &'a [T], ks: usize) -> Res<&'a T> {
    all.get(ks)
        .ok_or_else(|| format!("{engine}: no keyspace {ks} (opened {})", all.len()))
}

/// The name of keyspace `ks` of the keyspaces workload: `ks0`, `ks1`, ...
fn keyspace_name(ks: usize) -> String {
    format!("ks{ks}")
}

/// Figures an engine reports about itself (kevo's `Stats`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OwnFigures {
    /// Bytes the engine says it wrote (WAL, tables, ...).
    pub(crate) bytes_written: Option<u64>,
    /// Time writers were delayed or waited for room.
    pub(crate) stall_time: Option<Duration>,
}

/// The engines this build knows, kevo first.
pub(crate) const ALL: [&str; 5] = ["kevo", "fjall", "sled", "redb", "rocksdb"];

/// The engines in this build: kevo and the peers whose features are on.
const BUILT: &[&str] = &[
    "kevo",
    #[cfg(feature = "fjall")]
    "fjall",
    #[cfg(feature = "sled")]
    "sled",
    #[cfg(feature = "redb")]
    "redb",
    #[cfg(feature = "rocksdb")]
    "rocksdb",
];

/// Whether this build includes engine `name` (a peer needs its feature).
pub(crate) fn built(name: &str) -> bool {
    BUILT.contains(&name)
}

/// Opens engine `name` in the empty directory `dir` with the settings in
/// `config` (cache size), the same for every engine.
/// kevo's options in every workload (the block cache at `cache_bytes`).
pub(crate) fn kevo_options(cache_bytes: usize) -> kevo_engine::Options {
    kevo::options(cache_bytes)
}

/// kevo's table size in the deleterange workload, MiB (for the header).
pub(crate) const DELETERANGE_KEVO_TABLE_MIB: u64 = kevo::DELETERANGE_TABLE_BYTES >> 20;

/// Opens engine `name` for the deleterange workload: as [`open`], but kevo
/// with [`kevo::DELETERANGE_TABLE_BYTES`] tables, so that a database of 1 M
/// keys has a few dozen of them and a range can cover some whole.
pub(crate) fn open_deleterange(name: &str, dir: &Path, config: &Config) -> Res<Box<dyn Engine>> {
    match name {
        "kevo" => Ok(Box::new(kevo::Kevo::open_with_table_bytes(
            dir,
            config.cache_mib << 20,
            kevo::DELETERANGE_TABLE_BYTES,
        )?)),
        other => open(other, dir, config),
    }
}

pub(crate) fn open(name: &str, dir: &Path, config: &Config) -> Res<Box<dyn Engine>> {
    let cache_bytes = config.cache_mib << 20;
    let engine: Box<dyn Engine> = match name {
        "kevo" => Box::new(kevo::Kevo::open(dir, cache_bytes)?),
        #[cfg(feature = "fjall")]
        "fjall" => Box::new(fjall::Fjall::open(dir, cache_bytes)?),
        #[cfg(feature = "sled")]
        "sled" => Box::new(sled::Sled::open(dir, cache_bytes)?),
        #[cfg(feature = "redb")]
        "redb" => Box::new(redb::Redb::open(dir, cache_bytes)?),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Box::new(rocksdb::Rocks::open(dir, cache_bytes)?),
        other => return Err(not_built(other)),
    };
    Ok(engine)
}

/// Opens engine `name` for the txn workload, in the empty directory `dir`:
/// an engine whose [`Engine::txn`] is `Some`, or `None` where the engine
/// has no optimistic transactions in this harness (sled, redb, RocksDB).
/// kevo opens as for every workload; fjall's optimistic transactions need
/// their own database type (`OptimisticTxDatabase`), so it opens one.
pub(crate) fn open_txn(name: &str, dir: &Path, config: &Config) -> Res<Option<Box<dyn Engine>>> {
    let cache_bytes = config.cache_mib << 20;
    let engine: Box<dyn Engine> = match name {
        "kevo" => Box::new(kevo::Kevo::open(dir, cache_bytes)?),
        #[cfg(feature = "fjall")]
        "fjall" => Box::new(fjall::FjallTx::open(dir, cache_bytes)?),
        other if built(other) => return Ok(None),
        other => return Err(not_built(other)),
    };
    Ok(Some(engine))
}

/// Opens engine `name` for the keyspaces workload, in the empty directory
/// `dir`, with `count` keyspaces (`ks0`, `ks1`, ...; kevo: none of them the
/// default keyspace) created with default options: `None` where the engine
/// has no keyspaces in this harness (RocksDB: column families are not wired
/// in).
pub(crate) fn open_keyspaces(
    name: &str,
    dir: &Path,
    config: &Config,
    count: usize,
) -> Res<Option<Box<dyn KeyspaceEngine>>> {
    let cache_bytes = config.cache_mib << 20;
    let engine: Box<dyn KeyspaceEngine> = match name {
        "kevo" => Box::new(kevo::KevoKeyspaces::open(dir, cache_bytes, count)?),
        #[cfg(feature = "fjall")]
        "fjall" => Box::new(fjall::FjallKeyspaces::open(dir, cache_bytes, count)?),
        #[cfg(feature = "sled")]
        "sled" => Box::new(sled::SledKeyspaces::open(dir, cache_bytes, count)?),
        #[cfg(feature = "redb")]
        "redb" => Box::new(redb::RedbKeyspaces::open(dir, cache_bytes, count)?),
        other if built(other) => return Ok(None),
        other => return Err(not_built(other)),
    };
    Ok(Some(engine))
}

/// How engine `name` is configured, for the output.
pub(crate) fn describe(name: &str, config: &Config) -> String {
    let cache_bytes = config.cache_mib << 20;
    match name {
        "kevo" => kevo::describe(cache_bytes),
        #[cfg(feature = "fjall")]
        "fjall" => fjall::describe(cache_bytes),
        #[cfg(feature = "sled")]
        "sled" => sled::describe(cache_bytes),
        #[cfg(feature = "redb")]
        "redb" => redb::describe(cache_bytes),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => rocksdb::describe(cache_bytes),
        other => not_built(other),
    }
}

pub(crate) fn not_built(name: &str) -> String {
    if ALL.contains(&name) {
        format!(
            "engine `{name}` is not in this build: run `cargo xtask bench --compare {name}` \
             (or build kevo-bench with `--features {name}`)"
        )
    } else {
        format!("unknown engine `{name}`; known: {}", ALL.join(","))
    }
}

/// Bytes on disk under `path`: (apparent file sizes, allocated blocks as
/// `du` counts them).
pub(crate) fn dir_bytes(path: &Path) -> Res<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let (mut apparent, mut allocated) = (0, 0);
    let entries =
        std::fs::read_dir(path).map_err(|e| format!("listing {}: {e}", path.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("listing {}: {e}", path.display()))?;
        let meta = entry
            .metadata()
            .map_err(|e| format!("stat {}: {e}", entry.path().display()))?;
        if meta.is_dir() {
            let (a, b) = dir_bytes(&entry.path())?;
            apparent += a;
            allocated += b;
        } else {
            apparent += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    Ok((apparent, allocated))
}
