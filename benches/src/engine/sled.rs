//! sled 0.34 (feature `sled`): a Bw-tree-like engine in Rust, the default
//! tree.

use std::path::Path;

use super::{Engine, Res, Scan, bounds};

fn err(e: sled::Error) -> String {
    format!("sled: {e}")
}

const FLUSH_EVERY_MS: u64 = 500;

pub(super) fn describe(cache_bytes: usize) -> String {
    format!(
        "sled 0.34: defaults but the cache: cache_capacity {} MiB, Mode::LowSpace, no \
         compression (its default; the `compression` feature is off), flush_every_ms {} \
         (background fsync, never per write); fillsync: insert then `Db::flush` (an fsync \
         per write)",
        cache_bytes >> 20,
        FLUSH_EVERY_MS
    )
}

pub(super) struct Sled {
    db: sled::Db,
}

impl Sled {
    pub(super) fn open(dir: &Path, cache_bytes: usize) -> Res<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes as u64)
            .flush_every_ms(Some(FLUSH_EVERY_MS))
            .open()
            .map_err(err)?;
        Ok(Sled { db })
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
