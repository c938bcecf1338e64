//! `run_compaction` end to end on `MemFs` with real tables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{Db, Entry, del, model_read, put, version_read};
use kevo_compaction::{
    CompactionReason, CompactionStrategy, CompactionTask, LevelInputs, Leveled, LeveledOptions,
};
use kevo_core::{
    FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger, MemFs, SEQNO_MAX, ValueKind,
};
use kevo_manifest::TableMeta;

fn mem_db() -> Db {
    Db::new(Arc::new(MemFs::new()))
}

/// A merge task over `inputs` (level, tables) into `output_level`.
fn merge_task(db: &Db, inputs: &[(usize, Vec<u64>)], output_level: usize) -> CompactionTask {
    let version = db.version();
    let find = |level: usize, number: u64| {
        version
            .level(level)
            .iter()
            .find(|t| t.number == number)
            .cloned()
            .unwrap()
    };
    CompactionTask {
        inputs: inputs
            .iter()
            .map(|(level, numbers)| LevelInputs {
                level: *level,
                tables: numbers.iter().map(|&n| find(*level, n)).collect(),
            })
            .collect(),
        output_level,
        trivial_move: false,
        reason: CompactionReason::Manual,
        score: 1.0,
        drop_tombstones: true,
        grandparents: Vec::new(),
        target_file_bytes: 1 << 30,
    }
}

fn key(i: usize) -> String {
    format!("key{i:05}")
}

#[test]
fn overlapping_l0_and_l1_tables_merge_into_one_sorted_run() {
    let db = mem_db();
    let l1 = db.add_table(
        1,
        &[put("a", 1, "a1"), put("c", 2, "c2"), put("e", 3, "e3")],
    );
    let old = db.add_table(0, &[put("b", 4, "b4"), put("c", 5, "c5")]);
    let new = db.add_table(0, &[put("a", 6, "a6"), del("e", 7), put("f", 8, "f8")]);
    let strategy = Leveled::new(LeveledOptions {
        l0_trigger: 2,
        dynamic_level_bytes: false,
        ..LeveledOptions::default()
    });
    let task = strategy.pick(&db.version(), &BTreeSet::new()).unwrap();
    assert_eq!(task.output_level, 1);
    assert_eq!(task.input_numbers(), vec![new, old, l1]);
    let out = db.run(&task, &[]).unwrap();
    assert_eq!(out.edit.removed.len(), 3);
    assert_eq!(out.outputs.len(), 1);
    db.set.log_and_apply(out.edit.clone()).unwrap();
    let version = db.version();
    assert!(version.level(0).is_empty());
    let entries: Vec<Entry> = db.entries_of(&out.outputs).concat();
    assert_eq!(
        entries,
        vec![
            put("a", 6, "a6"),
            put("b", 4, "b4"),
            put("c", 5, "c5"),
            put("f", 8, "f8")
        ]
    );
    assert_eq!(out.stats.tables_read, 3);
    assert_eq!(out.stats.tables_written, 1);
    assert_eq!(out.stats.entries_read, 8);
    assert_eq!(out.stats.entries_written, 4);
    assert_eq!(out.stats.versions_dropped, 3);
    assert_eq!(out.stats.tombstones_dropped, 1);
    assert_eq!(out.stats.bytes_written, out.outputs[0].file_size);
    assert!(out.stats.bytes_read > 0);
}

#[test]
fn outputs_split_at_target_file_bytes_never_between_versions_of_a_key() {
    let db = mem_db();
    let mut l0 = Vec::new();
    let mut seqno = 0;
    for round in 0..3 {
        let entries: Vec<Entry> = (0..300)
            .map(|i| {
                seqno += 1;
                put(
                    &key(i),
                    seqno,
                    &format!("value {round} {i} {}", "x".repeat(20)),
                )
            })
            .collect();
        l0.push(db.add_table(0, &entries));
    }
    l0.reverse(); // newest first
    let mut task = merge_task(&db, &[(0, l0)], 1);
    task.target_file_bytes = 2048;
    // Every version stays: a snapshot between each round.
    let out = db.run(&task, &[300, 600]).unwrap();
    assert!(out.outputs.len() > 5, "{} outputs", out.outputs.len());
    for pair in out.outputs.windows(2) {
        assert!(pair[0].largest_user_key() < pair[1].smallest_user_key());
    }
    for table in db.entries_of(&out.outputs) {
        // Each user key's three versions are in one table.
        let keys: BTreeSet<&[u8]> = table.iter().map(|e| e.0.as_slice()).collect();
        assert_eq!(table.len(), keys.len() * 3);
    }
    db.set.log_and_apply(out.edit).unwrap();
    assert_eq!(db.version().level(1).len(), out.outputs.len());
}

#[test]
fn range_tombstones_are_cut_between_outputs_and_drop_what_they_cover() {
    use kevo_core::{FragmentedTombstones, RangeTombstone};
    let db = mem_db();
    // Older data in L1, a newer table with range tombstones in L0.
    let entries: Vec<Entry> = (0..600)
        .map(|i| put(&key(i), i as u64 + 1, &noise(i as u64, 40)))
        .collect();
    let l1 = db.add_table(1, &entries);
    let tombstones = [
        RangeTombstone::new(key(100).into_bytes(), key(200).into_bytes(), 1000),
        RangeTombstone::new(key(150).into_bytes(), key(450).into_bytes(), 1001),
        RangeTombstone::new(key(590).into_bytes(), b"zzz".to_vec(), 1002),
    ];
    let l0 = db.add_table_with(0, &[put(&key(300), 1003, "after the delete")], &tombstones);
    let mut task = merge_task(&db, &[(0, vec![l0]), (1, vec![l1])], 1);
    task.target_file_bytes = 2048;
    // A snapshot at 1000 keeps the first tombstone's view.
    task.drop_tombstones = true;
    let out = db.run(&task, &[1000]).unwrap();
    assert!(out.outputs.len() > 3, "{} outputs", out.outputs.len());
    // Neighbouring outputs never share a user key (the level stays valid).
    for pair in out.outputs.windows(2) {
        assert!(pair[0].largest_user_key() < pair[1].smallest_user_key());
    }
    db.set.log_and_apply(out.edit.clone()).unwrap();
    // Together, the outputs hold the compacted tombstones exactly once.
    let mut union = Vec::new();
    for meta in &out.outputs {
        let table = db.open(meta).unwrap();
        assert_eq!(table.range_tombstones().len() as u64, meta.range_tombstones);
        if let Some((lo, hi)) = table.range_tombstones().bounds() {
            assert!(meta.smallest_user_key() <= lo);
            assert!(
                hi.split_last().map_or(hi, |(_, k)| k) <= meta.largest_user_key() || hi == b"zzz"
            );
        }
        union.extend(table.range_tombstones().tombstones());
    }
    let all = FragmentedTombstones::new(tombstones.clone());
    assert_eq!(
        FragmentedTombstones::new(union),
        all.compacted(&[1000], true)
    );
    // Keys the @1000 tombstone covers are gone (every reader that could
    // see them sees it); those only @1001 or @1002 cover stay for the
    // snapshot at 1000.
    let entries: Vec<Entry> = db.entries_of(&out.outputs).concat();
    let in_range =
        |e: &Entry, lo: usize, hi: usize| e.0 >= key(lo).into_bytes() && e.0 < key(hi).into_bytes();
    assert!(!entries.iter().any(|e| in_range(e, 100, 200)));
    assert_eq!(
        entries.iter().filter(|e| in_range(e, 200, 450)).count(),
        250 + 1
    );
    assert!(entries.iter().any(|e| e.0 == key(595).into_bytes()));
    assert_eq!(out.stats.covered_dropped, 100);
}

/// `len` bytes that do not compress.
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + (x >> 59) as u8)
        })
        .collect()
}

#[test]
fn outputs_split_where_they_would_overlap_too_many_grandparents() {
    let db = mem_db();
    // Ten large grandparent tables in L2, one per 30 keys.
    for g in 0..10 {
        let entries: Vec<Entry> = (g * 30..g * 30 + 30)
            .map(|i| put(&key(i), 1, &noise(i as u64, 2000)))
            .collect();
        db.add_table(2, &entries);
    }
    // A small input over all of them.
    let entries: Vec<Entry> = (0..300).map(|i| put(&key(i), 10, "new")).collect();
    let input = db.add_table(0, &entries);
    let mut task = merge_task(&db, &[(0, vec![input])], 1);
    task.grandparents = db.version().level(2).to_vec();
    let gp_bytes = task.grandparents[0].file_size;
    let input_bytes = task.input_bytes();
    // The output fits one table by size, but would overlap all ten
    // grandparents: it is cut once it overlaps more than 10 x target.
    task.target_file_bytes = input_bytes * 2;
    assert!(
        task.target_file_bytes * 10 < gp_bytes * 3,
        "{gp_bytes} {input_bytes}"
    );
    task.drop_tombstones = false;
    let out = db.run(&task, &[]).unwrap();
    assert!(out.outputs.len() >= 3, "{} outputs", out.outputs.len());
    let mut no_grandparents = task.clone();
    no_grandparents.grandparents.clear();
    let one = db.run(&no_grandparents, &[]).unwrap();
    assert_eq!(one.outputs.len(), 1);
}

#[test]
fn trivial_move_does_no_io() {
    let db = mem_db();
    let number = db.add_table(1, &[put("a", 1, "x")]);
    let meta: Arc<TableMeta> = db.version().level(1)[0].clone();
    let task = CompactionTask {
        trivial_move: true,
        ..merge_task(&db, &[(1, vec![number])], 2)
    };
    let files_before = db.table_files();
    let out = db.run(&task, &[]).unwrap();
    assert_eq!(db.opened.load(Ordering::Relaxed), 0);
    assert_eq!(db.numbers_handed_out.load(Ordering::Relaxed), 0);
    assert_eq!(db.table_files(), files_before);
    assert_eq!(out.edit.removed, vec![(1, number)]);
    assert_eq!(out.edit.added, vec![(2, (*meta).clone())]);
    assert_eq!(out.stats.bytes_written, 0);
    db.set.log_and_apply(out.edit).unwrap();
    assert_eq!(db.version().level(2)[0].number, number);
}

#[test]
fn tombstones_drop_at_the_bottom_unless_a_snapshot_needs_them() {
    let db = mem_db();
    let old = db.add_table(1, &[put("a", 1, "a1"), put("b", 2, "b2")]);
    let new = db.add_table(0, &[del("a", 3), del("b", 4), del("c", 5)]);
    let task = merge_task(&db, &[(0, vec![new]), (1, vec![old])], 1);

    let out = db.run(&task, &[]).unwrap();
    assert!(out.outputs.is_empty());
    assert_eq!(out.stats.tombstones_dropped, 3);
    assert_eq!(out.stats.versions_dropped, 2);
    assert!(out.edit.added.is_empty());
    assert_eq!(out.edit.removed.len(), 2);

    // A snapshot at 3 sees b2 and no a: b2 stays, with the tombstone of b
    // (seqno 4, above the snapshot) that hides it from "latest"; a's
    // tombstone (3, seen by every snapshot) goes with what it hides; c's
    // (5) stays, as only the oldest stripe's tombstones drop.
    let out = db.run(&task, &[3]).unwrap();
    let entries = db.entries_of(&out.outputs).concat();
    assert_eq!(entries, vec![del("b", 4), put("b", 2, "b2"), del("c", 5)]);
    assert!(entries.iter().all(|e| e.2 != ValueKind::Delete || e.1 > 3));

    // Not at the bottom: every newest tombstone stays.
    let mut not_bottom = task.clone();
    not_bottom.drop_tombstones = false;
    let out = db.run(&not_bottom, &[]).unwrap();
    let entries = db.entries_of(&out.outputs).concat();
    assert_eq!(entries, vec![del("a", 3), del("b", 4), del("c", 5)]);
}

fn fault_db() -> (Db, FaultFs) {
    let fault = FaultFs::new(Arc::new(MemFs::new()));
    (Db::new(Arc::new(fault.clone())), fault)
}

fn big_inputs(db: &Db) -> CompactionTask {
    let a: Vec<Entry> = (0..400)
        .map(|i| put(&key(i), 1 + i as u64, "first"))
        .collect();
    let b: Vec<Entry> = (0..400)
        .map(|i| put(&key(i), 1000 + i as u64, "second"))
        .collect();
    let old = db.add_table(0, &a);
    let new = db.add_table(0, &b);
    let mut task = merge_task(db, &[(0, vec![new, old])], 1);
    task.target_file_bytes = 1024;
    task
}

#[test]
fn a_failure_mid_compaction_returns_the_error_and_leaves_no_output() {
    for (op, nth) in [
        (FaultOp::Write, 3),
        (FaultOp::Sync, 2),
        (FaultOp::Create, 2),
        (FaultOp::SyncDir, 1),
        (FaultOp::Read, 5),
    ] {
        let (db, fault) = fault_db();
        let task = big_inputs(&db);
        let before = db.table_files();
        let rule = FaultRule::new(op, FaultTrigger::Nth(nth), FaultKind::Eio);
        // The directory sync names the directory, everything else a table.
        fault.add_rule(if op == FaultOp::SyncDir {
            rule
        } else {
            rule.on_path_containing(".sst")
        });
        let err = db.run(&task, &[]).unwrap_err();
        assert!(matches!(err, kevo_core::Error::Io { .. }), "{op:?}: {err}");
        assert_eq!(fault.injected_count(), 1, "{op:?}");
        assert!(db.numbers_handed_out.load(Ordering::Relaxed) >= 1 || op == FaultOp::Read);
        assert_eq!(db.table_files(), before, "{op:?} left files behind");
    }
}

#[test]
fn stop_aborts_and_removes_partial_output() {
    let db = mem_db();
    let task = big_inputs(&db);
    let before = db.table_files();
    db.stop.store(true, Ordering::Relaxed);
    assert!(db.run_or_stop(&task, &[]).unwrap().is_none(), "stopped");
    assert_eq!(db.table_files(), before);
    db.stop.store(false, Ordering::Relaxed);
    let out = db.run(&task, &[]).unwrap();
    assert!(out.outputs.len() > 1);
}

#[test]
fn a_compaction_keeps_what_each_snapshot_reads() {
    let db = mem_db();
    let mut model: Vec<Entry> = Vec::new();
    let mut seqno = 0;
    let mut add = |db: &Db, level: usize, keys: std::ops::Range<usize>, delete_every: usize| {
        let entries: Vec<Entry> = keys
            .map(|i| {
                seqno += 1;
                if i % delete_every == 0 {
                    del(&key(i), seqno)
                } else {
                    put(&key(i), seqno, &format!("v{seqno}"))
                }
            })
            .collect();
        model.extend(entries.iter().cloned());
        db.add_table(level, &entries)
    };
    let l1 = add(&db, 1, 0..100, 7);
    let l0a = add(&db, 0, 20..60, 3);
    let l0b = add(&db, 0, 50..120, 5);
    let snapshots = [50, 120, 150];
    let task = merge_task(&db, &[(0, vec![l0b, l0a]), (1, vec![l1])], 1);
    let out = db.run(&task, &snapshots).unwrap();
    db.set.log_and_apply(out.edit).unwrap();
    let version = db.version();
    for i in 0..130 {
        for snapshot in snapshots.iter().copied().chain([SEQNO_MAX]) {
            let k = key(i);
            assert_eq!(
                version_read(&db, &version, k.as_bytes(), snapshot),
                model_read(&model, k.as_bytes(), snapshot),
                "{k} at {snapshot}"
            );
        }
    }
}
