//! [`Version`]: which tables make up the tree, level by level, at one
//! moment.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kevo_core::compare_internal_keys;

use crate::edit::VersionEdit;
use crate::meta::{NUM_LEVELS, TableMeta};

/// The tables of the tree at one moment: an immutable snapshot, shared as
/// `Arc<Version>` by readers, flushes and compactions.
///
/// # Invariants
/// - L0 is ordered newest first: `largest_seqno` descending, then `number`
///   descending.
/// - Each level from L1 on is ordered by smallest key and its tables'
///   user-key ranges are disjoint (the largest user key of a table is below
///   the smallest user key of the next), so one user key is in at most one
///   table per level.
/// - A table number appears at most once in the whole version.
#[derive(Debug, Default)]
pub struct Version {
    levels: [Vec<Arc<TableMeta>>; NUM_LEVELS],
}

impl Version {
    /// The tables of `level` in the level's order (see the type's
    /// invariants); empty for `level >= NUM_LEVELS`.
    pub fn level(&self, level: usize) -> &[Arc<TableMeta>] {
        self.levels.get(level).map_or(&[], Vec::as_slice)
    }

    /// [`NUM_LEVELS`].
    pub fn num_levels(&self) -> usize {
        NUM_LEVELS
    }

    /// Sum of the file sizes of `level`'s tables.
    pub fn level_bytes(&self, level: usize) -> u64 {
        self.level(level).iter().map(|t| t.file_size).sum()
    }

    /// Number of tables in all levels.
    pub fn table_count(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    /// Sum of the file sizes of all tables.
    pub fn total_bytes(&self) -> u64 {
        (0..NUM_LEVELS).map(|l| self.level_bytes(l)).sum()
    }

    /// Every table with its level, level by level in each level's order.
    pub fn tables(&self) -> impl Iterator<Item = (usize, &Arc<TableMeta>)> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(|(level, tables)| tables.iter().map(move |t| (level, t)))
    }

    /// The tables of `level` whose user-key range meets `[start, end]`
    /// (both inclusive; `None` is unbounded), in the level's order.
    pub fn overlapping(
        &self,
        level: usize,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> Vec<Arc<TableMeta>> {
        let tables = self.level(level);
        if level == 0 {
            return tables
                .iter()
                .filter(|t| t.overlaps(start, end))
                .cloned()
                .collect();
        }
        tables[self.overlapping_run(level, start, end)].to_vec()
    }

    /// For `level >= 1` (disjoint, sorted tables): where in
    /// [`level`](Self::level) the tables overlapping `[start, end]` lie,
    /// as one run (empty if none), found by binary search and without
    /// cloning a table's handle.
    pub fn overlapping_run(
        &self,
        level: usize,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> std::ops::Range<usize> {
        let tables = self.level(level);
        let first = start.map_or(0, |start| {
            tables.partition_point(|t| t.largest_user_key() < start)
        });
        let past = end.map_or(tables.len(), |end| {
            tables.partition_point(|t| t.smallest_user_key() <= end)
        });
        first..past.max(first)
    }

    /// For `level >= 1`: the one table whose user-key range holds
    /// `user_key`, if any (binary search). `None` for L0, whose tables
    /// overlap (use [`Version::overlapping`]), and past the last level.
    pub fn table_for_key(&self, level: usize, user_key: &[u8]) -> Option<&Arc<TableMeta>> {
        if level == 0 {
            return None;
        }
        let tables = self.level(level);
        let at = tables.partition_point(|t| t.largest_user_key() < user_key);
        tables.get(at).filter(|t| t.smallest_user_key() <= user_key)
    }

    /// Every table number in this version.
    pub(crate) fn table_numbers(&self) -> impl Iterator<Item = u64> {
        self.tables().map(|(_, t)| t.number)
    }

    /// The version `edit` makes of this one, or why the edit does not apply:
    /// a removed table that is not at that level, a number added twice or
    /// already present, a level out of range, a table that cannot be
    /// recorded, or overlapping tables in a level from L1 on. Moving a table
    /// (removing it from one level and adding it to another in one edit) is
    /// allowed.
    pub(crate) fn apply(&self, edit: &VersionEdit) -> Result<Version, String> {
        let mut levels: [BTreeMap<u64, Arc<TableMeta>>; NUM_LEVELS] = Default::default();
        for (level, tables) in self.levels.iter().enumerate() {
            levels[level] = tables.iter().map(|t| (t.number, Arc::clone(t))).collect();
        }
        let mut removed = BTreeSet::new();
        for &(level, number) in &edit.removed {
            let Some(tables) = levels.get_mut(level) else {
                return Err(format!(
                    "removes table {number} from level {level}, which does not exist"
                ));
            };
            if tables.remove(&number).is_none() {
                return Err(format!(
                    "removes table {number}, which is not in level {level}"
                ));
            }
            removed.insert(number);
        }
        let mut present: BTreeSet<u64> = levels.iter().flat_map(|l| l.keys().copied()).collect();
        for (level, table) in &edit.added {
            let level = *level;
            if level >= NUM_LEVELS {
                return Err(format!(
                    "adds table {} to level {level}, which does not exist",
                    table.number
                ));
            }
            table.check()?;
            if !present.insert(table.number) {
                return Err(format!(
                    "adds table {}, which is already in the version",
                    table.number
                ));
            }
            levels[level].insert(table.number, Arc::new(table.clone()));
        }
        let mut version = Version::default();
        for (level, tables) in levels.into_iter().enumerate() {
            let mut tables: Vec<Arc<TableMeta>> = tables.into_values().collect();
            if level == 0 {
                tables.sort_by(|a, b| {
                    b.largest_seqno
                        .cmp(&a.largest_seqno)
                        .then(b.number.cmp(&a.number))
                });
            } else {
                tables.sort_by(|a, b| {
                    compare_internal_keys(a.smallest.as_bytes(), b.smallest.as_bytes())
                        .then(a.number.cmp(&b.number))
                });
                for pair in tables.windows(2) {
                    if pair[0].largest_user_key() >= pair[1].smallest_user_key() {
                        return Err(format!(
                            "tables {} and {} overlap in level {level}",
                            pair[0].number, pair[1].number
                        ));
                    }
                }
            }
            version.levels[level] = tables;
        }
        Ok(version)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::meta::FILE_NUMBER_MAX;
    use kevo_core::{InternalKey, KEY_BYTES_MAX, ValueKind};

    /// A table over user keys `lo..=hi` with seqnos `lo_seq..=hi_seq`.
    pub(crate) fn table(number: u64, lo: &str, hi: &str, seqnos: (u64, u64)) -> TableMeta {
        TableMeta {
            number,
            file_size: 100 * number,
            smallest: InternalKey::new(lo.as_bytes(), seqnos.1, ValueKind::Put),
            largest: InternalKey::new(hi.as_bytes(), seqnos.0, ValueKind::Put),
            smallest_seqno: seqnos.0,
            largest_seqno: seqnos.1,
            entries: 10,
            tombstones: 1,
            range_tombstones: 0,
        }
    }

    fn add(tables: &[(usize, TableMeta)]) -> VersionEdit {
        VersionEdit {
            added: tables.to_vec(),
            ..VersionEdit::default()
        }
    }

    fn numbers(tables: &[Arc<TableMeta>]) -> Vec<u64> {
        tables.iter().map(|t| t.number).collect()
    }

    #[test]
    fn overlaps_is_inclusive_and_unbounded_with_none() {
        let t = table(1, "c", "f", (1, 2));
        assert!(t.overlaps(None, None));
        assert!(t.overlaps(Some(b"f"), None));
        assert!(t.overlaps(None, Some(b"c")));
        assert!(t.overlaps(Some(b"a"), Some(b"z")));
        assert!(t.overlaps(Some(b"d"), Some(b"e")));
        assert!(!t.overlaps(Some(b"f\0"), None));
        assert!(!t.overlaps(None, Some(b"b")));
        assert!(!t.overlaps(Some(b"g"), Some(b"h")));
        assert_eq!(t.smallest_user_key(), b"c");
        assert_eq!(t.largest_user_key(), b"f");
    }

    #[test]
    fn level_zero_is_newest_first() {
        let v = Version::default()
            .apply(&add(&[
                (0, table(3, "a", "z", (1, 5))),
                (0, table(4, "a", "z", (6, 9))),
                (0, table(7, "a", "z", (2, 5))),
            ]))
            .unwrap();
        assert_eq!(numbers(v.level(0)), vec![4, 7, 3]);
        assert_eq!(v.table_count(), 3);
        assert_eq!(v.level_bytes(0), 1400);
        assert_eq!(v.total_bytes(), 1400);
        assert_eq!(v.table_for_key(0, b"m"), None);
        assert_eq!(
            numbers(&v.overlapping(0, Some(b"b"), Some(b"c"))),
            vec![4, 7, 3]
        );
    }

    #[test]
    fn deeper_levels_are_sorted_and_searchable() {
        let v = Version::default()
            .apply(&add(&[
                (2, table(5, "m", "p", (1, 1))),
                (2, table(6, "a", "c", (1, 1))),
                (2, table(8, "e", "k", (1, 1))),
                (1, table(9, "b", "x", (1, 1))),
            ]))
            .unwrap();
        assert_eq!(numbers(v.level(2)), vec![6, 8, 5]);
        assert_eq!(v.num_levels(), NUM_LEVELS);
        assert!(v.level(NUM_LEVELS).is_empty());
        assert!(v.level(99).is_empty());
        assert_eq!(v.table_for_key(2, b"a").map(|t| t.number), Some(6));
        assert_eq!(v.table_for_key(2, b"c").map(|t| t.number), Some(6));
        assert_eq!(v.table_for_key(2, b"d"), None);
        assert_eq!(v.table_for_key(2, b"k").map(|t| t.number), Some(8));
        assert_eq!(v.table_for_key(2, b"z"), None);
        assert_eq!(v.table_for_key(1, b"q").map(|t| t.number), Some(9));
        assert_eq!(v.table_for_key(3, b"q"), None);
        assert_eq!(v.table_for_key(NUM_LEVELS, b"q"), None);
        assert_eq!(
            numbers(&v.overlapping(2, Some(b"c"), Some(b"m"))),
            vec![6, 8, 5]
        );
        assert_eq!(
            numbers(&v.overlapping(2, Some(b"d"), Some(b"d"))),
            Vec::<u64>::new()
        );
        assert_eq!(numbers(&v.overlapping(2, Some(b"l"), None)), vec![5]);
        assert_eq!(numbers(&v.overlapping(2, None, Some(b"e"))), vec![6, 8]);
        assert_eq!(numbers(&v.overlapping(2, None, None)), vec![6, 8, 5]);
        // The run agrees with a filter of the whole level, for bounds
        // before, between, inside and past the tables, and reversed.
        let keys: [Option<&[u8]>; 8] = [
            None,
            Some(b"0"),
            Some(b"a"),
            Some(b"d"),
            Some(b"f"),
            Some(b"p"),
            Some(b"q"),
            Some(b"z"),
        ];
        for start in keys {
            for end in keys {
                let run = v.overlapping_run(2, start, end);
                let filtered: Vec<u64> = v
                    .level(2)
                    .iter()
                    .filter(|t| t.overlaps(start, end))
                    .map(|t| t.number)
                    .collect();
                assert_eq!(numbers(&v.level(2)[run]), filtered, "{start:?}..={end:?}");
            }
        }
        let all: Vec<(usize, u64)> = v.tables().map(|(l, t)| (l, t.number)).collect();
        assert_eq!(all, vec![(1, 9), (2, 6), (2, 8), (2, 5)]);
    }

    #[test]
    fn removing_a_table_that_is_not_there_is_rejected() {
        let v = Version::default()
            .apply(&add(&[(1, table(1, "a", "b", (1, 1)))]))
            .unwrap();
        let edit = VersionEdit {
            removed: vec![(2, 1)],
            ..VersionEdit::default()
        };
        assert!(v.apply(&edit).unwrap_err().contains("not in level 2"));
        let edit = VersionEdit {
            removed: vec![(1, 1), (1, 1)],
            ..VersionEdit::default()
        };
        assert!(v.apply(&edit).is_err());
        let edit = VersionEdit {
            removed: vec![(NUM_LEVELS, 1)],
            ..VersionEdit::default()
        };
        assert!(v.apply(&edit).is_err());
    }

    #[test]
    fn adding_a_number_twice_is_rejected() {
        let v = Version::default()
            .apply(&add(&[(0, table(1, "a", "b", (1, 1)))]))
            .unwrap();
        assert!(v.apply(&add(&[(3, table(1, "x", "y", (1, 1)))])).is_err());
        let twice = add(&[
            (0, table(2, "a", "b", (1, 1))),
            (0, table(2, "a", "b", (1, 1))),
        ]);
        assert!(Version::default().apply(&twice).is_err());
    }

    #[test]
    fn moving_a_table_between_levels_is_allowed() {
        let v = Version::default()
            .apply(&add(&[(1, table(4, "a", "b", (1, 1)))]))
            .unwrap();
        let edit = VersionEdit {
            removed: vec![(1, 4)],
            added: vec![(2, table(4, "a", "b", (1, 1)))],
            ..VersionEdit::default()
        };
        let moved = v.apply(&edit).unwrap();
        assert!(moved.level(1).is_empty());
        assert_eq!(numbers(moved.level(2)), vec![4]);
    }

    #[test]
    fn overlap_in_a_deeper_level_is_rejected() {
        let v = Version::default()
            .apply(&add(&[(1, table(1, "c", "f", (1, 1)))]))
            .unwrap();
        for (lo, hi) in [("a", "c"), ("f", "g"), ("d", "e"), ("a", "z")] {
            let err = v.apply(&add(&[(1, table(2, lo, hi, (1, 1)))])).unwrap_err();
            assert!(err.contains("overlap"), "{lo}..{hi}: {err}");
        }
        // Touching is fine when the user keys differ; L0 may overlap.
        v.apply(&add(&[(1, table(2, "f\0", "g", (1, 1)))])).unwrap();
        v.apply(&add(&[(0, table(2, "a", "z", (1, 1)))])).unwrap();
    }

    #[test]
    fn impossible_tables_and_levels_are_rejected() {
        let v = Version::default();
        assert!(
            v.apply(&add(&[(NUM_LEVELS, table(1, "a", "b", (1, 1)))]))
                .is_err()
        );
        assert!(v.apply(&add(&[(0, table(1, "b", "a", (1, 1)))])).is_err());
        assert!(v.apply(&add(&[(0, table(1, "a", "b", (5, 1)))])).is_err());
        let long = "k".repeat(KEY_BYTES_MAX + 1);
        assert!(v.apply(&add(&[(0, table(1, "a", &long, (1, 1)))])).is_err());
        let mut t = table(1, "a", "b", (1, 1));
        t.tombstones = t.entries + 1;
        assert!(v.apply(&add(&[(0, t)])).is_err());
        let mut t = table(1, "a", "b", (1, 1));
        t.number = FILE_NUMBER_MAX + 1;
        assert!(v.apply(&add(&[(0, t)])).is_err());
    }
}
