//! Random sequences of edits, reopens and crashes checked against a model (a
//! `BTreeMap` per level): after every step the version set holds exactly
//! the state of the last acknowledged edit, and the file counter never goes
//! backwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{dir, table};
use kevo_core::{Error, Fs, MemFs, SeqNo};
use kevo_manifest::{
    CURRENT_FILE, ManifestOptions, NUM_LEVELS, TableMeta, VersionEdit, VersionSet,
    parse_manifest_file_name,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Add a table over keys `lo..=lo+span` to `level`.
    Add {
        level: usize,
        lo: u8,
        span: u8,
    },
    /// Remove the `pick`-th table (in model order), if any.
    Remove {
        pick: usize,
    },
    /// Move the `pick`-th table one level down (a trivial move).
    Move {
        pick: usize,
    },
    /// Replace two tables by one (a compaction) in the next level.
    Compact {
        pick: usize,
    },
    /// Record counters only.
    Counters {
        seqno: SeqNo,
        log: u64,
    },
    /// Remove a table that is not there: rejected, nothing changes.
    Bogus,
    Reopen,
    /// Power loss (random unsynced prefix kept), then reopen.
    Crash,
    /// Power loss keeping nothing unsynced, then reopen.
    CrashClean,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..NUM_LEVELS, any::<u8>(), 0u8..40).prop_map(|(level, lo, span)| Op::Add { level, lo, span }),
        3 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Move { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Compact { pick }),
        1 => (0u64..1000, 0u64..50).prop_map(|(seqno, log)| Op::Counters { seqno, log }),
        1 => Just(Op::Bogus),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => Just(Op::CrashClean),
    ]
}

#[derive(Debug, Default, Clone)]
struct Model {
    levels: [BTreeMap<u64, TableMeta>; NUM_LEVELS],
    last_seqno: SeqNo,
    log_number: u64,
    /// The file counter as the last acknowledged edit recorded it.
    next_file_number: u64,
}

impl Model {
    fn tables(&self) -> Vec<(usize, TableMeta)> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(|(l, m)| m.values().map(move |t| (l, t.clone())))
            .collect()
    }

    fn pick(&self, pick: usize) -> Option<(usize, TableMeta)> {
        let all = self.tables();
        if all.is_empty() {
            return None;
        }
        Some(all[pick % all.len()].clone())
    }

    /// Whether `t` may join `level` (L0 always; deeper levels only without
    /// overlapping a table other than those in `except`).
    fn fits(&self, level: usize, t: &TableMeta, except: &[u64]) -> bool {
        level == 0
            || self.levels[level].values().all(|o| {
                except.contains(&o.number)
                    || o.largest_user_key() < t.smallest_user_key()
                    || o.smallest_user_key() > t.largest_user_key()
            })
    }

    fn apply(&mut self, edit: &VersionEdit) {
        for &(level, number) in &edit.removed {
            self.levels[level].remove(&number);
        }
        for (level, t) in &edit.added {
            self.levels[*level].insert(t.number, t.clone());
        }
        if let Some(s) = edit.last_seqno {
            self.last_seqno = self.last_seqno.max(s);
        }
        if let Some(n) = edit.log_number {
            self.log_number = self.log_number.max(n);
        }
    }
}

fn options(rewrite_bytes: u64) -> ManifestOptions {
    ManifestOptions {
        rewrite_bytes,
        create_if_missing: true,
    }
}

fn check(set: &VersionSet, model: &Model) {
    let version = set.current();
    for level in 0..NUM_LEVELS {
        let mut got: Vec<TableMeta> = version.level(level).iter().map(|t| (**t).clone()).collect();
        // The version's order: L0 newest first, deeper levels by key.
        let ordered = got.windows(2).all(|w| {
            if level == 0 {
                (w[0].largest_seqno, w[0].number) > (w[1].largest_seqno, w[1].number)
            } else {
                w[0].largest_user_key() < w[1].smallest_user_key()
            }
        });
        assert!(ordered, "level {level} out of order: {got:?}");
        got.sort_by_key(|t| t.number);
        let want: Vec<TableMeta> = model.levels[level].values().cloned().collect();
        assert_eq!(got, want, "level {level}");
    }
    assert_eq!(set.last_seqno(), model.last_seqno);
    assert_eq!(set.log_number(), model.log_number);
    assert!(
        set.next_file_number() >= model.next_file_number,
        "the file counter went backwards: {} < {}",
        set.next_file_number(),
        model.next_file_number
    );
}

fn reopen(fs: &Arc<dyn Fs>, mem: &MemFs, rewrite_bytes: u64, model: &Model) -> VersionSet {
    let (set, recovery) = VersionSet::open(fs.clone(), dir(), options(rewrite_bytes)).unwrap();
    assert!(!recovery.created);
    assert!(recovery.edits_replayed >= 1);
    // One manifest, the one CURRENT names, and no temporary file.
    let names = fs.list_dir(dir()).unwrap();
    let manifests: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_manifest_file_name(n))
        .collect();
    assert_eq!(manifests, vec![set.manifest_number()], "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n == CURRENT_FILE || parse_manifest_file_name(n).is_some())
    );
    let _ = mem;
    check(&set, model);
    set
}

fn run(ops: Vec<Op>, seed: u64, rewrite_bytes: u64) {
    let mem = MemFs::with_seed(seed);
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let mut model = Model::default();
    let (mut set, recovery) = VersionSet::open(fs.clone(), dir(), options(rewrite_bytes)).unwrap();
    assert!(recovery.created);
    for op in ops {
        let edit = match op {
            Op::Reopen | Op::Crash | Op::CrashClean => {
                drop(set);
                match op {
                    Op::Crash => mem.crash(),
                    Op::CrashClean => mem.crash_keep_nothing_unsynced(),
                    _ => {}
                }
                set = reopen(&fs, &mem, rewrite_bytes, &model);
                continue;
            }
            Op::Add { level, lo, span } => {
                let number = set.new_file_number();
                let hi = lo.saturating_add(span);
                let seq = model.last_seqno + 1;
                let t = table(number, &[lo], &[hi, 0], (seq, seq + u64::from(span)));
                let fits = model.fits(level, &t, &[]);
                let edit = VersionEdit {
                    added: vec![(level, t)],
                    last_seqno: Some(seq + u64::from(span)),
                    ..VersionEdit::default()
                };
                if !fits {
                    let before = set.current();
                    let err = set.log_and_apply(edit).unwrap_err();
                    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
                    assert!(Arc::ptr_eq(&before, &set.current()));
                    check(&set, &model);
                    continue;
                }
                edit
            }
            Op::Remove { pick } => {
                let Some((level, t)) = model.pick(pick) else {
                    continue;
                };
                VersionEdit {
                    removed: vec![(level, t.number)],
                    ..VersionEdit::default()
                }
            }
            Op::Move { pick } => {
                let Some((level, t)) = model.pick(pick) else {
                    continue;
                };
                let to = (level + 1).min(NUM_LEVELS - 1);
                if to == level || !model.fits(to, &t, &[]) {
                    continue;
                }
                VersionEdit {
                    removed: vec![(level, t.number)],
                    added: vec![(to, t)],
                    ..VersionEdit::default()
                }
            }
            Op::Compact { pick } => {
                let Some((level, a)) = model.pick(pick) else {
                    continue;
                };
                let Some((_, b)) = model
                    .pick(pick.wrapping_add(1))
                    .filter(|(l, b)| *l == level && b.number != a.number)
                else {
                    continue;
                };
                let to = (level + 1).min(NUM_LEVELS - 1);
                let lo = a.smallest_user_key().min(b.smallest_user_key()).to_vec();
                let hi = a.largest_user_key().max(b.largest_user_key()).to_vec();
                let number = set.new_file_number();
                let merged = table(number, &lo, &hi, (0, a.largest_seqno.max(b.largest_seqno)));
                let inputs = [a.number, b.number];
                if !model.fits(to, &merged, &inputs) {
                    continue;
                }
                VersionEdit {
                    removed: vec![(level, a.number), (level, b.number)],
                    added: vec![(to, merged)],
                    log_number: Some(model.log_number + 1),
                    ..VersionEdit::default()
                }
            }
            Op::Counters { seqno, log } => VersionEdit {
                last_seqno: Some(seqno),
                log_number: Some(log),
                ..VersionEdit::default()
            },
            Op::Bogus => {
                let edit = VersionEdit {
                    removed: vec![(3, u64::MAX)],
                    ..VersionEdit::default()
                };
                let err = set.log_and_apply(edit).unwrap_err();
                assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
                check(&set, &model);
                continue;
            }
        };
        let version = set.log_and_apply(edit.clone()).unwrap();
        model.apply(&edit);
        model.next_file_number = set.next_file_number();
        assert!(Arc::ptr_eq(&version, &set.current()));
        check(&set, &model);
    }
    drop(set);
    mem.crash();
    let set = reopen(&fs, &mem, rewrite_bytes, &model);
    // Everything handed out before is below the counter.
    for (_, t) in model.tables() {
        assert!(t.number < set.next_file_number());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn version_set_matches_the_model_through_reopens_and_crashes(
        ops in proptest::collection::vec(op(), 1..60),
        seed in any::<u64>(),
        rewrite_bytes in prop_oneof![Just(1u64), Just(300), Just(8 << 20)],
    ) {
        run(ops, seed, rewrite_bytes);
    }
}

#[test]
fn tiny_rewrite_threshold_rolls_the_manifest() {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let (set, _) = VersionSet::open(fs.clone(), dir(), options(1)).unwrap();
    let first = set.manifest_number();
    for i in 0..20u8 {
        let number = set.new_file_number();
        set.log_and_apply(VersionEdit {
            added: vec![(0, table(number, &[i], &[i], (1, 1)))],
            ..VersionEdit::default()
        })
        .unwrap();
    }
    let stats = set.stats();
    assert!(stats.rewrites >= 3, "{stats:?}");
    assert_eq!(stats.edits, 20);
    assert_eq!(stats.manifest_number, set.manifest_number());
    assert!(set.manifest_number() > first);
    let names = fs.list_dir(dir()).unwrap();
    let manifests: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_manifest_file_name(n))
        .collect();
    assert_eq!(manifests, vec![set.manifest_number()]);
    let expected = common::durable(&set);
    drop(set);
    mem.crash();
    let (set, _) = VersionSet::open(fs, dir(), options(1)).unwrap();
    assert_eq!(common::durable(&set), expected);
}

#[test]
fn concurrent_edits_are_all_applied_and_durable() {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let (set, _) = VersionSet::open(fs.clone(), dir(), options(2000)).unwrap();
    let set = Arc::new(set);
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let set = Arc::clone(&set);
            std::thread::spawn(move || {
                for i in 0..25u8 {
                    let number = set.new_file_number();
                    let seq = u64::from(t) * 100 + u64::from(i);
                    set.log_and_apply(VersionEdit {
                        added: vec![(0, table(number, &[t, i], &[t, i], (seq, seq)))],
                        last_seqno: Some(seq),
                        ..VersionEdit::default()
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(set.current().table_count(), 100);
    assert_eq!(set.last_seqno(), 324);
    let expected = common::durable(&set);
    drop(set);
    mem.crash();
    let (set, _) = VersionSet::open(fs, dir(), options(2000)).unwrap();
    assert_eq!(common::durable(&set), expected);
}

#[test]
fn counters_that_could_not_be_read_back_are_refused() {
    let fs: Arc<dyn Fs> = Arc::new(MemFs::new());
    let (set, _) = VersionSet::open(fs, dir(), options(8 << 20)).unwrap();
    for edit in [
        VersionEdit {
            last_seqno: Some(kevo_core::SEQNO_MAX + 1),
            ..VersionEdit::default()
        },
        VersionEdit {
            next_file_number: Some(u64::MAX),
            ..VersionEdit::default()
        },
    ] {
        let err = set.log_and_apply(edit).unwrap_err();
        assert!(
            matches!(err, kevo_core::Error::InvalidArgument(_)),
            "{err:?}"
        );
    }
    // Refusals leave the set usable.
    set.log_and_apply(VersionEdit::default()).unwrap();
}
