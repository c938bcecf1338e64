//! [`ConflictTracker`]: the commit-time check of optimistic serializable
//! transactions.
//!
//! A transaction reads at a snapshot seqno `s`, remembers what it read (a
//! [`ReadSet`]) and buffers what it writes. At commit it may go ahead only if
//! no write that committed after `s` touched a key it read, a key within a
//! range it scanned, or a key it writes. The tracker keeps the keys of the
//! writes committed while any transaction is active, and answers that
//! question.
//!
//! # Representation
//!
//! - `log`: one record per commit seqno (calls of [`ConflictTracker::record`]
//!   with the same seqno share it), oldest first, with its keys (sorted, deduplicated). It exists for
//!   trimming: records leave from the front.
//! - `index`: every key in `log`, mapped to the newest commit seqno that
//!   wrote it. The check reads only this: a point read or a write is one
//!   lookup (`O(log n)`), a scanned range walks the index keys inside the
//!   range (`O(log n + k)`, `k` the distinct keys written within the range
//!   and still in history). The number of records after the snapshot does
//!   not matter.
//!
//! # Invariants
//!
//! - `log` seqnos strictly increase; `index[k]` is the seqno of the newest
//!   record in `log` holding `k`, and `index` holds no other key.
//! - `trimmed_seqno` is at least the seqno of every write the tracker was
//!   told of and no longer holds. A check with a snapshot older than it
//!   fails with [`ConflictReason::HistoryTrimmed`]: a transaction never
//!   commits unchecked.
//! - Trimming for `end()` drops only records with seqno <= the oldest active
//!   snapshot, so it never fails an active transaction; only the byte bound
//!   does.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::ops::Bound;

use bytes::Bytes;

use crate::ReadSet;
use crate::key_range::range_is_empty;

/// Default bound on [`ConflictTracker::history_bytes`]: 64 MiB.
pub const DEFAULT_MAX_HISTORY_BYTES: usize = 64 << 20;

/// Bytes charged per history record on top of its keys.
const RECORD_OVERHEAD_BYTES: usize = 64;
/// Bytes charged per key in a record on top of its length: the record's
/// `Bytes` handle and the key's share of an index node.
const KEY_OVERHEAD_BYTES: usize = 80;

/// Why a transaction may not commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The key that conflicts; empty for [`ConflictReason::HistoryTrimmed`].
    pub key: Bytes,
    /// The newest commit seqno that wrote `key`, after the snapshot; for
    /// [`ConflictReason::HistoryTrimmed`], the newest trimmed seqno.
    pub committed_seqno: u64,
    /// Which part of the transaction the write met.
    pub reason: ConflictReason,
}

/// What a later commit's write met in the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictReason {
    /// A key the transaction read (a point read).
    ReadKeyWritten,
    /// A key inside a range the transaction scanned (a phantom, or a change
    /// to a scanned key).
    ScannedRangeWritten,
    /// A key the transaction writes too.
    WriteWriteConflict,
    /// History newer than the transaction's snapshot was trimmed (by the
    /// byte bound), so the transaction cannot be checked.
    HistoryTrimmed,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.reason {
            ConflictReason::ReadKeyWritten => "a key it read",
            ConflictReason::ScannedRangeWritten => "a key in a range it scanned",
            ConflictReason::WriteWriteConflict => "a key it writes",
            ConflictReason::HistoryTrimmed => {
                return write!(
                    f,
                    "transaction conflict: history up to seqno {} was trimmed",
                    self.committed_seqno
                );
            }
        };
        write!(
            f,
            "transaction conflict: commit {} wrote {what} ({:?})",
            self.committed_seqno, self.key
        )
    }
}

impl std::error::Error for Conflict {}

/// Limits of a [`ConflictTracker`].
#[derive(Debug, Clone)]
pub struct TrackerOptions {
    /// Bound on [`ConflictTracker::history_bytes`]; past it the oldest
    /// records go even while a transaction needs them, and that transaction
    /// fails with [`ConflictReason::HistoryTrimmed`].
    pub max_history_bytes: usize,
}

impl Default for TrackerOptions {
    fn default() -> Self {
        Self {
            max_history_bytes: DEFAULT_MAX_HISTORY_BYTES,
        }
    }
}

/// The keys one commit wrote.
#[derive(Debug)]
struct Record {
    seqno: u64,
    /// Sorted, deduplicated.
    keys: Vec<Bytes>,
    /// Ranges `[start, end)` deleted by range deletes.
    ranges: Vec<(Bytes, Bytes)>,
    /// Charged size, counted in `history_bytes`.
    bytes: usize,
}

/// The history of commits since the oldest active transaction began, and
/// the conflict check against it.
///
/// Thread safety: not internally synchronised; `&mut self` methods need the
/// caller's lock. The engine calls [`record`](Self::record) and
/// [`check`](Self::check) under its single-writer mutex (so a check sees
/// every commit ordered before its own) and [`begin`](Self::begin) /
/// [`end`](Self::end) under a small mutex of their own.
///
/// ```
/// use bytes::Bytes;
/// use kevo_txn::{ConflictReason, ConflictTracker, ReadSet, TrackerOptions};
///
/// let mut tracker = ConflictTracker::new(TrackerOptions::default());
/// tracker.begin(10); // a transaction reads at seqno 10 ...
/// let mut reads = ReadSet::new();
/// reads.add_key(b"x");
/// tracker.record(11, [Bytes::from("x")]); // ... someone else commits x at 11
/// let conflict = tracker.check(10, &reads, &[]).unwrap_err();
/// assert_eq!(conflict.reason, ConflictReason::ReadKeyWritten);
/// tracker.end(10);
/// assert_eq!(tracker.history_len(), 0);
/// ```
#[derive(Debug)]
pub struct ConflictTracker {
    options: TrackerOptions,
    /// Snapshot seqno of each active transaction -> how many.
    active: BTreeMap<u64, usize>,
    log: VecDeque<Record>,
    index: BTreeMap<Bytes, u64>,
    history_bytes: usize,
    trimmed_seqno: u64,
}

impl ConflictTracker {
    /// An empty tracker with no active transaction.
    pub fn new(options: TrackerOptions) -> Self {
        Self {
            options,
            active: BTreeMap::new(),
            log: VecDeque::new(),
            index: BTreeMap::new(),
            history_bytes: 0,
            trimmed_seqno: 0,
        }
    }

    /// A transaction began at snapshot `seqno`: history newer than `seqno`
    /// is kept until the matching [`end`](Self::end).
    ///
    /// A snapshot older than writes already dropped (because no transaction
    /// was active when they were recorded) can begin, but its check fails
    /// with [`ConflictReason::HistoryTrimmed`].
    pub fn begin(&mut self, seqno: u64) {
        *self.active.entry(seqno).or_insert(0) += 1;
    }

    /// The transaction begun at snapshot `seqno` ended (committed or rolled
    /// back); drops history no active transaction needs.
    ///
    /// REQUIRES: a matching [`begin`](Self::begin) not yet ended (checked in
    /// debug builds; otherwise ignored).
    pub fn end(&mut self, seqno: u64) {
        match self.active.get_mut(&seqno) {
            Some(count) if *count > 1 => *count -= 1,
            Some(_) => {
                self.active.remove(&seqno);
            }
            None => debug_assert!(false, "end({seqno}) without a matching begin"),
        }
        self.trim();
    }

    /// Whether any transaction is active. If not, the engine need not call
    /// [`record`](Self::record).
    pub fn has_active(&self) -> bool {
        !self.active.is_empty()
    }

    /// The oldest active snapshot, if any transaction is active.
    pub fn oldest_active(&self) -> Option<u64> {
        self.active.keys().next().copied()
    }

    /// Checks a transaction that read at `snapshot`, read `reads` and writes
    /// `writes` (in any order), against every commit recorded with a seqno
    /// greater than `snapshot`. A commit at `snapshot` itself is visible to
    /// the transaction and never conflicts.
    ///
    /// Checks point reads, then scanned ranges, then writes, and reports the
    /// first conflict found. A transaction that read and writes nothing
    /// always passes.
    ///
    /// # Errors
    ///
    /// [`Conflict`] with [`ConflictReason::ReadKeyWritten`],
    /// [`ScannedRangeWritten`](ConflictReason::ScannedRangeWritten) or
    /// [`WriteWriteConflict`](ConflictReason::WriteWriteConflict) if a later
    /// commit wrote such a key, or
    /// [`HistoryTrimmed`](ConflictReason::HistoryTrimmed) if history after
    /// `snapshot` was dropped and the check cannot be made.
    pub fn check(&self, snapshot: u64, reads: &ReadSet, writes: &[Bytes]) -> Result<(), Conflict> {
        self.check_with_ranges(snapshot, reads, writes, &[])
    }

    /// [`check`](Self::check) for a transaction that also deletes the
    /// ranges `range_writes` (`[start, end)` each). A range delete, its
    /// own or a later commit's, counts as a write of every key in its
    /// range: a later commit's range delete meets a key the transaction
    /// read, a range it scanned or a key it writes; the transaction's own
    /// range delete meets a key or range a later commit wrote.
    ///
    /// # Errors
    /// As [`check`](Self::check).
    pub fn check_with_ranges(
        &self,
        snapshot: u64,
        reads: &ReadSet,
        writes: &[Bytes],
        range_writes: &[(Bytes, Bytes)],
    ) -> Result<(), Conflict> {
        if reads.is_empty() && writes.is_empty() && range_writes.is_empty() {
            return Ok(());
        }
        if snapshot < self.trimmed_seqno {
            return Err(Conflict {
                key: Bytes::new(),
                committed_seqno: self.trimmed_seqno,
                reason: ConflictReason::HistoryTrimmed,
            });
        }
        if self
            .log
            .back()
            .is_none_or(|newest| newest.seqno <= snapshot)
        {
            return Ok(());
        }
        let newer = |seqno: u64| seqno > snapshot;
        let conflict = |key: &Bytes, committed_seqno, reason| Conflict {
            key: key.clone(),
            committed_seqno,
            reason,
        };
        for key in reads.keys() {
            if let Some(&seqno) = self.index.get(key)
                && newer(seqno)
            {
                return Err(conflict(key, seqno, ConflictReason::ReadKeyWritten));
            }
        }
        for (start, end) in reads.ranges() {
            if range_is_empty(start, end) {
                continue;
            }
            let found = self
                .index
                .range::<[u8], _>((start, end))
                .find(|&(_, &seqno)| newer(seqno));
            if let Some((key, &seqno)) = found {
                return Err(conflict(key, seqno, ConflictReason::ScannedRangeWritten));
            }
        }
        for key in writes {
            if let Some(&seqno) = self.index.get(key)
                && newer(seqno)
            {
                return Err(conflict(key, seqno, ConflictReason::WriteWriteConflict));
            }
        }
        for (start, end) in range_writes {
            if start >= end {
                continue;
            }
            let found = self
                .index
                .range::<[u8], _>((Bound::Included(&start[..]), Bound::Excluded(&end[..])))
                .find(|&(_, &seqno)| newer(seqno));
            if let Some((key, &seqno)) = found {
                return Err(conflict(key, seqno, ConflictReason::WriteWriteConflict));
            }
        }
        // Later commits' range deletes.
        let later_ranges = self
            .log
            .iter()
            .rev()
            .take_while(|r| newer(r.seqno))
            .flat_map(|r| r.ranges.iter().map(move |(s, e)| (r.seqno, s, e)));
        for (seqno, start, end) in later_ranges {
            let (s, e) = (&start[..], &end[..]);
            if let Some(key) = reads.keys().find(|k| s <= &k[..] && &k[..] < e) {
                return Err(conflict(key, seqno, ConflictReason::ReadKeyWritten));
            }
            if reads.ranges().any(|range| overlaps(range, s, e)) {
                return Err(conflict(start, seqno, ConflictReason::ScannedRangeWritten));
            }
            if let Some(key) = writes.iter().find(|k| s <= &k[..] && &k[..] < e) {
                return Err(conflict(key, seqno, ConflictReason::WriteWriteConflict));
            }
            let met = range_writes
                .iter()
                .any(|(os, oe)| os < oe && &os[..] < e && s < &oe[..]);
            if met {
                return Err(conflict(start, seqno, ConflictReason::WriteWriteConflict));
            }
        }
        Ok(())
    }

    /// Records the keys written by one commit (a transaction's or a plain
    /// write group's) with seqno `commit_seqno`.
    ///
    /// Only needed while [`has_active`](Self::has_active); called with no
    /// transaction active it keeps nothing but remembers `commit_seqno` as
    /// trimmed, so a transaction that begins afterwards at an older snapshot
    /// fails its check rather than missing this write.
    ///
    /// REQUIRES: `commit_seqno` is not less than that of any earlier call
    /// (checked in debug builds).
    pub fn record(&mut self, commit_seqno: u64, keys: impl IntoIterator<Item = Bytes>) {
        self.record_with_ranges(commit_seqno, keys, Vec::new());
    }

    /// [`record`](Self::record) for a commit that also deleted the ranges
    /// `ranges` (`[start, end)` each; empty ones are ignored).
    pub fn record_with_ranges(
        &mut self,
        commit_seqno: u64,
        keys: impl IntoIterator<Item = Bytes>,
        mut ranges: Vec<(Bytes, Bytes)>,
    ) {
        debug_assert!(
            self.log.back().is_none_or(|r| r.seqno <= commit_seqno),
            "record seqnos must not decrease"
        );
        if !self.has_active() {
            self.trimmed_seqno = self.trimmed_seqno.max(commit_seqno);
            return;
        }
        let mut keys: Vec<Bytes> = keys.into_iter().collect();
        ranges.retain(|(start, end)| start < end);
        if keys.is_empty() && ranges.is_empty() {
            return;
        }
        // One record per seqno, so that a key leaves the index exactly when
        // the last record holding it goes.
        if self.log.back().is_some_and(|r| r.seqno == commit_seqno)
            && let Some(last) = self.log.pop_back()
        {
            self.history_bytes -= last.bytes;
            keys.extend(last.keys);
            ranges.extend(last.ranges);
        }
        keys.sort_unstable();
        keys.dedup();
        let mut bytes = RECORD_OVERHEAD_BYTES;
        for (start, end) in &ranges {
            bytes += 2 * KEY_OVERHEAD_BYTES + start.len() + end.len();
        }
        for key in &keys {
            bytes += KEY_OVERHEAD_BYTES + key.len();
            let seqno = self.index.entry(key.clone()).or_insert(commit_seqno);
            *seqno = (*seqno).max(commit_seqno);
        }
        self.history_bytes += bytes;
        self.log.push_back(Record {
            seqno: commit_seqno,
            keys,
            ranges,
            bytes,
        });
        self.trim();
    }

    /// The number of records (commits) kept.
    pub fn history_len(&self) -> usize {
        self.log.len()
    }

    /// Roughly how much memory the kept history holds: keys and a fixed
    /// overhead per record and per key.
    pub fn history_bytes(&self) -> usize {
        self.history_bytes
    }

    /// The newest seqno of a write the tracker no longer holds (0 if none):
    /// checks with an older snapshot fail with
    /// [`ConflictReason::HistoryTrimmed`].
    pub fn trimmed_seqno(&self) -> u64 {
        self.trimmed_seqno
    }

    /// Drops records no active transaction needs, then the oldest ones
    /// while over the byte bound.
    fn trim(&mut self) {
        let needed_after = self.oldest_active().unwrap_or(u64::MAX);
        while self.log.front().is_some_and(|r| r.seqno <= needed_after) {
            self.drop_oldest();
        }
        while self.history_bytes > self.options.max_history_bytes && !self.log.is_empty() {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        let Some(record) = self.log.pop_front() else {
            return;
        };
        for key in &record.keys {
            // A newer record holding the key keeps it in the index.
            if self.index.get(key) == Some(&record.seqno) {
                self.index.remove(key);
            }
        }
        self.history_bytes -= record.bytes;
        self.trimmed_seqno = self.trimmed_seqno.max(record.seqno);
    }
}

/// Whether the range `(start, end)` and `[s, e)` share a key.
fn overlaps((start, end): (Bound<&[u8]>, Bound<&[u8]>), s: &[u8], e: &[u8]) -> bool {
    // The larger of the two lower bounds and the smaller of the two upper.
    let lower = match start {
        Bound::Unbounded => Bound::Included(s),
        Bound::Included(k) if k >= s => Bound::Included(k),
        Bound::Excluded(k) if k >= s => Bound::Excluded(k),
        _ => Bound::Included(s),
    };
    let upper = match end {
        Bound::Included(k) if k < e => Bound::Included(k),
        Bound::Excluded(k) if k <= e => Bound::Excluded(k),
        _ => Bound::Excluded(e),
    };
    !range_is_empty(lower, upper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Bound::{Excluded, Included, Unbounded};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn tracker() -> ConflictTracker {
        ConflictTracker::new(TrackerOptions::default())
    }

    fn reads_of(keys: &[&str]) -> ReadSet {
        let mut reads = ReadSet::new();
        for k in keys {
            reads.add_key(k.as_bytes());
        }
        reads
    }

    fn reason(result: Result<(), Conflict>) -> Option<ConflictReason> {
        result.err().map(|c| c.reason)
    }

    #[test]
    fn read_key_written_later_conflicts() {
        let mut t = tracker();
        t.begin(5);
        t.record(6, [b("x"), b("y")]);
        let err = t.check(5, &reads_of(&["y"]), &[]).unwrap_err();
        assert_eq!(
            err,
            Conflict {
                key: b("y"),
                committed_seqno: 6,
                reason: ConflictReason::ReadKeyWritten
            }
        );
        assert_eq!(t.check(5, &reads_of(&["z"]), &[]), Ok(()));
    }

    #[test]
    fn range_deletes_conflict_as_writes_of_their_whole_range() {
        let mut t = tracker();
        t.begin(5);
        t.record_with_ranges(6, [], vec![(b("c"), b("f"))]);
        // A key read inside a later range delete.
        assert_eq!(
            reason(t.check(5, &reads_of(&["d"]), &[])),
            Some(ConflictReason::ReadKeyWritten)
        );
        assert_eq!(t.check(5, &reads_of(&["f", "b"]), &[]), Ok(()));
        // A scanned range meeting it, or not.
        let mut scanned = ReadSet::new();
        scanned.add_range(Excluded(b"a"), Included(b"c"));
        assert_eq!(
            reason(t.check(5, &scanned, &[])),
            Some(ConflictReason::ScannedRangeWritten)
        );
        let mut apart = ReadSet::new();
        apart.add_range(Included(b"f"), Unbounded);
        assert_eq!(t.check(5, &apart, &[]), Ok(()));
        // A key written inside it; a range deleted over it.
        assert_eq!(
            reason(t.check(5, &ReadSet::new(), &[b("e")])),
            Some(ConflictReason::WriteWriteConflict)
        );
        let own = [(b("a"), b("d"))];
        assert_eq!(
            reason(t.check_with_ranges(5, &ReadSet::new(), &[], &own)),
            Some(ConflictReason::WriteWriteConflict)
        );
        assert_eq!(
            t.check_with_ranges(5, &ReadSet::new(), &[], &[(b("f"), b("z"))]),
            Ok(())
        );
        // The transaction's own range delete over a key a later commit wrote.
        t.record(7, [b("x")]);
        assert_eq!(
            reason(t.check_with_ranges(5, &ReadSet::new(), &[], &[(b("w"), b("y"))])),
            Some(ConflictReason::WriteWriteConflict)
        );
        // Seen by the transaction: no conflict.
        assert_eq!(t.check(6, &reads_of(&["d"]), &[b("e")]), Ok(()));
        t.end(5);
        assert_eq!(t.history_len(), 0);
    }

    #[test]
    fn write_write_conflicts_without_reads() {
        let mut t = tracker();
        t.begin(5);
        t.record(7, [b("k")]);
        let err = t.check(5, &ReadSet::new(), &[b("a"), b("k")]).unwrap_err();
        assert_eq!(err.reason, ConflictReason::WriteWriteConflict);
        assert_eq!((err.key, err.committed_seqno), (b("k"), 7));
    }

    #[test]
    fn a_phantom_in_a_scanned_range_conflicts() {
        let mut t = tracker();
        t.begin(5);
        t.record(6, [b("m")]);
        let mut reads = ReadSet::new();
        reads.add_range(Included(b"a"), Excluded(b"m"));
        assert_eq!(t.check(5, &reads, &[]), Ok(()), "m is outside [a, m)");
        reads.add_range(Excluded(b"l"), Unbounded);
        let err = t.check(5, &reads, &[]).unwrap_err();
        assert_eq!(err.reason, ConflictReason::ScannedRangeWritten);
        assert_eq!(err.key, b("m"));
    }

    #[test]
    fn commit_at_the_snapshot_seqno_is_visible_not_a_conflict() {
        let mut t = tracker();
        t.begin(5);
        t.record(5, [b("x")]);
        t.record(6, [b("y")]);
        assert_eq!(t.check(6, &reads_of(&["x", "y"]), &[b("x")]), Ok(()));
        assert_eq!(t.check(5, &reads_of(&["x"]), &[b("x")]), Ok(()));
        assert_eq!(
            reason(t.check(5, &reads_of(&["y"]), &[])),
            Some(ConflictReason::ReadKeyWritten)
        );
    }

    #[test]
    fn the_newest_write_to_a_key_is_reported() {
        let mut t = tracker();
        t.begin(1);
        t.record(2, [b("k")]);
        t.record(3, [b("k"), b("k")]);
        let err = t.check(1, &reads_of(&["k"]), &[]).unwrap_err();
        assert_eq!(err.committed_seqno, 3);
        assert_eq!(t.history_len(), 2);
    }

    #[test]
    fn records_with_the_same_seqno_share_one_record() {
        let mut t = tracker();
        t.begin(1);
        t.record(2, [b("a")]);
        t.record(2, [b("b"), b("a")]);
        assert_eq!(t.history_len(), 1);
        assert_eq!(
            t.history_bytes(),
            RECORD_OVERHEAD_BYTES + 2 * (KEY_OVERHEAD_BYTES + 1)
        );
        t.end(1);
        assert_eq!((t.history_len(), t.history_bytes()), (0, 0));
        assert!(t.index.is_empty());
    }

    #[test]
    fn end_trims_what_no_active_transaction_needs() {
        let mut t = tracker();
        t.begin(10);
        t.record(11, [b("a")]);
        t.begin(11);
        t.record(12, [b("b")]);
        t.record(13, [b("c")]);
        assert_eq!(t.history_len(), 3);
        t.end(10);
        // 11 is at the oldest active snapshot: visible to it, dropped.
        assert_eq!(t.history_len(), 2);
        assert_eq!(t.oldest_active(), Some(11));
        assert_eq!(t.check(11, &reads_of(&["a"]), &[]), Ok(()));
        assert_eq!(
            reason(t.check(11, &reads_of(&["b"]), &[])),
            Some(ConflictReason::ReadKeyWritten)
        );
        t.end(11);
        assert!(!t.has_active());
        assert_eq!((t.history_len(), t.history_bytes()), (0, 0));
        assert!(t.index.is_empty());
    }

    #[test]
    fn two_transactions_at_one_snapshot_keep_history_until_both_end() {
        let mut t = tracker();
        t.begin(3);
        t.begin(3);
        t.record(4, [b("a")]);
        t.end(3);
        assert_eq!(t.history_len(), 1);
        assert_eq!(
            reason(t.check(3, &reads_of(&["a"]), &[])),
            Some(ConflictReason::ReadKeyWritten)
        );
        t.end(3);
        assert_eq!(t.history_len(), 0);
    }

    #[test]
    fn byte_bound_trims_and_fails_older_snapshots_with_history_trimmed() {
        let one_record = RECORD_OVERHEAD_BYTES + KEY_OVERHEAD_BYTES + 1;
        let mut t = ConflictTracker::new(TrackerOptions {
            max_history_bytes: 2 * one_record,
        });
        t.begin(1);
        t.record(2, [b("a")]);
        t.record(3, [b("b")]);
        assert_eq!(t.history_len(), 2);
        t.record(4, [b("c")]);
        assert_eq!(t.history_len(), 2, "the record at 2 went");
        assert!(t.history_bytes() <= 2 * one_record);
        assert_eq!(t.trimmed_seqno(), 2);
        // Even a read of an unrelated key cannot be checked: never commit unchecked.
        let err = t.check(1, &reads_of(&["zzz"]), &[]).unwrap_err();
        assert_eq!(
            err,
            Conflict {
                key: Bytes::new(),
                committed_seqno: 2,
                reason: ConflictReason::HistoryTrimmed
            }
        );
        // A transaction at a snapshot at or after the trimmed seqno still checks.
        t.begin(2);
        assert_eq!(t.check(2, &reads_of(&["zzz"]), &[]), Ok(()));
        assert_eq!(
            reason(t.check(2, &reads_of(&["c"]), &[])),
            Some(ConflictReason::ReadKeyWritten)
        );
    }

    #[test]
    fn an_oversized_record_is_trimmed_at_once() {
        let mut t = ConflictTracker::new(TrackerOptions {
            max_history_bytes: 10,
        });
        t.begin(1);
        t.record(2, [b("a")]);
        assert_eq!((t.history_len(), t.history_bytes()), (0, 0));
        assert_eq!(
            reason(t.check(1, &ReadSet::new(), &[b("b")])),
            Some(ConflictReason::HistoryTrimmed)
        );
    }

    #[test]
    fn writes_recorded_with_no_transaction_active_fail_a_late_older_snapshot() {
        // The engine published seqno 5 to a transaction beginning at 4 only
        // after recording it with nobody active: the tracker kept nothing,
        // so the transaction must not commit unchecked.
        let mut t = tracker();
        t.record(5, [b("a")]);
        assert_eq!(t.history_len(), 0);
        t.begin(4);
        assert_eq!(
            reason(t.check(4, &reads_of(&["b"]), &[])),
            Some(ConflictReason::HistoryTrimmed)
        );
        t.begin(5);
        assert_eq!(t.check(5, &reads_of(&["a"]), &[b("a")]), Ok(()));
    }

    #[test]
    fn a_transaction_that_read_and_writes_nothing_passes() {
        let mut t = ConflictTracker::new(TrackerOptions {
            max_history_bytes: 0,
        });
        t.begin(1);
        t.record(2, [b("a")]);
        assert_eq!(t.check(1, &ReadSet::new(), &[]), Ok(()));
    }

    #[test]
    fn conflicts_display_their_cause() {
        let c = Conflict {
            key: b("k"),
            committed_seqno: 9,
            reason: ConflictReason::WriteWriteConflict,
        };
        assert_eq!(
            c.to_string(),
            "transaction conflict: commit 9 wrote a key it writes (b\"k\")"
        );
    }
}
