//! sled 0.34 (feature `sled`): a Bw-tree-like engine in Rust, the default
//! tree (the keyspaces workload: one tree per keyspace).

use std::path::Path;

use sled::transaction::{TransactionError, Transactional as _};

use super::{Engine, KeyspaceEngine, Res, Scan, bounds, keyspace_name, nth};

fn err(e: sled::Error) -> String {
    format!("sled: {e}")
}

const FLUSH_EVERY_MS: u64 = 500;

pub(super) fn describe(cache_bytes: usize) -> String {
    format!(
        "sled 0.34: defaults but the cache: cache_capacity {} MiB, Mode::LowSpace, no \
         compression (its default; the `compression` feature is off), flush_every_ms {} \
         (background fsync, never per write); fillsync: insert then `Db::flush` (an fsync \
         per write); keyspaces: one tree each (`open_tree(\"ks<i>\")`), puts \
         `Tree::insert`, batches a multi-tree transaction (`[&Tree]::transaction`, sled's \
         only atomic write across trees) with one `insert` per tree",
        cache_bytes >> 20,
        FLUSH_EVERY_MS
    )
}

pub(super) struct Sled {
    db: sled::Db,
}

/// A database with the harness's settings (cache, background flushes).
fn open_db(dir: &Path, cache_bytes: usize) -> Res<sled::Db> {
    sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes as u64)
        .flush_every_ms(Some(FLUSH_EVERY_MS))
        .open()
        .map_err(err)
}

impl Sled {
    pub(super) fn open(dir: &Path, cache_bytes: usize) -> Res<Self> {
        Ok(Sled {
            db: open_db(dir, cache_bytes)?,
        })
    }
}

impl Engine for Sled {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Res<()> {
        self.db.insert(key, value).map_err(err)?;
        if sync {
            self.db.flush().map_err(err)?;
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.db.get(key).map_err(err)?.map(|v| v.len()))
    }

    fn delete(&self, key: &[u8]) -> Res<()> {
        self.db.remove(key).map(|_| ()).map_err(err)
    }

    fn scan<'a>(&'a self, from: &[u8], to: Option<&[u8]>, reverse: bool) -> Res<Scan<'a>> {
        let iter = self.db.range::<&[u8], _>(bounds(from, to));
        let bytes = |item: sled::Result<(sled::IVec, sled::IVec)>| {
            item.map(|(k, v)| k.len() + v.len()).map_err(err)
        };
        Ok(if reverse {
            Box::new(iter.rev().map(bytes))
        } else {
            Box::new(iter.map(bytes))
        })
    }

    fn flush(&self) -> Res<()> {
        self.db.flush().map(|_| ()).map_err(err)
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.flush().map_err(err)?;
        drop(self);
        Ok(())
    }

    fn stats_text(&self) -> Option<String> {
        Some(format!(
            "entries {}, size on disk {:.1} MiB",
            self.db.len(),
            self.db.size_on_disk().unwrap_or(0) as f64 / (1 << 20) as f64
        ))
    }
}

/// sled's trees as keyspaces (the keyspaces workload): `count` trees on a
/// database opened as [`Sled`] opens it.
pub(super) struct SledKeyspaces {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

impl SledKeyspaces {
    pub(super) fn open(dir: &Path, cache_bytes: usize, count: usize) -> Res<Self> {
        let db = open_db(dir, cache_bytes)?;
        let trees = (0..count)
            .map(|ks| db.open_tree(keyspace_name(ks)))
            .collect::<sled::Result<Vec<_>>>()
            .map_err(err)?;
        Ok(SledKeyspaces { db, trees })
    }

    fn tree(&self, ks: usize) -> Res<&sled::Tree> {
        nth("sled", &self.trees, ks)
    }
}

impl KeyspaceEngine for SledKeyspaces {
    fn put_in(&self, ks: usize, key: &[u8], value: &[u8]) -> Res<()> {
        self.tree(ks)?.insert(key, value).map(|_| ()).map_err(err)
    }

    fn get_in(&self, ks: usize, key: &[u8]) -> Res<Option<Vec<u8>>> {
        let value = self.tree(ks)?.get(key).map_err(err)?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn batch_in(&self, puts: &[(usize, &[u8], &[u8])]) -> Res<()> {
        // One transaction over the trees written, in the order of `puts`
        // (each into a different tree): the n-th view is the n-th put's.
        let trees = puts
            .iter()
            .map(|&(ks, _, _)| self.tree(ks))
            .collect::<Res<Vec<_>>>()?;
        let result: Result<(), TransactionError<()>> = trees[..].transaction(|views| {
            for (view, &(_, key, value)) in views.iter().zip(puts) {
                view.insert(key, value)?;
            }
            Ok(())
        });
        result.map_err(|e| format!("sled: transaction: {e:?}"))
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.flush().map_err(err)?;
        drop(self);
        Ok(())
    }
}
