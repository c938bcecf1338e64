//! [`pick_delete_only`]: tables a range tombstone deletes whole, dropped
//! without reading or writing them (Pebble's delete-only compactions).
//!
//! A table `X` can go when a range tombstone `@t` held by a table above it
//! (a shallower level, or an older position in L0... see below) covers
//! every user key of `X`, `t` is above every seqno in `X`, and every reader
//! sees the tombstone (`t` at or below the oldest live snapshot, or the
//! newest seqno without snapshots). Then no reader can see anything of `X`:
//! its entries are deleted for all, and whatever its own tombstones hid
//! below it lies in the covering tombstone's range with older seqnos, so it
//! stays hidden. Removing `X` is one manifest edit.
//!
//! Candidates are the tables of the levels below the holder's (for a
//! holder in L0, also the older L0 tables), not busy in another
//! compaction.

use std::collections::BTreeSet;
use std::sync::Arc;

use kevo_core::{FragmentedTombstones, SeqNo};
use kevo_manifest::{TableMeta, Version};

use crate::task::{CompactionReason, CompactionTask, LevelInputs};

/// A table holding range tombstones, with them: a source for
/// [`pick_delete_only`].
#[derive(Debug, Clone)]
pub struct TombstoneHolder {
    /// Its level.
    pub level: usize,
    /// The table.
    pub table: Arc<TableMeta>,
    /// Its range tombstones.
    pub tombstones: Arc<FragmentedTombstones>,
}

/// The tables of `version` that a holder's range tombstone covers whole
/// for every reader at `read_seqno` (the oldest live snapshot, or the
/// newest seqno), as one delete-only task; `None` if there are none.
/// Tables in `busy` are left alone.
pub fn pick_delete_only(
    version: &Version,
    holders: &[TombstoneHolder],
    read_seqno: SeqNo,
    busy: &BTreeSet<u64>,
) -> Option<CompactionTask> {
    let mut chosen: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut inputs: Vec<LevelInputs> = Vec::new();
    for holder in holders {
        let (lo, hi) = match holder.tombstones.bounds() {
            Some((lo, hi)) => (lo.to_vec(), hi.to_vec()),
            None => continue,
        };
        for level in holder.level..version.num_levels() {
            for table in version.overlapping(level, Some(&lo), Some(&hi)) {
                let below = level > holder.level
                    || (level == 0 && table.largest_seqno < holder.table.smallest_seqno);
                if !below
                    || table.number == holder.table.number
                    || busy.contains(&table.number)
                    || chosen.contains(&(level, table.number))
                {
                    continue;
                }
                let covered = holder.tombstones.covers_range(
                    table.smallest_user_key(),
                    table.largest_user_key(),
                    table.largest_seqno,
                    read_seqno,
                );
                if covered {
                    chosen.insert((level, table.number));
                    match inputs.iter_mut().find(|i| i.level == level) {
                        Some(i) => i.tables.push(table),
                        None => inputs.push(LevelInputs {
                            level,
                            tables: vec![table],
                        }),
                    }
                }
            }
        }
    }
    if inputs.is_empty() {
        return None;
    }
    inputs.sort_by_key(|i| i.level);
    let output_level = inputs[0].level;
    Some(CompactionTask {
        inputs,
        output_level,
        trivial_move: false,
        reason: CompactionReason::DeleteOnly,
        score: 1.0,
        drop_tombstones: false,
        grandparents: Vec::new(),
        target_file_bytes: u64::MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevo_core::{InternalKey, MemFs, RangeTombstone, ValueKind};
    use kevo_manifest::{ManifestOptions, VersionEdit, VersionSet};

    fn table(number: u64, lo: &str, hi: &str, seqnos: (SeqNo, SeqNo)) -> TableMeta {
        TableMeta {
            number,
            file_size: 1000,
            smallest: InternalKey::new(lo.as_bytes(), seqnos.1, ValueKind::Put),
            largest: InternalKey::new(hi.as_bytes(), seqnos.0, ValueKind::Put),
            smallest_seqno: seqnos.0,
            largest_seqno: seqnos.1,
            entries: 10,
            tombstones: 0,
            range_tombstones: 0,
        }
    }

    fn version(tables: Vec<(usize, TableMeta)>) -> Arc<Version> {
        let fs = Arc::new(MemFs::new());
        let path = std::path::Path::new("/db");
        let (set, _) = VersionSet::open(fs, path, ManifestOptions::default()).unwrap();
        while set.new_file_number() < 10 {}
        set.log_and_apply(VersionEdit {
            added: tables,
            last_seqno: Some(1000),
            ..VersionEdit::default()
        })
        .unwrap();
        set.current()
    }

    #[test]
    fn only_tables_covered_whole_older_and_seen_by_all_go() {
        let mut holder = table(1, "b", "m", (100, 100));
        holder.range_tombstones = 1;
        let v = version(vec![
            (1, holder.clone()),
            (2, table(2, "c", "d", (10, 20))),  // covered: goes
            (2, table(3, "k", "n", (10, 20))),  // sticks out past m
            (3, table(4, "e", "f", (10, 150))), // newer than the tombstone
            (3, table(5, "g", "h", (10, 20))),  // covered: goes
        ]);
        let holders = [TombstoneHolder {
            level: 1,
            table: v.level(1)[0].clone(),
            tombstones: Arc::new(FragmentedTombstones::new([RangeTombstone::new(
                b"b".to_vec(),
                b"m".to_vec(),
                100,
            )])),
        }];
        let task = pick_delete_only(&v, &holders, 200, &BTreeSet::new()).unwrap();
        assert_eq!(task.reason, CompactionReason::DeleteOnly);
        assert_eq!(task.input_numbers(), vec![2, 5]);
        // A snapshot before the tombstone still needs them all.
        assert!(pick_delete_only(&v, &holders, 99, &BTreeSet::new()).is_none());
        // Busy tables are left alone.
        let busy: BTreeSet<u64> = [2].into_iter().collect();
        let task = pick_delete_only(&v, &holders, 200, &busy).unwrap();
        assert_eq!(task.input_numbers(), vec![5]);
    }
}
