//! fjall 3 (feature `fjall`): an LSM-tree in Rust, one keyspace.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Engine, Res, Scan, bounds};

fn err(e: fjall::Error) -> String {
    format!("fjall: {e}")
}

pub(super) fn describe(cache_bytes: usize) -> String {
    format!(
        "fjall 3.1: defaults but the cache: one keyspace, block cache {} MiB, memtable 64 MiB \
         (its default), LZ4 (its default); puts are `Keyspace::insert` (journal written to \
         the OS per write, never fsynced per write); fillsync: a one-entry batch with \
         durability PersistMode::SyncData (fdatasync per write); flush before measuring \
         disk: memtable rotated and flushed, journal SyncAll",
        cache_bytes >> 20
    )
}

pub(super) struct Fjall {
    db: Database,
    keyspace: Keyspace,
}

impl Fjall {
    pub(super) fn open(dir: &Path, cache_bytes: usize) -> Res<Self> {
        let db = Database::builder(dir)
            .cache_size(cache_bytes as u64)
            .open()
            .map_err(err)?;
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
}
