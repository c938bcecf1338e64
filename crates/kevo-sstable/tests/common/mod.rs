//! Helpers shared by the table's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use kevo_core::{Fs, InternalKey, MemFs, SeqNo, ValueKind, compare_internal_keys};
use kevo_sstable::{ReadOptions, Table, TableMeta, TableOptions, TableWriter};

pub(crate) const PATH: &str = "/000001.sst";

/// One entry of a model table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

impl Entry {
    pub(crate) fn new(user_key: &[u8], seqno: SeqNo, kind: ValueKind, value: &[u8]) -> Self {
        Entry {
            key: InternalKey::new(user_key, seqno, kind).as_bytes().to_vec(),
            value: value.to_vec(),
        }
    }
}

/// Sorts entries in internal-key order and drops repeated keys.
pub(crate) fn sorted(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by(|a, b| compare_internal_keys(&a.key, &b.key));
    entries.dedup_by(|a, b| compare_internal_keys(&a.key, &b.key) == Ordering::Equal);
    entries
}

/// Writes `entries` (sorted) to `path` on `fs`.
pub(crate) fn write_table(
    fs: &dyn Fs,
    path: &str,
    entries: &[Entry],
    options: TableOptions,
) -> TableMeta {
    let mut writer = TableWriter::create(fs, Path::new(path), options).unwrap();
    for entry in entries {
        writer.add(&entry.key, &entry.value).unwrap();
    }
    writer.finish().unwrap()
}

/// Options fixed for reproducible bytes.
pub(crate) fn options() -> TableOptions {
    TableOptions {
        creation_time_unix_s: Some(1_700_000_000),
        ..TableOptions::default()
    }
}

/// `n` entries: keys `key000000`.., some with an older version and some
/// tombstones, values of `value_len` bytes.
pub(crate) fn entries(n: usize, value_len: usize) -> Vec<Entry> {
    let mut out = Vec::new();
    for i in 0..n {
        let user = format!("key{i:06}");
        let value: Vec<u8> = (0..value_len).map(|j| (i * 7 + j) as u8 % 13).collect();
        let kind = if i % 5 == 3 {
            ValueKind::Delete
        } else {
            ValueKind::Put
        };
        let value = if kind == ValueKind::Delete {
            vec![]
        } else {
            value
        };
        out.push(Entry::new(user.as_bytes(), 100 + i as u64, kind, &value));
        if i % 4 == 0 {
            out.push(Entry::new(
                user.as_bytes(),
                10 + i as u64,
                ValueKind::Put,
                b"old",
            ));
        }
    }
    sorted(out)
}

/// A `MemFs` holding a table of `entries` at [`PATH`].
pub(crate) fn memfs_with_table(entries: &[Entry], options: TableOptions) -> MemFs {
    let fs = MemFs::new();
    write_table(&fs, PATH, entries, options);
    fs
}

pub(crate) fn open(fs: &dyn Fs) -> Arc<Table> {
    Arc::new(Table::open(fs, Path::new(PATH), ReadOptions::default()).unwrap())
}

/// What a point lookup should return: the newest entry of `user_key` with
/// seqno `<= snapshot`.
pub(crate) fn model_get(
    entries: &[Entry],
    user_key: &[u8],
    snapshot: SeqNo,
) -> Option<(SeqNo, ValueKind, Vec<u8>)> {
    entries.iter().find_map(|e| {
        let parsed = kevo_core::parse_internal_key(&e.key).unwrap();
        (parsed.user_key == user_key && parsed.seqno <= snapshot)
            .then(|| (parsed.seqno, parsed.kind, e.value.clone()))
    })
}
