//! redb 3 (feature `redb`): a copy-on-write B-tree in Rust, one table (the
//! keyspaces workload: one table per keyspace).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadableDatabase as _, ReadableTableMetadata as _, TableDefinition,
};

use super::{Engine, KeyspaceEngine, Res, Scan, bounds, keyspace_name, nth};

const TABLE: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("bench");

fn err(e: impl std::fmt::Display) -> String {
    format!("redb: {e}")
}

pub(super) fn describe(cache_bytes: usize) -> String {
    format!(
        "redb 3.1: defaults but the cache: one table, cache {} MiB, no compression (it has \
         none); each put or delete is its own write transaction with Durability::None (no \
         fsync), except that one at least {} ms after the last durable commit is Immediate \
         (as kevo syncs its WAL every 100 ms; without it, redb cannot reuse the pages freed \
         since the last durable commit and slows down without end); fillsync: \
         Durability::Immediate (fsync per commit); each get, scan and seek opens its own read transaction; flush \
         before measuring disk: an empty Immediate commit; keyspaces: one table each \
         (\"ks<i>\"), each put its own write transaction as above, each batch one write \
         transaction (same durability rule) with one insert per table",
        cache_bytes >> 20,
        DURABLE_EVERY.as_millis()
    )
}

/// The longest a run of `Durability::None` commits lasts.
const DURABLE_EVERY: Duration = Duration::from_millis(100);

pub(super) struct Redb {
    db: Database,
    /// When the last `Durability::Immediate` commit began.
    last_durable: Mutex<Instant>,
}

impl Redb {
    pub(super) fn open(dir: &Path, cache_bytes: usize) -> Res<Self> {
        let redb = Redb::create(dir, cache_bytes)?;
        // Create the table, so that reads of an empty database find it.
        redb.commit(true, |_| Ok(()))?;
        Ok(redb)
    }

    /// A new database file in `dir` with the harness's cache, no table yet.
    fn create(dir: &Path, cache_bytes: usize) -> Res<Self> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(dir.join("bench.redb"))
            .map_err(err)?;
        Ok(Redb {
            db,
            last_durable: Mutex::new(Instant::now()),
        })
    }

    /// One write transaction on the table: see [`Redb::write`].
    fn commit(
        &self,
        sync: bool,
        work: impl FnOnce(&mut redb::Table<'_, &'static [u8], &'static [u8]>) -> Res<()>,
    ) -> Res<()> {
        self.write(sync, |txn| {
            let mut table = txn.open_table(TABLE).map_err(err)?;
            work(&mut table)
        })
    }

    /// One write transaction: `Immediate` if `sync` or if the last durable
    /// commit is `DURABLE_EVERY` old, else `None`.
    fn write(&self, sync: bool, work: impl FnOnce(&redb::WriteTransaction) -> Res<()>) -> Res<()> {
        let mut txn = self.db.begin_write().map_err(err)?;
        // Write transactions are serialised: holding `txn`, this thread is
        // the only one here.
        let sync = {
            let mut last = self
                .last_durable
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = sync || last.elapsed() >= DURABLE_EVERY;
            if due {
                *last = Instant::now();
            }
            due
        };
        txn.set_durability(if sync {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(err)?;
        work(&txn)?;
        txn.commit().map_err(err)
    }

    fn table(&self) -> Res<redb::ReadOnlyTable<&'static [u8], &'static [u8]>> {
        let txn = self.db.begin_read().map_err(err)?;
        txn.open_table(TABLE).map_err(err)
    }
}

impl Engine for Redb {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Res<()> {
        self.commit(sync, |table| {
            table.insert(key, value).map(|_| ()).map_err(err)
        })
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        let table = self.table()?;
        let value = table.get(key).map_err(err)?;
        Ok(value.map(|v| v.value().len()))
    }

    fn delete(&self, key: &[u8]) -> Res<()> {
        self.commit(false, |table| table.remove(key).map(|_| ()).map_err(err))
    }

    fn scan<'a>(&'a self, from: &[u8], to: Option<&[u8]>, reverse: bool) -> Res<Scan<'a>> {
        let table = self.table()?;
        // The range holds the read transaction open until it is dropped.
        let iter = table.range::<&[u8]>(bounds(from, to)).map_err(err)?;
        type Item = redb::Result<(
            redb::AccessGuard<'static, &'static [u8]>,
            redb::AccessGuard<'static, &'static [u8]>,
        )>;
        let bytes = |item: Item| {
            item.map(|(k, v)| k.value().len() + v.value().len())
                .map_err(err)
        };
        Ok(if reverse {
            Box::new(iter.rev().map(bytes))
        } else {
            Box::new(iter.map(bytes))
        })
    }

    fn flush(&self) -> Res<()> {
        self.commit(true, |_| Ok(()))
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.flush()?;
        drop(self);
        Ok(())
    }

    fn stats_text(&self) -> Option<String> {
        let stats = self.table().and_then(|t| t.stats().map_err(err));
        Some(match stats {
            Ok(s) => format!(
                "tree height {}, {} leaf and {} branch pages, {:.1} MiB of leaf data, \
                 {:.1} MiB fragmented",
                s.tree_height(),
                s.leaf_pages(),
                s.branch_pages(),
                s.stored_bytes() as f64 / (1 << 20) as f64,
                s.fragmented_bytes() as f64 / (1 << 20) as f64
            ),
            Err(e) => e,
        })
    }
}

/// redb's tables as keyspaces (the keyspaces workload): `count` tables in
/// one database file, written as [`Redb`] writes its table.
pub(super) struct RedbKeyspaces {
    redb: Redb,
    names: Vec<String>,
}

/// The definition of the table named `name`.
fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

impl RedbKeyspaces {
    pub(super) fn open(dir: &Path, cache_bytes: usize, count: usize) -> Res<Self> {
        let redb = Redb::create(dir, cache_bytes)?;
        let names: Vec<String> = (0..count).map(keyspace_name).collect();
        // Create the tables, so that reads find them.
        redb.write(true, |txn| {
            for name in &names {
                txn.open_table(table(name)).map_err(err)?;
            }
            Ok(())
        })?;
        Ok(RedbKeyspaces { redb, names })
    }

    fn name(&self, ks: usize) -> Res<&str> {
        nth("redb", &self.names, ks).map(String::as_str)
    }
}

impl KeyspaceEngine for RedbKeyspaces {
    fn put_in(&self, ks: usize, key: &[u8], value: &[u8]) -> Res<()> {
        let name = self.name(ks)?;
        self.redb.write(false, |txn| {
            let mut table = txn.open_table(table(name)).map_err(err)?;
            table.insert(key, value).map(|_| ()).map_err(err)
        })
    }

    fn get_in(&self, ks: usize, key: &[u8]) -> Res<Option<Vec<u8>>> {
        let txn = self.redb.db.begin_read().map_err(err)?;
        let table = txn.open_table(table(self.name(ks)?)).map_err(err)?;
        let value = table.get(key).map_err(err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn batch_in(&self, puts: &[(usize, &[u8], &[u8])]) -> Res<()> {
        self.redb.write(false, |txn| {
            for &(ks, key, value) in puts {
                let mut table = txn.open_table(table(self.name(ks)?)).map_err(err)?;
                table.insert(key, value).map_err(err)?;
            }
            Ok(())
        })
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.redb.flush()
    }
}
