//! Helpers shared by the WAL's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kevo_core::{Fs, MemFs};
use kevo_wal::{Batch, RecoveryMode, Replay, ReplayReport, Wal, WalOptions};

pub(crate) fn dir() -> PathBuf {
    PathBuf::from("/db")
}

pub(crate) fn segment_path(segment: u64) -> PathBuf {
    dir().join(kevo_wal::segment_file_name(segment))
}

/// A batch with `n` puts whose keys and values derive from `id`.
pub(crate) fn batch(id: u64, n: usize, value_len: usize) -> Batch {
    let mut batch = Batch::new();
    batch.set_seqno(id * 1000);
    for i in 0..n {
        let key = format!("key-{id}-{i}");
        let value: Vec<u8> = (0..value_len)
            .map(|j| (id as usize + i + j) as u8)
            .collect();
        batch.put(key, value);
    }
    batch
}

pub(crate) fn open(fs: Arc<dyn Fs>, options: WalOptions) -> Wal {
    Wal::open(fs, &dir(), options).unwrap().finish().unwrap().0
}

pub(crate) fn memfs() -> (MemFs, Arc<dyn Fs>) {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    (mem, fs)
}

/// Every batch in the log, or the first error, and the report.
pub(crate) fn replay(
    fs: Arc<dyn Fs>,
    mode: RecoveryMode,
) -> kevo_wal::Result<(Vec<Batch>, ReplayReport)> {
    let mut replay = Replay::open(fs, &dir(), mode, 0)?;
    let mut out = Vec::new();
    for item in replay.by_ref() {
        out.push(item?.batch);
    }
    Ok((out, replay.report().clone()))
}

/// Writes `batches` to a fresh log and closes it (synced).
pub(crate) fn write_log(
    fs: Arc<dyn Fs>,
    options: WalOptions,
    batches: &[Batch],
) -> Vec<kevo_wal::WalPosition> {
    let wal = open(fs, options);
    let positions = batches.iter().map(|b| wal.append(b).unwrap()).collect();
    wal.sync().unwrap();
    wal.close().unwrap();
    positions
}

pub(crate) fn file_len(fs: &dyn Fs, path: &Path) -> u64 {
    fs.open_read(path).unwrap().len().unwrap()
}
