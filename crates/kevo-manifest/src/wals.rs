//! [`WalSegments`]: the WAL segments a manifest tracks, as RocksDB's
//! `track_and_verify_wals_in_manifest` does.
//!
//! The engine records each segment before the first record goes into it
//! (`VersionEdit::wal_segments_added`) and, once it is sealed (synced, no
//! more records), its length (`VersionEdit::wal_segments_sealed`). A
//! segment stops being tracked when the log number moves past it. At open
//! the engine checks the directory against this list: a tracked segment
//! that is missing, shorter than its header, or shorter than its sealed
//! length is damage, never a crash.

use std::collections::BTreeMap;

use crate::edit::VersionEdit;

/// The tracked WAL segments: every live one (numbered at or above the log
/// number), oldest first, with the synced length of the sealed ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalSegments {
    /// Segment number -> sealed length (`None` while records may still be
    /// appended).
    segments: BTreeMap<u64, Option<u64>>,
}

impl WalSegments {
    /// Whether `segment` is tracked; `Some(Some(bytes))` if it is sealed.
    pub fn get(&self, segment: u64) -> Option<Option<u64>> {
        self.segments.get(&segment).copied()
    }

    /// Every tracked segment, oldest first, with its sealed length if any.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Option<u64>)> + '_ {
        self.segments.iter().map(|(&n, &sealed)| (n, sealed))
    }

    /// The newest tracked segment.
    pub fn newest(&self) -> Option<u64> {
        self.segments.keys().next_back().copied()
    }

    /// How many segments are tracked.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether no segment is tracked.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Tracks `segment` (sealed at `sealed` bytes, if given), replacing
    /// what was known of it: for building the state a new manifest starts
    /// from.
    pub fn insert(&mut self, segment: u64, sealed: Option<u64>) {
        self.segments.insert(segment, sealed);
    }

    /// The set after `edit` (whose log number is already raised to the
    /// set's: `log_number`), or why the edit does not apply: a segment
    /// added that is not newer than every tracked one, a segment sealed
    /// that is not tracked (unless it is below the log number: retired),
    /// or sealed twice with different lengths.
    pub(crate) fn apply(&self, edit: &VersionEdit, log_number: u64) -> Result<WalSegments, String> {
        let mut segments = self.segments.clone();
        for &number in &edit.wal_segments_added {
            if let Some(&newest) = segments.keys().next_back()
                && number <= newest
            {
                return Err(format!(
                    "adds WAL segment {number}, which is not newer than tracked segment {newest}"
                ));
            }
            segments.insert(number, None);
        }
        for &(number, bytes) in &edit.wal_segments_sealed {
            match segments.get_mut(&number) {
                // The log seals a segment after rotating away from it; a
                // flush may have retired it first.
                None if number < log_number => {}
                None => return Err(format!("seals WAL segment {number}, which is not tracked")),
                Some(Some(sealed)) if *sealed != bytes => {
                    return Err(format!(
                        "seals WAL segment {number} at {bytes} bytes, already sealed at {sealed}"
                    ));
                }
                Some(slot) => *slot = Some(bytes),
            }
        }
        segments.retain(|&number, _| number >= log_number);
        Ok(WalSegments { segments })
    }

    /// The fields of a snapshot edit that recreate this set.
    pub(crate) fn fill_snapshot(&self, edit: &mut VersionEdit) {
        edit.wal_segments_added = self.segments.keys().copied().collect();
        edit.wal_segments_sealed = self
            .segments
            .iter()
            .filter_map(|(&n, &sealed)| Some((n, sealed?)))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(added: &[u64], sealed: &[(u64, u64)]) -> VersionEdit {
        VersionEdit {
            wal_segments_added: added.to_vec(),
            wal_segments_sealed: sealed.to_vec(),
            ..VersionEdit::default()
        }
    }

    #[test]
    fn segments_are_added_sealed_and_dropped_below_the_log_number() {
        let set = WalSegments::default();
        let set = set.apply(&edit(&[3], &[]), 0).unwrap();
        let set = set.apply(&edit(&[4], &[(3, 1000)]), 0).unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), [(3, Some(1000)), (4, None)]);
        assert_eq!(set.newest(), Some(4));
        let set = set.apply(&VersionEdit::default(), 4).unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), [(4, None)]);
        // A snapshot edit recreates the set.
        let mut snapshot = VersionEdit::default();
        set.apply(&edit(&[], &[(4, 24)]), 4)
            .unwrap()
            .fill_snapshot(&mut snapshot);
        assert_eq!(snapshot.wal_segments_added, [4]);
        assert_eq!(snapshot.wal_segments_sealed, [(4, 24)]);
    }

    #[test]
    fn impossible_wal_edits_are_refused() {
        let set = WalSegments::default().apply(&edit(&[5], &[]), 0).unwrap();
        assert!(
            set.apply(&edit(&[5], &[]), 0)
                .unwrap_err()
                .contains("not newer")
        );
        assert!(
            set.apply(&edit(&[4], &[]), 0)
                .unwrap_err()
                .contains("not newer")
        );
        assert!(
            set.apply(&edit(&[], &[(6, 1)]), 0)
                .unwrap_err()
                .contains("not tracked")
        );
        // A seal that comes after a flush retired the segment is moot.
        let retired = set.apply(&edit(&[6], &[]), 6).unwrap();
        assert_eq!(retired.apply(&edit(&[], &[(5, 100)]), 6).unwrap(), retired);
        assert!(
            retired
                .apply(&edit(&[], &[(7, 1)]), 6)
                .unwrap_err()
                .contains("not tracked")
        );
        let sealed = set.apply(&edit(&[], &[(5, 100)]), 0).unwrap();
        assert!(sealed.apply(&edit(&[], &[(5, 100)]), 0).is_ok());
        assert!(
            sealed
                .apply(&edit(&[], &[(5, 99)]), 0)
                .unwrap_err()
                .contains("already sealed")
        );
    }
}
