//! [`TableMeta`]: what the version set records about one table file, and
//! the limits every version keeps ([`NUM_LEVELS`]).

use std::cmp::Ordering;

use kevo_core::{InternalKey, KEY_BYTES_MAX, SEQNO_MAX, SeqNo, compare_internal_keys};

/// Number of levels in the tree: L0 (flushed tables, overlapping) and
/// L1..L6 (each a sorted run of non-overlapping tables).
pub const NUM_LEVELS: usize = 7;

/// The largest file number the version set hands out or accepts, far
/// beyond any real counter; it keeps `number + 1` from overflowing.
pub(crate) const FILE_NUMBER_MAX: u64 = 1 << 62;

/// What the version set records about one table file (`NNNNNN.sst`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    /// The file number (see [`table_file_name`](crate::table_file_name)).
    pub number: u64,
    /// The file's size in bytes.
    pub file_size: u64,
    /// The smallest internal key in the table.
    pub smallest: InternalKey,
    /// The largest internal key in the table.
    pub largest: InternalKey,
    /// The smallest sequence number of an entry in the table.
    pub smallest_seqno: SeqNo,
    /// The largest sequence number of an entry in the table.
    pub largest_seqno: SeqNo,
    /// Entries in the table (tombstones included).
    pub entries: u64,
    /// Tombstones (deletes) among the entries.
    pub tombstones: u64,
    /// Range tombstones the table holds besides its entries (in stored,
    /// fragmented form: one per fragment and seqno). A table may hold
    /// range tombstones and no entry.
    pub range_tombstones: u64,
}

impl TableMeta {
    /// The user key of [`TableMeta::smallest`].
    pub fn smallest_user_key(&self) -> &[u8] {
        self.smallest.user_key()
    }

    /// Whether the table holds range tombstones.
    pub fn has_range_tombstones(&self) -> bool {
        self.range_tombstones > 0
    }

    /// The user key of [`TableMeta::largest`].
    pub fn largest_user_key(&self) -> &[u8] {
        self.largest.user_key()
    }

    /// Whether the table's user-key range intersects `[start, end]`, both
    /// inclusive; `None` is unbounded on that side.
    pub fn overlaps(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> bool {
        let before = start.is_some_and(|start| self.largest_user_key() < start);
        let after = end.is_some_and(|end| self.smallest_user_key() > end);
        !before && !after
    }

    /// Why this table cannot be recorded, if it cannot: what
    /// [`VersionEdit::decode`] would reject, or an impossible range.
    pub(crate) fn check(&self) -> Result<(), String> {
        let number = self.number;
        if number > FILE_NUMBER_MAX {
            return Err(format!(
                "table number {number} exceeds the maximum {FILE_NUMBER_MAX}"
            ));
        }
        for key in [&self.smallest, &self.largest] {
            if key.user_key().len() > KEY_BYTES_MAX {
                return Err(format!(
                    "table {number}: a user key of {} bytes exceeds the maximum of {KEY_BYTES_MAX}",
                    key.user_key().len()
                ));
            }
        }
        if compare_internal_keys(self.smallest.as_bytes(), self.largest.as_bytes())
            == Ordering::Greater
        {
            return Err(format!(
                "table {number}: smallest key {:?} is above largest key {:?}",
                self.smallest, self.largest
            ));
        }
        if self.smallest_seqno > self.largest_seqno || self.largest_seqno > SEQNO_MAX {
            return Err(format!(
                "table {number}: impossible seqno range {}..={}",
                self.smallest_seqno, self.largest_seqno
            ));
        }
        if self.tombstones > self.entries {
            return Err(format!(
                "table {number}: {} tombstones among {} entries",
                self.tombstones, self.entries
            ));
        }
        Ok(())
    }
}
