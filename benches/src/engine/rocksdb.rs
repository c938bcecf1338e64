//! RocksDB through the `rocksdb` crate (feature `rocksdb`; builds RocksDB
//! from C++ source, which takes many minutes and needs clang/libclang).

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, DB, DBCompressionType, DBRawIterator, Options, ReadOptions,
    WriteOptions,
};

use super::{Engine, Res, Scan};

fn err(e: rocksdb::Error) -> String {
    format!("rocksdb: {e}")
}

const MEMTABLE_BYTES: usize = 64 << 20;
const BLOOM_BITS_PER_KEY: f64 = 10.0;

pub(super) fn describe(cache_bytes: usize) -> String {
    format!(
        "rocksdb crate 0.25: defaults but: LRU block cache {} MiB, write_buffer_size {} MiB, \
         LZ4, full Bloom filter {} bits/key (as kevo); puts with WriteOptions::default (WAL \
         written, not synced); fillsync: WriteOptions::set_sync(true); flush before \
         measuring disk: DB::flush and a synced WAL flush",
        cache_bytes >> 20,
        MEMTABLE_BYTES >> 20,
        BLOOM_BITS_PER_KEY
    )
}

pub(super) struct Rocks {
    db: DB,
    synced: WriteOptions,
    unsynced: WriteOptions,
}

impl Rocks {
    pub(super) fn open(dir: &Path, cache_bytes: usize) -> Res<Self> {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&Cache::new_lru_cache(cache_bytes));
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_write_buffer_size(MEMTABLE_BYTES);
        options.set_compression_type(DBCompressionType::Lz4);
        options.set_block_based_table_factory(&table);
        let db = DB::open(&options, dir).map_err(err)?;
        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        Ok(Rocks {
            db,
            synced,
            unsynced: WriteOptions::default(),
        })
    }
}

/// A raw iterator stepped forward or backward.
struct RawScan<'a> {
    iter: DBRawIterator<'a>,
    reverse: bool,
    positioned: bool,
}

impl Iterator for RawScan<'_> {
    type Item = Res<usize>;

    fn next(&mut self) -> Option<Res<usize>> {
        if self.positioned {
            if self.reverse {
                self.iter.prev();
            } else {
                self.iter.next();
            }
        }
        self.positioned = true;
        match self.iter.item() {
            Some((k, v)) => Some(Ok(k.len() + v.len())),
            None => self.iter.status().err().map(|e| Err(err(e))),
        }
    }
}

impl Engine for Rocks {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Res<()> {
        let options = if sync { &self.synced } else { &self.unsynced };
        self.db.put_opt(key, value, options).map_err(err)
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.db.get_pinned(key).map_err(err)?.map(|v| v.len()))
    }

    fn delete(&self, key: &[u8]) -> Res<()> {
        self.db.delete(key).map_err(err)
    }

    fn scan<'a>(&'a self, from: &[u8], to: Option<&[u8]>, reverse: bool) -> Res<Scan<'a>> {
        let mut read = ReadOptions::default();
        read.set_iterate_lower_bound(from);
        if let Some(to) = to {
            read.set_iterate_upper_bound(to);
        }
        let mut iter = self.db.raw_iterator_opt(read);
        if reverse {
            iter.seek_to_last();
        } else {
            iter.seek(from);
        }
        Ok(Box::new(RawScan {
            iter,
            reverse,
            positioned: false,
        }))
    }

    fn flush(&self) -> Res<()> {
        self.db.flush().map_err(err)?;
        self.db.flush_wal(true).map_err(err)
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.flush_wal(true).map_err(err)?;
        drop(self);
        Ok(())
    }

    fn stats_text(&self) -> Option<String> {
        self.db.property_value("rocksdb.levelstats").ok().flatten()
    }
}
