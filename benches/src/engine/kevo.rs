//! kevo itself ([`kevo_engine::Db`]).

use std::path::Path;

use kevo_engine::{Db, DbCursor, Keyspace, KeyspaceOptions, Options, WriteBatch, WriteOptions};

use super::{
    CompactionCounters, Engine, KeyspaceEngine, OwnFigures, RangeDeleteEngine, Res, Scan,
    TxnEngine, Update, WholeTables, bounds, keyspace_name, nth,
};

fn err(e: kevo_engine::Error) -> String {
    format!("kevo: {e}")
}

pub(super) fn options(cache_bytes: usize) -> Options {
    let mut options = Options::default().block_cache_bytes(cache_bytes);
    // Experiment knobs: KEVO_MEMTABLE_MIB, KEVO_L0_TRIGGER, KEVO_COMPACTION=tiered,
    // KEVO_WAL_BUFFER_KIB.
    if let Some(mib) = std::env::var("KEVO_MEMTABLE_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        options = options.memtable_bytes(mib << 20);
    }
    if let Some(kib) = std::env::var("KEVO_WAL_BUFFER_KIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        options = options.wal_buffer_bytes(kib << 10);
    }
    if std::env::var("KEVO_COMPACTION").is_ok_and(|v| v == "tiered") {
        options = options.compaction_style(kevo_engine::CompactionStyle::Tiered);
    }
    if let Some(n) = std::env::var("KEVO_L0_TRIGGER")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        options = options.l0_compaction_trigger(n);
    }
    options
}

pub(super) fn describe(cache_bytes: usize) -> String {
    let options = options(cache_bytes);
    format!(
        "defaults but the block cache: {:?}; memtable {} MiB, block cache {} MiB, \
         {:?}, WAL synced as {:?} (not per write); fillsync: WriteOptions {{ sync: true }} \
         (a WAL sync per write); each put is a one-entry WriteBatch; txn: `Db::begin`, \
         `Transaction::get` x2, `put` x2, `commit` (same database type and WAL settings), \
         `Error::Conflict` counted as an abort; keyspaces: `Db::keyspace(\"ks<i>\", \
         KeyspaceOptions::default())` (never the default keyspace), puts `Keyspace::put`, \
         batches `WriteBatch::put_in` per keyspace and `Db::write` (not synced); \
         deleterange: `Db::delete_range(from..to)` and `Db::delete_prefix` (one range \
         tombstone each, not synced), compaction `Db::compact_range(..)` then \
         `wait_for_compactions`, table bytes `Stats::table_bytes`",
        options,
        options.memtable_bytes >> 20,
        options.block_cache_bytes >> 20,
        options.compression,
        options.sync_mode,
    )
}

pub(super) struct Kevo {
    db: Db,
    synced: WriteOptions,
    unsynced: WriteOptions,
}

/// A scan of `[from, to)` on a [`DbCursor`]: each step borrows the entry
/// (no copy); the first positions the cursor (`seek`, or `seek_for_prev`
/// and a step back off an excluded end).
struct CursorScan {
    cursor: DbCursor,
    from: Vec<u8>,
    to: Option<Vec<u8>>,
    reverse: bool,
    started: bool,
    done: bool,
}

impl CursorScan {
    fn step(&mut self) -> kevo_engine::Result<()> {
        let c = &mut self.cursor;
        match (self.started, self.reverse) {
            (true, false) => c.next(),
            (true, true) => c.prev(),
            (false, false) => c.seek(&self.from),
            (false, true) => match &self.to {
                Some(to) => {
                    c.seek_for_prev(to)?;
                    if c.valid() && c.key() == to.as_slice() {
                        c.prev()?;
                    }
                    Ok(())
                }
                None => c.seek_to_last(),
            },
        }
    }
}

impl Iterator for CursorScan {
    type Item = Res<usize>;

    fn next(&mut self) -> Option<Res<usize>> {
        if self.done {
            return None;
        }
        if let Err(e) = self.step() {
            self.done = true;
            return Some(Err(err(e)));
        }
        self.started = true;
        let c = &self.cursor;
        let inside = c.valid()
            && if self.reverse {
                c.key() >= self.from.as_slice()
            } else {
                self.to.as_deref().is_none_or(|to| c.key() < to)
            };
        self.done = !inside;
        inside.then(|| Ok(c.key().len() + c.value().len()))
    }
}

/// kevo's table size in the deleterange workload (the default is 64 MiB:
/// a 1 M-key database would be one or two tables, none a range could
/// cover whole).
pub(super) const DELETERANGE_TABLE_BYTES: u64 = 2 << 20;

impl Kevo {
    pub(super) fn open(dir: &Path, cache_bytes: usize) -> Res<Self> {
        Self::open_options(dir, options(cache_bytes))
    }

    /// As [`Kevo::open`], with tables cut at `table_bytes`.
    pub(super) fn open_with_table_bytes(
        dir: &Path,
        cache_bytes: usize,
        table_bytes: u64,
    ) -> Res<Self> {
        Self::open_options(dir, options(cache_bytes).target_file_bytes(table_bytes))
    }

    fn open_options(dir: &Path, options: Options) -> Res<Self> {
        Ok(Kevo {
            db: Db::open_with(dir, options).map_err(err)?,
            synced: WriteOptions { sync: true },
            unsynced: WriteOptions { sync: false },
        })
    }
}

impl Engine for Kevo {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Res<()> {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        let options = if sync { &self.synced } else { &self.unsynced };
        self.db.write_with(batch, options).map_err(err)
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.db.get(key).map_err(err)?.map(|v| v.len()))
    }

    fn delete(&self, key: &[u8]) -> Res<()> {
        self.db.delete(key).map_err(err)
    }

    fn scan<'a>(&'a self, from: &[u8], to: Option<&[u8]>, reverse: bool) -> Res<Scan<'a>> {
        Ok(Box::new(CursorScan {
            cursor: self.db.cursor(),
            from: from.to_vec(),
            to: to.map(<[u8]>::to_vec),
            reverse,
            started: false,
            done: false,
        }))
    }

    fn scan_iter<'a>(&'a self, from: &[u8], to: Option<&[u8]>) -> Res<Option<Scan<'a>>> {
        let iter = self.db.range::<&[u8], _>(bounds(from, to));
        Ok(Some(Box::new(iter.map(|item| {
            item.map(|(k, v)| k.len() + v.len()).map_err(err)
        }))))
    }

    fn flush(&self) -> Res<()> {
        self.db.flush().map_err(err)
    }

    fn settle(&self) -> Res<()> {
        self.db.wait_for_compactions().map_err(err)
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.close().map_err(err)
    }

    fn stats_text(&self) -> Option<String> {
        Some(self.db.stats().to_string())
    }

    fn own_figures(&self) -> OwnFigures {
        let stats = self.db.stats();
        OwnFigures {
            // The WAL, flushed tables and compaction output (the manifest
            // is a few KiB).
            bytes_written: Some(
                stats.wal_bytes_written
                    + stats.flush_bytes_written
                    + stats.compaction_bytes_written,
            ),
            stall_time: Some(stats.stall_time),
        }
    }

    fn txn(&self) -> Option<&dyn TxnEngine> {
        Some(self)
    }

    fn range_deletes(&self) -> Option<&dyn RangeDeleteEngine> {
        Some(self)
    }
}

impl RangeDeleteEngine for Kevo {
    fn delete_range(&self, from: &[u8], to: &[u8]) -> Res<Option<u64>> {
        self.db.delete_range(from..to).map_err(err)?;
        Ok(None)
    }

    fn delete_prefix(&self, prefix: &[u8]) -> Res<Option<u64>> {
        self.db.delete_prefix(prefix).map_err(err)?;
        Ok(None)
    }

    fn get_value(&self, key: &[u8]) -> Res<Option<Vec<u8>>> {
        Ok(self.db.get(key).map_err(err)?.map(|v| v.to_vec()))
    }

    fn first_key_from(&self, from: &[u8]) -> Res<Option<Vec<u8>>> {
        let first = self.db.range(from..).next().transpose().map_err(err)?;
        Ok(first.map(|(k, _)| k.to_vec()))
    }

    fn compact_all(&self) -> Res<()> {
        self.db.compact_range::<&[u8], _>(..).map_err(err)?;
        self.db.wait_for_compactions().map_err(err)
    }

    fn table_bytes(&self) -> Res<u64> {
        Ok(self.db.stats().table_bytes())
    }

    fn compaction_counters(&self) -> Option<CompactionCounters> {
        let stats = self.db.stats();
        Some(CompactionCounters {
            tables_deleted_whole: stats.tables_deleted_whole,
            bytes_deleted_whole: stats.bytes_deleted_whole,
            bytes_written: stats.compaction_bytes_written,
            range_deleted_entries_dropped: stats.range_deleted_entries_dropped,
        })
    }

    fn delete_whole_tables(&self) -> Res<Option<WholeTables>> {
        let tables = self.db.table_files();
        let Some(bottom) = tables.iter().map(|t| t.level).max() else {
            return Ok(None);
        };
        let mut level: Vec<_> = tables.into_iter().filter(|t| t.level == bottom).collect();
        if level.len() < 3 {
            return Ok(None);
        }
        level.sort_by(|a, b| a.smallest_key.cmp(&b.smallest_key));
        let chosen = &level[level.len() / 3..2 * level.len() / 3];
        let (Some(first), Some(last)) = (chosen.first(), chosen.last()) else {
            return Ok(None);
        };
        let from = first.smallest_key.to_vec();
        // Just past the last key: the smallest key after it.
        let mut to = last.largest_key.to_vec();
        to.push(0);
        let before = self.compaction_counters();
        let flushed = self.db.stats().flush_bytes_written;
        self.db.delete_range(&from[..]..&to[..]).map_err(err)?;
        self.db.flush().map_err(err)?;
        self.db.wait_for_compactions().map_err(err)?;
        let counters = self
            .compaction_counters()
            .zip(before)
            .map(|(after, before)| after.since(before))
            .unwrap_or_default();
        Ok(Some(WholeTables {
            from,
            to,
            tables: chosen.len() as u64,
            table_bytes: chosen.iter().map(|t| t.file_size).sum(),
            counters,
            flush_bytes: self.db.stats().flush_bytes_written.saturating_sub(flushed),
        }))
    }
}

impl TxnEngine for Kevo {
    fn read2_write2(&self, keys: [&[u8]; 2], update: Update<'_>) -> Res<bool> {
        // Not `Db::transaction`, which retries by itself: the workload
        // counts each lost commit.
        let mut tx = self.db.begin();
        let old = [tx.get(keys[0]).map_err(err)?, tx.get(keys[1]).map_err(err)?];
        for (i, key) in keys.into_iter().enumerate() {
            tx.put(key, update(i, old[i].as_deref())).map_err(err)?;
        }
        match tx.commit() {
            Ok(()) => Ok(true),
            Err(kevo_engine::Error::Conflict { .. }) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }
}

/// kevo's keyspaces (the keyspaces workload): `count` keyspaces created by
/// `Db::keyspace`, none of them the default one, on a database opened as
/// [`Kevo`] opens it.
pub(super) struct KevoKeyspaces {
    db: Db,
    keyspaces: Vec<Keyspace>,
}

impl KevoKeyspaces {
    pub(super) fn open(dir: &Path, cache_bytes: usize, count: usize) -> Res<Self> {
        let db = Db::open_with(dir, options(cache_bytes)).map_err(err)?;
        let keyspaces = (0..count)
            .map(|ks| db.keyspace(&keyspace_name(ks), KeyspaceOptions::default()))
            .collect::<kevo_engine::Result<Vec<_>>>()
            .map_err(err)?;
        Ok(KevoKeyspaces { db, keyspaces })
    }

    fn keyspace(&self, ks: usize) -> Res<&Keyspace> {
        nth("kevo", &self.keyspaces, ks)
    }
}

impl KeyspaceEngine for KevoKeyspaces {
    fn put_in(&self, ks: usize, key: &[u8], value: &[u8]) -> Res<()> {
        self.keyspace(ks)?.put(key, value).map_err(err)
    }

    fn get_in(&self, ks: usize, key: &[u8]) -> Res<Option<Vec<u8>>> {
        let value = self.keyspace(ks)?.get(key).map_err(err)?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn batch_in(&self, puts: &[(usize, &[u8], &[u8])]) -> Res<()> {
        let mut batch = WriteBatch::new();
        for &(ks, key, value) in puts {
            batch.put_in(self.keyspace(ks)?, key, value);
        }
        self.db.write(batch).map_err(err)
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.close().map_err(err)
    }
}
