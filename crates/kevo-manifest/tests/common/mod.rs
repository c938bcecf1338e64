//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use kevo_core::{InternalKey, SeqNo, ValueKind};
use kevo_manifest::{CURRENT_FILE, TableMeta, Version, VersionSet};

pub const DIR: &str = "/db";

pub fn dir() -> &'static Path {
    Path::new(DIR)
}

/// A table over user keys `lo..=hi` with seqnos `seqnos.0..=seqnos.1`.
pub fn table(number: u64, lo: &[u8], hi: &[u8], seqnos: (SeqNo, SeqNo)) -> TableMeta {
    TableMeta {
        number,
        file_size: 1000 + number,
        smallest: InternalKey::new(lo, seqnos.1, ValueKind::Put),
        largest: InternalKey::new(hi, seqnos.0, ValueKind::Delete),
        smallest_seqno: seqnos.0,
        largest_seqno: seqnos.1,
        entries: 4,
        tombstones: 1,
    }
}

/// What a version holds, level by level, in the version's order.
pub fn tables_of(version: &Version) -> Vec<(usize, TableMeta)> {
    version.tables().map(|(l, t)| (l, (**t).clone())).collect()
}

/// Everything a reopen must bring back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durable {
    pub tables: Vec<(usize, TableMeta)>,
    pub last_seqno: SeqNo,
    pub log_number: u64,
}

pub fn durable(set: &VersionSet) -> Durable {
    Durable {
        tables: tables_of(&set.current()),
        last_seqno: set.last_seqno(),
        log_number: set.log_number(),
    }
}

/// The manifest `CURRENT` names, read from a `MemFs`.
pub fn current_manifest(mem: &kevo_core::MemFs) -> String {
    let bytes = mem.read_file(&dir().join(CURRENT_FILE)).unwrap();
    String::from_utf8(bytes).unwrap().trim_end().to_string()
}
