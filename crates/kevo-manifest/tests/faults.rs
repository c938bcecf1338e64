//! I/O failures at every step of `log_and_apply`, of a manifest rewrite and
//! of the `CURRENT` switch in `open`: the call fails, the set refuses later
//! edits, the in-memory version is unchanged, and a reopen after a crash
//! finds the state before or after the call, never a broken one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Durable, dir, durable, table};
use kevo_core::{Error, FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger, Fs, MemFs};
use kevo_manifest::{ManifestOptions, VersionEdit, VersionSet};

const OPS: [FaultOp; 6] = [
    FaultOp::Create,
    FaultOp::Write,
    FaultOp::Sync,
    FaultOp::Rename,
    FaultOp::SyncDir,
    FaultOp::Remove,
];

fn options(rewrite_bytes: u64) -> ManifestOptions {
    ManifestOptions {
        rewrite_bytes,
        create_if_missing: true,
    }
}

/// A version set through `fault` holding two tables and counters.
fn prepared(fault: &FaultFs, rewrite_bytes: u64) -> VersionSet {
    let fs: Arc<dyn Fs> = Arc::new(fault.clone());
    let (set, _) = VersionSet::open(fs, dir(), options(rewrite_bytes)).unwrap();
    for i in 0..2u8 {
        let number = set.new_file_number();
        set.log_and_apply(VersionEdit {
            added: vec![(0, table(number, &[i], &[i, 9], (1, 2)))],
            last_seqno: Some(2 + u64::from(i)),
            log_number: Some(3),
            ..VersionEdit::default()
        })
        .unwrap();
    }
    set
}

/// Appends `k` edits that only record counters.
fn pad(set: &VersionSet, k: usize) {
    for _ in 0..k {
        set.log_and_apply(VersionEdit {
            last_seqno: Some(2),
            ..VersionEdit::default()
        })
        .unwrap();
    }
}

/// How many padding edits make [`the_edit`] roll the manifest (the set
/// rolls once the log is past the threshold and twice its snapshot).
fn padding_for_a_roll(rewrite_bytes: u64) -> usize {
    for k in 0..64 {
        let fault = FaultFs::new(Arc::new(MemFs::new()));
        let set = prepared(&fault, rewrite_bytes);
        pad(&set, k);
        let rewrites = set.stats().rewrites;
        let edit = the_edit(&set);
        set.log_and_apply(edit).unwrap();
        if set.stats().rewrites > rewrites {
            return k;
        }
    }
    panic!("the_edit never rolls the manifest");
}

/// The edit every scenario applies: one table removed, one added.
fn the_edit(set: &VersionSet) -> VersionEdit {
    let gone = set.current().level(0)[0].number;
    let number = set.new_file_number();
    VersionEdit {
        added: vec![(1, table(number, b"m", b"p", (1, 5)))],
        removed: vec![(0, gone)],
        last_seqno: Some(10),
        log_number: Some(4),
        ..VersionEdit::default()
    }
}

fn reopen_state(mem: &MemFs) -> Durable {
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let (set, _) = VersionSet::open(fs, dir(), options(8 << 20)).unwrap();
    let state = durable(&set);
    // And the reopened set works.
    let number = set.new_file_number();
    set.log_and_apply(VersionEdit {
        added: vec![(6, table(number, b"zz", b"zz", (1, 1)))],
        ..VersionEdit::default()
    })
    .unwrap();
    state
}

/// Runs `log_and_apply(the_edit)` with the `n`-th `op` failing, for every
/// failure point the call has; with `roll`, the call rolls the manifest
/// first.
fn log_and_apply_failures(roll: bool) -> usize {
    let (rewrite_bytes, padding) = if roll {
        (1, padding_for_a_roll(1))
    } else {
        (8 << 20, 0)
    };
    // The states before and after, from a run without faults.
    let (old, new) = {
        let fault = FaultFs::new(Arc::new(MemFs::new()));
        let set = prepared(&fault, rewrite_bytes);
        pad(&set, padding);
        let old = durable(&set);
        let edit = the_edit(&set);
        set.log_and_apply(edit).unwrap();
        (old, durable(&set))
    };
    let mut points = 0;
    for op in OPS {
        'points: for n in 1..64 {
            for kind in [FaultKind::Eio, FaultKind::Enospc] {
                let mem = MemFs::with_seed(n * 31 + op as u64);
                let fault = FaultFs::new(Arc::new(mem.clone()));
                let set = prepared(&fault, rewrite_bytes);
                pad(&set, padding);
                let edit = the_edit(&set);
                let before = set.current();
                fault.add_rule(FaultRule::new(op, FaultTrigger::Nth(n), kind));
                let result = set.log_and_apply(edit);
                if fault.injected_count() == 0 {
                    // The call makes fewer than `n` such operations.
                    result.unwrap();
                    break 'points;
                }
                fault.clear_rules();
                if op == FaultOp::Remove {
                    // Deleting the old manifest is best effort.
                    result.unwrap();
                    assert_eq!(durable(&set), new);
                    drop(set);
                    assert_eq!(reopen_state(&mem), new);
                    continue;
                }
                points += 1;
                let err = result.unwrap_err();
                assert!(matches!(err, Error::Io { .. }), "{op:?} #{n}: {err:?}");
                assert!(
                    Arc::ptr_eq(&before, &set.current()),
                    "{op:?} #{n}: version changed"
                );
                assert_eq!(durable(&set), old, "{op:?} #{n}");
                // Every later edit is refused, even a valid one.
                let later = set.log_and_apply(VersionEdit::default()).unwrap_err();
                assert!(matches!(later, Error::Io { .. }), "{later:?}");
                assert!(later.to_string().contains("unusable"), "{later}");
                let syncs = fault.op_count(FaultOp::Sync);
                assert!(set.log_and_apply(VersionEdit::default()).is_err());
                assert_eq!(fault.op_count(FaultOp::Sync), syncs, "a sync was retried");
                drop(set);
                if n % 2 == 0 {
                    mem.crash();
                } else {
                    mem.crash_keep_nothing_unsynced();
                }
                let state = reopen_state(&mem);
                assert!(
                    state == old || state == new,
                    "{op:?} #{n}: reopened to {state:?}"
                );
            }
        }
    }
    points
}

#[test]
fn failures_during_log_and_apply_leave_old_or_new_state() {
    let points = log_and_apply_failures(false);
    // The record's write and sync, each with EIO and ENOSPC.
    assert_eq!(points, 4);
}

#[test]
fn failures_during_a_rewrite_leave_old_or_new_state() {
    let points = log_and_apply_failures(true);
    // Create, header, snapshot, sync, dir sync, CURRENT create, write, sync,
    // rename, dir sync, then the record's write and sync: 12 points, each
    // with EIO and ENOSPC.
    assert_eq!(points, 24);
}

#[test]
fn failures_during_the_current_switch_in_open_keep_the_state() {
    let expected = {
        let fault = FaultFs::new(Arc::new(MemFs::new()));
        durable(&prepared(&fault, 8 << 20))
    };
    let mut points = 0;
    for op in OPS {
        for n in 1..64 {
            let mem = MemFs::with_seed(n);
            let fault = FaultFs::new(Arc::new(mem.clone()));
            drop(prepared(&fault, 8 << 20));
            fault.add_rule(FaultRule::new(op, FaultTrigger::Nth(n), FaultKind::Eio));
            let fs: Arc<dyn Fs> = Arc::new(fault.clone());
            let result = VersionSet::open(fs, dir(), options(8 << 20));
            if fault.injected_count() == 0 {
                result.unwrap();
                break;
            }
            if op == FaultOp::Remove {
                let (set, _) = result.unwrap();
                assert_eq!(durable(&set), expected);
                continue;
            }
            points += 1;
            let err = result.err().map(|e| e.to_string());
            assert!(err.is_some(), "{op:?} #{n}: open succeeded");
            if n % 2 == 0 {
                mem.crash();
            } else {
                mem.crash_keep_nothing_unsynced();
            }
            assert_eq!(reopen_state(&mem), expected, "{op:?} #{n}: {err:?}");
        }
    }
    assert!(points >= 9, "{points}");
}

#[test]
fn failures_while_creating_a_new_set_leave_no_set_or_an_empty_one() {
    for op in OPS {
        for n in 1..16 {
            let mem = MemFs::with_seed(n);
            let fault = FaultFs::new(Arc::new(mem.clone()));
            fault.add_rule(FaultRule::new(op, FaultTrigger::Nth(n), FaultKind::Eio));
            let fs: Arc<dyn Fs> = Arc::new(fault.clone());
            let result = VersionSet::open(fs, dir(), options(8 << 20));
            if fault.injected_count() == 0 {
                result.unwrap();
                break;
            }
            assert!(result.is_err(), "{op:?} #{n}");
            mem.crash();
            let fs: Arc<dyn Fs> = Arc::new(mem.clone());
            let (set, _) = VersionSet::open(fs, dir(), options(8 << 20)).unwrap();
            assert_eq!(set.current().table_count(), 0);
        }
    }
}
