//! Shared pieces of the kevo fuzz targets: a small, self-made decoding of the
//! fuzzer's bytes into WAL operations, and replay helpers.
//!
//! ```text
//! input   = config u8 | op*
//! config  = segment size (bits 0-1: 4096, 4096, 512, 70000) | recycle_segments (bits 2-3)
//! op      = code u8, then by `code % n` (n = 5 for plain batches, 8 with the lifecycle ops):
//!   0  end the batch being built and append it (even when empty)
//!   1  put:    key_len u8 | key | value_len u16 LE | pattern (min(value_len, 16) bytes);
//!              the value is the pattern repeated to value_len (zeros if no pattern)
//!   2  delete: key_len u8 | key
//!   3  seqno:  u64 LE, masked to SEQNO_MAX: the next batch's first sequence number
//!   4  keyspace: k u8: later puts and deletes go to keyspace k if k < 200
//!              (0 is the default keyspace), else to u32::MAX - (k - 200)
//!   5  rotate                                     (lifecycle only)
//!   6  remove segments before current - (u8 % 4)  (lifecycle only)
//!   7  drop the Wal and reopen it (replay, finish) (lifecycle only)
//! ```
//!
//! A truncated field takes what is left. Sequence numbers otherwise run on
//! from the previous batch; entries go to the default keyspace until an op 4. Once [`BYTES_BUDGET`] bytes of keys and values
//! are built, the rest of the input is ignored, to keep runs fast. At the end
//! of the input a non-empty batch in progress is appended.

use std::path::Path;
use std::sync::Arc;

use kevo_core::{DEFAULT_KEYSPACE, Fs, KeyspaceId, SEQNO_MAX};
use kevo_wal::{
    Batch, EntryKind, RecoveryMode, Replay, ReplayReport, ReplayedBatch, SyncMode, WalOptions,
    WalPosition,
};

/// The directory the targets keep their log in.
pub const DIR: &str = "/wal";

/// Upper bound on key and value bytes built from one input.
pub const BYTES_BUDGET: usize = 1 << 20;

/// One step of a script.
#[derive(Debug, Clone)]
pub enum Op {
    /// Append this batch.
    Append(Batch),
    /// `Wal::rotate`.
    Rotate,
    /// `Wal::remove_segments_before(current_segment - back)`.
    RemoveBefore(u64),
    /// Drop the `Wal`, replay with `Wal::open`, `finish` it.
    Reopen,
}

/// What an input decodes to.
#[derive(Debug, Clone)]
pub struct Script {
    /// The options to open the log with.
    pub options: WalOptions,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn u16(&mut self) -> u16 {
        let mut b = [0u8; 2];
        let src = self.take(2);
        b[..src.len()].copy_from_slice(src);
        u16::from_le_bytes(b)
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let src = self.take(8);
        b[..src.len()].copy_from_slice(src);
        u64::from_le_bytes(b)
    }
}

/// The keyspace op 4's byte `k` selects: small ids (one- and two-byte
/// varints) and the largest ones (five-byte varints).
pub fn keyspace_of(k: u8) -> KeyspaceId {
    if k < 200 {
        KeyspaceId::from(k)
    } else {
        KeyspaceId::MAX - KeyspaceId::from(k - 200)
    }
}

/// Decodes `data`; `lifecycle` enables ops 5-7.
pub fn decode(data: &[u8], lifecycle: bool) -> Script {
    let mut input = Input(data);
    let config = input.u8().unwrap_or(0);
    let segment_bytes = [4096, 4096, 512, 70_000][usize::from(config & 3)];
    let options = WalOptions {
        sync_mode: SyncMode::None,
        segment_bytes,
        recycle_segments: usize::from((config >> 2) & 3),
        recovery_mode: RecoveryMode::TolerateTornTail,
        buffer_bytes: [0, 0, 100, 5000][usize::from((config >> 4) & 3)],
        lock_dir: (config >> 6) & 1 == 0,
    };
    let codes = if lifecycle { 8 } else { 5 };
    let mut keyspace = DEFAULT_KEYSPACE;
    let mut ops = Vec::new();
    let mut batch = Batch::new();
    let mut seqno: u64 = 1;
    let mut budget = BYTES_BUDGET;
    let append = |batch: &mut Batch, seqno: &mut u64, ops: &mut Vec<Op>| {
        // Every entry's seqno must fit in 56 bits, or the WAL refuses the batch.
        let span = batch.len().max(1) as u64;
        let first = (*seqno).min(SEQNO_MAX + 1 - span);
        batch.set_seqno(first);
        *seqno = (first + span).min(SEQNO_MAX);
        ops.push(Op::Append(std::mem::take(batch)));
    };
    while let Some(code) = input.u8() {
        match code % codes {
            0 => append(&mut batch, &mut seqno, &mut ops),
            1 => {
                let key_len = usize::from(input.u8().unwrap_or(0));
                let key = input.take(key_len);
                let value_len = usize::from(input.u16());
                let pattern = input.take(value_len.min(16));
                let Some(rest) = budget.checked_sub(key.len() + value_len) else {
                    break;
                };
                budget = rest;
                let value: Vec<u8> = if pattern.is_empty() {
                    vec![0; value_len]
                } else {
                    pattern.iter().copied().cycle().take(value_len).collect()
                };
                batch.put_in(keyspace, key, value);
            }
            2 => {
                let key_len = usize::from(input.u8().unwrap_or(0));
                let key = input.take(key_len);
                batch.delete_in(keyspace, key);
            }
            3 => seqno = input.u64() & SEQNO_MAX,
            4 => keyspace = keyspace_of(input.u8().unwrap_or(0)),
            5 => ops.push(Op::Rotate),
            6 => ops.push(Op::RemoveBefore(u64::from(input.u8().unwrap_or(0) % 4))),
            _ => ops.push(Op::Reopen),
        }
    }
    if !batch.is_empty() {
        append(&mut batch, &mut seqno, &mut ops);
    }
    Script { options, ops }
}

/// Checks a batch `Batch::decode` accepted from `input`: rebuilt from its
/// entries with `put_in` / `delete_in`, it has the same entries (keyspace,
/// kind, key, value) and seqno, in at most `input.len()` bytes (the input
/// may spell varints with redundant bytes; the encoder never does, and an
/// entry has no other freedom), exactly `input` when that is as long, and
/// decodes again to itself.
pub fn check_reencodes(batch: &Batch, input: &[u8]) {
    let mut rebuilt = Batch::new();
    rebuilt.set_seqno(batch.seqno());
    for e in batch.iter() {
        match e.kind {
            EntryKind::Put => rebuilt.put_in(e.keyspace, e.key, e.value),
            EntryKind::Delete => rebuilt.delete_in(e.keyspace, e.key),
            EntryKind::RangeDelete => rebuilt.delete_range_in(e.keyspace, e.key, e.value),
        }
    }
    assert_eq!(rebuilt.len(), batch.len(), "rebuilt entry count");
    assert!(
        rebuilt.iter().eq(batch.iter()),
        "rebuilt entries differ from the decoded ones"
    );
    let bytes = rebuilt.as_bytes();
    assert!(
        bytes.len() <= input.len(),
        "re-encoding takes {} bytes, the input {}",
        bytes.len(),
        input.len()
    );
    if bytes.len() == input.len() {
        assert_eq!(bytes, input, "a canonical input re-encodes to other bytes");
    }
    let again = Batch::decode(bytes).expect("a re-encoded batch decodes");
    assert_eq!(again, rebuilt);
}

/// Replays the whole log under `mode`; panics on an error.
pub fn replay_all(fs: &Arc<dyn Fs>, mode: RecoveryMode) -> (Vec<ReplayedBatch>, ReplayReport) {
    let mut replay =
        Replay::open(fs.clone(), Path::new(DIR), mode, 0).expect("listing the log directory");
    let mut out = Vec::new();
    for item in replay.by_ref() {
        match item {
            Ok(b) => out.push(b),
            Err(e) => panic!("{mode:?}: replay of a cleanly written log failed: {e}"),
        }
    }
    (out, replay.report().clone())
}

/// Checks that a report of a cleanly written log shows no damage.
pub fn assert_clean(report: &ReplayReport, mode: RecoveryMode) {
    assert_eq!(
        report.tail_bytes_dropped, 0,
        "{mode:?}: a torn tail in a clean log: {report:?}"
    );
    assert_eq!(
        report.torn_tail, None,
        "{mode:?}: a torn tail in a clean log: {report:?}"
    );
    assert!(
        report.skipped.is_empty(),
        "{mode:?}: skipped ranges in a clean log: {report:?}"
    );
}

/// The three recovery modes.
pub const MODES: [RecoveryMode; 3] = [
    RecoveryMode::TolerateTornTail,
    RecoveryMode::AbsoluteConsistency,
    RecoveryMode::SkipCorrupted,
];

/// Checks that a replayed batch is the one appended at `pos`, at the
/// position the append returned (both name the record's first fragment).
pub fn assert_replayed(what: &str, got: &ReplayedBatch, pos: &WalPosition, batch: &Batch) {
    assert_eq!(
        (got.segment, got.offset),
        (pos.segment, pos.offset),
        "{what}: replayed at a position other than the one the append returned"
    );
    assert_eq!(&got.batch, batch, "{what}: batch at {pos:?}");
}
