//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use kevo_core::{
    DEFAULT_KEYSPACE, DEFAULT_KEYSPACE_NAME, InternalKey, KeyspaceId, SeqNo, ValueKind,
};
use kevo_manifest::{CURRENT_FILE, RecoveredManifest, TableMeta, Version, VersionSet};

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
        range_tombstones: 0,
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

/// One keyspace as a reopen must bring it back: id, name, log number and
/// tables.
pub type KeyspaceState = (KeyspaceId, String, u64, Vec<(usize, TableMeta)>);

/// Every live keyspace, then the keyspace id counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspacesState {
    pub keyspaces: Vec<KeyspaceState>,
    pub next_keyspace_id: KeyspaceId,
}

pub fn keyspaces_state(set: &VersionSet) -> KeyspacesState {
    let keyspaces = set
        .keyspaces()
        .into_iter()
        .map(|k| {
            let version = set
                .current_in(k.id)
                .expect("a listed keyspace has a version");
            assert_eq!(set.keyspace_log_number(k.id), Some(k.log_number));
            (k.id, k.name, k.log_number, tables_of(&version))
        })
        .collect();
    KeyspacesState {
        keyspaces,
        next_keyspace_id: set.next_keyspace_id(),
    }
}

/// The same, of a recovered manifest.
pub fn recovered_keyspaces_state(state: &RecoveredManifest) -> KeyspacesState {
    let default = (
        DEFAULT_KEYSPACE,
        DEFAULT_KEYSPACE_NAME.to_string(),
        state.default_log_number,
        tables_of(&state.version),
    );
    let others = state
        .keyspaces
        .iter()
        .map(|(&id, k)| (id, k.name.clone(), k.log_number, tables_of(&k.version)));
    KeyspacesState {
        keyspaces: std::iter::once(default).chain(others).collect(),
        next_keyspace_id: state.next_keyspace_id,
    }
}
