//! fjall 3 (feature `fjall`): an LSM-tree in Rust, one keyspace (the
//! keyspaces workload: several).

use std::path::Path;

use fjall::{
    Database, Keyspace, KeyspaceCreateOptions, OptimisticTxDatabase, OptimisticTxKeyspace,
    PersistMode, Readable as _,
};

use super::{
    Engine, KeyspaceEngine, OwnFigures, RangeDeleteEngine, Res, Scan, TxnEngine, Update, bounds,
    keyspace_name, nth,
};

fn err(e: fjall::Error) -> String {
    format!("fjall: {e}")
}

pub(super) fn describe(cache_bytes: usize) -> String {
    format!(
        "fjall 3.1: defaults but the cache: one keyspace, block cache {} MiB, memtable 64 MiB \
         (its default), LZ4 (its default); puts are `Keyspace::insert` (journal written to \
         the OS per write, never fsynced per write); fillsync: a one-entry batch with \
         durability PersistMode::SyncData (fdatasync per write); flush before measuring \
         disk: memtable rotated and flushed, journal SyncAll; txn: a separate \
         OptimisticTxDatabase (its optimistic transactions need that database type; same \
         cache and keyspace defaults, pre-filled with plain `Keyspace::insert`), `write_tx()` \
         (durability PersistMode::Buffer, its default), `get` x2, `insert` x2, `commit()`, \
         `Conflict` counted as an abort; keyspaces: `Database::keyspace(\"ks<i>\")` with \
         default options, puts `Keyspace::insert`, batches `Database::batch()` (durability \
         PersistMode::Buffer, its default), `insert` per keyspace, `commit()`; \
         deleterange (fjall has no range delete): the keys found by `Keyspace::range` \
         (`prefix` for the prefix) and removed one by one, {REMOVE_CHUNK} `remove`s per \
         `Database::batch()` (PersistMode::Buffer); compaction: memtable flushed, then \
         `Keyspace::major_compact`; table bytes `Keyspace::disk_space`",
        cache_bytes >> 20
    )
}

/// The deleterange workload's removes per `Batch` (the last one of a
/// range smaller): what a fjall user deleting a range would write, bounded
/// batches of removes rather than one write per key.
const REMOVE_CHUNK: usize = 10_000;

pub(super) struct Fjall {
    db: Database,
    keyspace: Keyspace,
}

/// A database with the harness's settings (the cache), no keyspace yet.
fn open_database(dir: &Path, cache_bytes: usize) -> Res<Database> {
    Database::builder(dir)
        .cache_size(cache_bytes as u64)
        .open()
        .map_err(err)
}

impl Fjall {
    pub(super) fn open(dir: &Path, cache_bytes: usize) -> Res<Self> {
        let db = open_database(dir, cache_bytes)?;
        let keyspace = db
            .keyspace("bench", KeyspaceCreateOptions::default)
            .map_err(err)?;
        Ok(Fjall { db, keyspace })
    }
}

impl Engine for Fjall {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Res<()> {
        if sync {
            let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
            batch.insert(&self.keyspace, key, value);
            batch.commit().map_err(err)
        } else {
            self.keyspace.insert(key, value).map_err(err)
        }
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.keyspace.get(key).map_err(err)?.map(|v| v.len()))
    }

    fn delete(&self, key: &[u8]) -> Res<()> {
        self.keyspace.remove(key).map_err(err)
    }

    fn scan<'a>(&'a self, from: &[u8], to: Option<&[u8]>, reverse: bool) -> Res<Scan<'a>> {
        let iter = self.keyspace.range::<&[u8], _>(bounds(from, to));
        let bytes = |guard: fjall::Guard| {
            guard
                .into_inner()
                .map(|(k, v)| k.len() + v.len())
                .map_err(err)
        };
        Ok(if reverse {
            Box::new(iter.rev().map(bytes))
        } else {
            Box::new(iter.map(bytes))
        })
    }

    fn flush(&self) -> Res<()> {
        self.keyspace.rotate_memtable_and_wait().map_err(err)?;
        self.db.persist(PersistMode::SyncAll).map_err(err)
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.persist(PersistMode::SyncAll).map_err(err)?;
        // Dropping the last handle stops and joins the background workers.
        drop(self);
        Ok(())
    }

    fn stats_text(&self) -> Option<String> {
        Some(format!(
            "tables {} ({} in L0), disk {:.1} MiB, journals {}, compactions {} ({:.2} s)",
            self.keyspace.table_count(),
            self.keyspace.l0_table_count(),
            self.db.disk_space().unwrap_or(0) as f64 / (1 << 20) as f64,
            self.db.journal_count(),
            self.db.compactions_completed(),
            self.db.time_compacting().as_secs_f64(),
        ))
    }

    fn range_deletes(&self) -> Option<&dyn RangeDeleteEngine> {
        Some(self)
    }
}

impl Fjall {
    /// Removes every key `keys` yields, [`REMOVE_CHUNK`] per batch: the
    /// number removed.
    fn remove_all(&self, keys: fjall::Iter) -> Res<u64> {
        let (mut removed, mut batch, mut in_batch) = (0, self.db.batch(), 0);
        for guard in keys {
            batch.remove(&self.keyspace, guard.key().map_err(err)?);
            in_batch += 1;
            if in_batch == REMOVE_CHUNK {
                batch.commit().map_err(err)?;
                (batch, in_batch) = (self.db.batch(), 0);
                removed += REMOVE_CHUNK as u64;
            }
        }
        if in_batch > 0 {
            batch.commit().map_err(err)?;
            removed += in_batch as u64;
        }
        Ok(removed)
    }
}

impl RangeDeleteEngine for Fjall {
    fn delete_range(&self, from: &[u8], to: &[u8]) -> Res<Option<u64>> {
        let keys = self.keyspace.range::<&[u8], _>(from..to);
        self.remove_all(keys).map(Some)
    }

    fn delete_prefix(&self, prefix: &[u8]) -> Res<Option<u64>> {
        self.remove_all(self.keyspace.prefix(prefix)).map(Some)
    }

    fn get_value(&self, key: &[u8]) -> Res<Option<Vec<u8>>> {
        let value = self.keyspace.get(key).map_err(err)?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn first_key_from(&self, from: &[u8]) -> Res<Option<Vec<u8>>> {
        match self.keyspace.range::<&[u8], _>(from..).next() {
            Some(guard) => Ok(Some(guard.key().map_err(err)?.to_vec())),
            None => Ok(None),
        }
    }

    fn compact_all(&self) -> Res<()> {
        self.keyspace.rotate_memtable_and_wait().map_err(err)?;
        self.keyspace.major_compact().map_err(err)
    }

    fn table_bytes(&self) -> Res<u64> {
        Ok(self.keyspace.disk_space())
    }
}

/// fjall's optimistic transactions (the txn workload): an
/// `OptimisticTxDatabase`, whose plain handles serve the [`Engine`] methods
/// (the pre-fill) exactly as [`Fjall`] does.
pub(super) struct FjallTx {
    plain: Fjall,
    db: OptimisticTxDatabase,
    keyspace: OptimisticTxKeyspace,
}

impl FjallTx {
    pub(super) fn open(dir: &Path, cache_bytes: usize) -> Res<Self> {
        let db = OptimisticTxDatabase::builder(dir)
            .cache_size(cache_bytes as u64)
            .open()
            .map_err(err)?;
        let keyspace = db
            .keyspace("bench", KeyspaceCreateOptions::default)
            .map_err(err)?;
        let plain = Fjall {
            db: db.inner().clone(),
            keyspace: keyspace.inner().clone(),
        };
        Ok(FjallTx {
            plain,
            db,
            keyspace,
        })
    }
}

impl Engine for FjallTx {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Res<()> {
        self.plain.put(key, value, sync)
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        self.plain.get(key)
    }

    fn delete(&self, key: &[u8]) -> Res<()> {
        self.plain.delete(key)
    }

    fn scan<'a>(&'a self, from: &[u8], to: Option<&[u8]>, reverse: bool) -> Res<Scan<'a>> {
        self.plain.scan(from, to, reverse)
    }

    fn flush(&self) -> Res<()> {
        self.plain.flush()
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.persist(PersistMode::SyncAll).map_err(err)?;
        drop(self);
        Ok(())
    }

    fn stats_text(&self) -> Option<String> {
        self.plain.stats_text()
    }

    fn own_figures(&self) -> OwnFigures {
        self.plain.own_figures()
    }

    fn txn(&self) -> Option<&dyn TxnEngine> {
        Some(self)
    }
}

impl TxnEngine for FjallTx {
    fn read2_write2(&self, keys: [&[u8]; 2], update: Update<'_>) -> Res<bool> {
        let mut tx = self.db.write_tx().map_err(err)?;
        let old = [
            tx.get(&self.keyspace, keys[0]).map_err(err)?,
            tx.get(&self.keyspace, keys[1]).map_err(err)?,
        ];
        for (i, key) in keys.into_iter().enumerate() {
            tx.insert(&self.keyspace, key, update(i, old[i].as_deref()));
        }
        Ok(tx.commit().map_err(err)?.is_ok())
    }
}

/// fjall's keyspaces (the keyspaces workload): `count` keyspaces with
/// default options on a database opened as [`Fjall`] opens it.
pub(super) struct FjallKeyspaces {
    db: Database,
    keyspaces: Vec<Keyspace>,
}

impl FjallKeyspaces {
    pub(super) fn open(dir: &Path, cache_bytes: usize, count: usize) -> Res<Self> {
        let db = open_database(dir, cache_bytes)?;
        let keyspaces = (0..count)
            .map(|ks| db.keyspace(&keyspace_name(ks), KeyspaceCreateOptions::default))
            .collect::<fjall::Result<Vec<_>>>()
            .map_err(err)?;
        Ok(FjallKeyspaces { db, keyspaces })
    }

    fn keyspace(&self, ks: usize) -> Res<&Keyspace> {
        nth("fjall", &self.keyspaces, ks)
    }
}

impl KeyspaceEngine for FjallKeyspaces {
    fn put_in(&self, ks: usize, key: &[u8], value: &[u8]) -> Res<()> {
        self.keyspace(ks)?.insert(key, value).map_err(err)
    }

    fn get_in(&self, ks: usize, key: &[u8]) -> Res<Option<Vec<u8>>> {
        let value = self.keyspace(ks)?.get(key).map_err(err)?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn batch_in(&self, puts: &[(usize, &[u8], &[u8])]) -> Res<()> {
        // Journal durability PersistMode::Buffer (the default of
        // `Database::batch`), as `Keyspace::insert`'s.
        let mut batch = self.db.batch();
        for &(ks, key, value) in puts {
            batch.insert(self.keyspace(ks)?, key, value);
        }
        batch.commit().map_err(err)
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.persist(PersistMode::SyncAll).map_err(err)?;
        // Dropping the last handle stops and joins the background workers.
        drop(self);
        Ok(())
    }
}
