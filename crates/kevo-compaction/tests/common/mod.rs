//! Real tables on a `MemFs` (or a `FaultFs` over one) for the run tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kevo_compaction::{CompactionOutput, CompactionTask, RunContext, run_compaction};
use kevo_core::{Fs, InternalKey, SeqNo, ValueKind};
use kevo_manifest::{ManifestOptions, TableMeta, Version, VersionSet, table_file_name};
use kevo_sstable::{ReadOptions, Table, TableOptions, TableWriter};

pub const DIR: &str = "/db";

/// One entry: user key, seqno, kind, value.
pub type Entry = (Vec<u8>, SeqNo, ValueKind, Vec<u8>);

pub fn put(key: &str, seqno: SeqNo, value: &str) -> Entry {
    (
        key.as_bytes().to_vec(),
        seqno,
        ValueKind::Put,
        value.as_bytes().to_vec(),
    )
}

pub fn del(key: &str, seqno: SeqNo) -> Entry {
    (
        key.as_bytes().to_vec(),
        seqno,
        ValueKind::Delete,
        Vec::new(),
    )
}

pub struct Db {
    pub fs: Arc<dyn Fs>,
    pub set: VersionSet,
    pub stop: AtomicBool,
    pub opened: AtomicU64,
    pub numbers_handed_out: AtomicU64,
}

impl Db {
    pub fn new(fs: Arc<dyn Fs>) -> Db {
        let (set, _) =
            VersionSet::open(Arc::clone(&fs), Path::new(DIR), ManifestOptions::default()).unwrap();
        Db {
            fs,
            set,
            stop: AtomicBool::new(false),
            opened: AtomicU64::new(0),
            numbers_handed_out: AtomicU64::new(0),
        }
    }

    pub fn version(&self) -> Arc<Version> {
        self.set.current()
    }

    pub fn path(number: u64) -> PathBuf {
        Path::new(DIR).join(table_file_name(number))
    }

    /// Writes `entries` (any order) as a table and returns its metadata
    /// (not yet in the version).
    pub fn write_table(&self, entries: &[Entry]) -> TableMeta {
        self.write_table_with(entries, &[])
    }

    /// [`Db::write_table`] with range tombstones as well.
    pub fn write_table_with(
        &self,
        entries: &[Entry],
        tombstones: &[kevo_core::RangeTombstone],
    ) -> TableMeta {
        let mut keys: Vec<(InternalKey, &[u8])> = entries
            .iter()
            .map(|(k, s, kind, v)| (InternalKey::new(k, *s, *kind), v.as_slice()))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let number = self.set.reserve_file_number().unwrap();
        let mut writer =
            TableWriter::create(self.fs.as_ref(), &Self::path(number), small_blocks()).unwrap();
        for (key, value) in &keys {
            writer.add(key.as_bytes(), value).unwrap();
        }
        for tombstone in tombstones {
            writer.add_range_tombstone(tombstone).unwrap();
        }
        let meta = writer.finish().unwrap();
        TableMeta {
            number,
            file_size: meta.file_size,
            smallest: meta.smallest_key,
            largest: meta.largest_key,
            smallest_seqno: meta.smallest_seqno,
            largest_seqno: meta.largest_seqno,
            entries: meta.entry_count,
            tombstones: meta.tombstone_count,
            range_tombstones: meta.range_tombstone_count,
        }
    }

    /// Writes a table and adds it to `level`.
    pub fn add_table(&self, level: usize, entries: &[Entry]) -> u64 {
        self.add_table_with(level, entries, &[])
    }

    /// [`Db::add_table`] with range tombstones as well.
    pub fn add_table_with(
        &self,
        level: usize,
        entries: &[Entry],
        tombstones: &[kevo_core::RangeTombstone],
    ) -> u64 {
        let meta = self.write_table_with(entries, tombstones);
        let number = meta.number;
        self.set
            .log_and_apply(kevo_manifest::VersionEdit {
                added: vec![(level, meta)],
                ..Default::default()
            })
            .unwrap();
        number
    }

    pub fn open(&self, meta: &TableMeta) -> kevo_core::Result<Arc<Table>> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        Table::open(
            self.fs.as_ref(),
            &Self::path(meta.number),
            ReadOptions::default(),
        )
        .map(Arc::new)
    }

    /// Runs `task`, which must not be stopped.
    pub fn run(
        &self,
        task: &CompactionTask,
        snapshots: &[SeqNo],
    ) -> kevo_core::Result<CompactionOutput> {
        self.run_or_stop(task, snapshots)
            .map(|output| output.expect("the compaction was stopped"))
    }

    /// Runs `task`; `None` if `stop` ended it.
    pub fn run_or_stop(
        &self,
        task: &CompactionTask,
        snapshots: &[SeqNo],
    ) -> kevo_core::Result<Option<CompactionOutput>> {
        let open = |meta: &TableMeta| self.open(meta);
        let new_number = || {
            self.numbers_handed_out.fetch_add(1, Ordering::Relaxed);
            self.set.reserve_file_number()
        };
        let ctx = RunContext {
            fs: self.fs.as_ref(),
            dir: Path::new(DIR),
            open_table: &open,
            new_file_number: &new_number,
            table_options: small_blocks(),
            snapshots,
            stop: &self.stop,
        };
        run_compaction(task, &ctx)
    }

    /// Every entry of the tables, table by table in order.
    pub fn entries_of(&self, tables: &[TableMeta]) -> Vec<Vec<Entry>> {
        tables
            .iter()
            .map(|meta| {
                let table = self.open(meta).unwrap();
                let mut cursor = table.cursor();
                let mut out = Vec::new();
                kevo_core::Cursor::seek_to_first(&mut cursor).unwrap();
                while kevo_core::Cursor::valid(&cursor) {
                    let parsed =
                        kevo_core::parse_internal_key(kevo_core::Cursor::key(&cursor)).unwrap();
                    out.push((
                        parsed.user_key.to_vec(),
                        parsed.seqno,
                        parsed.kind,
                        kevo_core::Cursor::value(&cursor).to_vec(),
                    ));
                    kevo_core::Cursor::next(&mut cursor).unwrap();
                }
                out
            })
            .collect()
    }

    /// The names of the table files in the directory.
    pub fn table_files(&self) -> Vec<String> {
        self.fs
            .list_dir(Path::new(DIR))
            .unwrap()
            .into_iter()
            .filter(|n| n.ends_with(".sst"))
            .collect()
    }
}

/// Small blocks so that small tests still cut several blocks and tables.
pub fn small_blocks() -> TableOptions {
    TableOptions {
        block_bytes_target: 256,
        creation_time_unix_s: Some(0),
        ..TableOptions::default()
    }
}

/// The model's read of `key` at `snapshot`: the newest entry at or below
/// it, `None` for a tombstone or nothing.
pub fn model_read(entries: &[Entry], key: &[u8], snapshot: SeqNo) -> Option<Vec<u8>> {
    entries
        .iter()
        .filter(|e| e.0 == key && e.1 <= snapshot)
        .max_by_key(|e| e.1)
        .and_then(|e| (e.2 == ValueKind::Put).then(|| e.3.clone()))
}

/// A read of `key` at `snapshot` through `version`: L0 newest first, then
/// one table per level.
pub fn version_read(db: &Db, version: &Version, key: &[u8], snapshot: SeqNo) -> Option<Vec<u8>> {
    let mut candidates: Vec<Arc<TableMeta>> = version
        .overlapping(0, Some(key), Some(key))
        .into_iter()
        .collect();
    for level in 1..version.num_levels() {
        candidates.extend(version.table_for_key(level, key).cloned());
    }
    for meta in candidates {
        let table = db.open(&meta).unwrap();
        if let Some(found) = table.get(key, snapshot).unwrap() {
            return (found.kind == ValueKind::Put).then(|| found.value.to_vec());
        }
    }
    None
}
