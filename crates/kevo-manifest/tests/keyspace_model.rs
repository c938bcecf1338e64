//! Random sequences of keyspace creates and drops, edits to each keyspace,
//! reopens, crashes and failed writes, checked against a model (a
//! `BTreeMap` of keyspaces, each a `BTreeMap` per level): after every step
//! the version set, and what `recover` reads from disk, hold exactly the
//! keyspaces of the last acknowledged edit; an id is never handed out twice;
//! a create or drop whose write failed is, after a crash, whole or absent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{KeyspacesState, dir, keyspaces_state, recovered_keyspaces_state, table};
use kevo_core::{
    DEFAULT_KEYSPACE, DEFAULT_KEYSPACE_NAME, Error, FaultFs, FaultKind, FaultOp, FaultRule,
    FaultTrigger, Fs, KeyspaceId, MemFs, SeqNo,
};
use kevo_manifest::{ManifestOptions, NUM_LEVELS, TableMeta, VersionEdit, VersionSet};
use proptest::prelude::*;

const NAMES: [&str; 4] = ["index", "raft-log", "meta", "default"];

#[derive(Debug, Clone)]
enum Op {
    /// Create a keyspace named `NAMES[name]` ("default" is always refused).
    Create {
        name: usize,
    },
    /// Drop the `pick`-th id handed out so far, or the default keyspace.
    Drop {
        pick: usize,
    },
    /// Add a table over keys `lo..=lo+span` to `level` of a keyspace.
    Add {
        keyspace: usize,
        level: usize,
        lo: u8,
        span: u8,
    },
    /// Remove the `pick`-th table of a keyspace, if any.
    Remove {
        keyspace: usize,
        pick: usize,
    },
    /// Move the `pick`-th table of a keyspace one level down.
    Move {
        keyspace: usize,
        pick: usize,
    },
    /// Set log numbers: the global one and/or the keyspace's.
    LogNumbers {
        keyspace: usize,
        global: Option<u64>,
        own: Option<u64>,
    },
    /// Counters only, for the default keyspace.
    Counters {
        seqno: SeqNo,
    },
    /// A create (or, with `drop`, a drop of the `pick`-th id) whose
    /// manifest write (or sync) fails, then a crash and a reopen.
    Failed {
        drop: bool,
        pick: usize,
        name: usize,
        sync: bool,
    },
    Reopen,
    /// Power loss (random unsynced prefix kept), then reopen.
    Crash,
    /// Power loss keeping nothing unsynced, then reopen.
    CrashClean,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..NAMES.len()).prop_map(|name| Op::Create { name }),
        2 => any::<usize>().prop_map(|pick| Op::Drop { pick }),
        6 => (any::<usize>(), 0..NUM_LEVELS, any::<u8>(), 0u8..40)
            .prop_map(|(keyspace, level, lo, span)| Op::Add { keyspace, level, lo, span }),
        2 => (any::<usize>(), any::<usize>())
            .prop_map(|(keyspace, pick)| Op::Remove { keyspace, pick }),
        2 => (any::<usize>(), any::<usize>())
            .prop_map(|(keyspace, pick)| Op::Move { keyspace, pick }),
        2 => (any::<usize>(), proptest::option::of(0u64..50), proptest::option::of(0u64..50))
            .prop_map(|(keyspace, global, own)| Op::LogNumbers { keyspace, global, own }),
        1 => (0u64..1000).prop_map(|seqno| Op::Counters { seqno }),
        1 => (any::<bool>(), any::<usize>(), 0..NAMES.len(), any::<bool>())
            .prop_map(|(drop, pick, name, sync)| Op::Failed { drop, pick, name, sync }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => Just(Op::CrashClean),
    ]
}

#[derive(Debug, Clone)]
struct Keyspace {
    name: String,
    levels: [BTreeMap<u64, TableMeta>; NUM_LEVELS],
    log_number: u64,
}

#[derive(Debug, Clone)]
struct Model {
    keyspaces: BTreeMap<KeyspaceId, Keyspace>,
    next_id: KeyspaceId,
    last_seqno: SeqNo,
    log_number: u64,
}

impl Default for Model {
    fn default() -> Self {
        let default = Keyspace {
            name: DEFAULT_KEYSPACE_NAME.to_string(),
            levels: Default::default(),
            log_number: 0,
        };
        Model {
            keyspaces: BTreeMap::from([(DEFAULT_KEYSPACE, default)]),
            next_id: 1,
            last_seqno: 0,
            log_number: 0,
        }
    }
}

impl Model {
    /// An id to act on: one of those handed out (live or dropped), picked
    /// by `pick`.
    fn id(&self, pick: usize) -> KeyspaceId {
        KeyspaceId::try_from(pick % self.next_id as usize).unwrap()
    }

    fn live(&self, id: KeyspaceId) -> Option<&Keyspace> {
        self.keyspaces.get(&id)
    }

    fn pick(&self, id: KeyspaceId, pick: usize) -> Option<(usize, TableMeta)> {
        let all: Vec<(usize, TableMeta)> = self
            .live(id)?
            .levels
            .iter()
            .enumerate()
            .flat_map(|(l, m)| m.values().map(move |t| (l, t.clone())))
            .collect();
        (!all.is_empty()).then(|| all[pick % all.len()].clone())
    }

    fn fits(&self, id: KeyspaceId, level: usize, t: &TableMeta) -> bool {
        level == 0
            || self.keyspaces[&id].levels[level].values().all(|o| {
                o.largest_user_key() < t.smallest_user_key()
                    || o.smallest_user_key() > t.largest_user_key()
            })
    }

    fn create(&mut self, id: KeyspaceId, name: &str, log_number: u64) {
        assert_eq!(id, self.next_id);
        self.keyspaces.insert(
            id,
            Keyspace {
                name: name.to_string(),
                levels: Default::default(),
                log_number,
            },
        );
        self.next_id = id + 1;
    }

    fn apply(&mut self, edit: &VersionEdit) {
        if let Some(s) = edit.last_seqno {
            self.last_seqno = self.last_seqno.max(s);
        }
        if let Some(n) = edit.log_number {
            self.log_number = self.log_number.max(n);
        }
        let k = self.keyspaces.get_mut(&edit.keyspace).unwrap();
        for &(level, number) in &edit.removed {
            k.levels[level].remove(&number);
        }
        for (level, t) in &edit.added {
            k.levels[*level].insert(t.number, t.clone());
        }
        // The default keyspace follows the global log number (as raised by
        // this edit) when the edit sets that alone.
        let own = match (edit.keyspace, edit.keyspace_log_number, edit.log_number) {
            (_, Some(n), _) => n,
            (DEFAULT_KEYSPACE, None, Some(_)) => self.log_number,
            _ => 0,
        };
        k.log_number = k.log_number.max(own);
    }

    fn state(&self) -> KeyspacesState {
        let keyspaces = self
            .keyspaces
            .iter()
            .map(|(&id, k)| {
                let tables = k
                    .levels
                    .iter()
                    .enumerate()
                    .flat_map(|(l, m)| m.values().map(move |t| (l, t.clone())))
                    .collect();
                (id, k.name.clone(), k.log_number, tables)
            })
            .collect();
        KeyspacesState {
            keyspaces,
            next_keyspace_id: self.next_id,
        }
    }
}

/// `state` with each keyspace's tables by level and number (the model's
/// order) rather than the version's.
fn sorted(mut state: KeyspacesState) -> KeyspacesState {
    for (_, _, _, tables) in &mut state.keyspaces {
        tables.sort_by_key(|(l, t)| (*l, t.number));
    }
    state
}

fn options(rewrite_bytes: u64) -> ManifestOptions {
    ManifestOptions {
        rewrite_bytes,
        create_if_missing: true,
    }
}

/// The set and what `recover` reads from disk both hold the model's state.
fn check(set: &VersionSet, mem: &MemFs, model: &Model) {
    let want = model.state();
    assert_eq!(sorted(keyspaces_state(set)), want);
    assert_eq!(set.last_seqno(), model.last_seqno);
    assert_eq!(set.log_number(), model.log_number);
    for id in 0..model.next_id + 1 {
        assert_eq!(set.current_in(id).is_some(), model.live(id).is_some());
    }
    let recovered = VersionSet::recover(mem, dir()).unwrap().unwrap();
    assert_eq!(recovered.tail_bytes_dropped, 0);
    assert_eq!(sorted(recovered_keyspaces_state(&recovered)), want);
    assert_eq!(recovered.last_seqno, model.last_seqno);
    assert_eq!(recovered.log_number, model.log_number);
}

fn refused<T: std::fmt::Debug>(result: kevo_core::Result<T>) {
    assert!(
        matches!(result, Err(Error::InvalidArgument(_))),
        "{result:?}"
    );
}

struct Run {
    mem: MemFs,
    fault: FaultFs,
    rewrite_bytes: u64,
    set: Option<VersionSet>,
    model: Model,
}

impl Run {
    fn set(&self) -> &VersionSet {
        self.set.as_ref().unwrap()
    }

    fn reopen(&mut self, crash: Option<bool>) {
        self.set = None;
        match crash {
            Some(true) => self.mem.crash(),
            Some(false) => self.mem.crash_keep_nothing_unsynced(),
            None => {}
        }
        let fs: Arc<dyn Fs> = Arc::new(self.fault.clone());
        let (set, recovery) = VersionSet::open(fs, dir(), options(self.rewrite_bytes)).unwrap();
        assert!(!recovery.created);
        self.set = Some(set);
    }

    /// Applies `edit` to keyspace `id`: refused when the keyspace is not
    /// live or `fits` is false, otherwise applied to the model too.
    fn edit(&mut self, edit: VersionEdit, fits: bool) {
        let live = self.model.live(edit.keyspace).is_some();
        if !live {
            let refusal = self.set().try_log_and_apply(edit).unwrap();
            assert!(refusal.is_err(), "an edit for a missing keyspace applied");
            return;
        }
        if !fits {
            refused(self.set().log_and_apply(edit));
            return;
        }
        let version = self.set().log_and_apply(edit.clone()).unwrap();
        assert!(Arc::ptr_eq(
            &version,
            &self.set().current_in(edit.keyspace).unwrap()
        ));
        self.model.apply(&edit);
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Reopen => self.reopen(None),
            Op::Crash => self.reopen(Some(true)),
            Op::CrashClean => self.reopen(Some(false)),
            Op::Create { name } => {
                let name = NAMES[name];
                let log_number = self.model.log_number + 1;
                let result = self.set().create_keyspace(name, log_number);
                let in_use = self.model.keyspaces.values().any(|k| k.name == name);
                if in_use {
                    refused(result);
                } else {
                    let id = result.unwrap();
                    self.model.create(id, name, log_number);
                }
            }
            Op::Drop { pick } => {
                let id = self.model.id(pick);
                let result = self.set().drop_keyspace(id);
                if id == DEFAULT_KEYSPACE || self.model.live(id).is_none() {
                    refused(result);
                } else {
                    result.unwrap();
                    self.model.keyspaces.remove(&id);
                }
            }
            Op::Add {
                keyspace,
                level,
                lo,
                span,
            } => {
                let id = self.model.id(keyspace);
                let number = self.set().reserve_file_number().unwrap();
                let hi = lo.saturating_add(span);
                let seq = self.model.last_seqno + 1;
                let t = table(number, &[lo], &[hi, 0], (seq, seq + u64::from(span)));
                let fits = self.model.live(id).is_none() || self.model.fits(id, level, &t);
                let edit = VersionEdit {
                    keyspace: id,
                    added: vec![(level, t)],
                    last_seqno: Some(seq + u64::from(span)),
                    ..VersionEdit::default()
                };
                self.edit(edit, fits);
            }
            Op::Remove { keyspace, pick } => {
                let id = self.model.id(keyspace);
                let Some((level, t)) = self.model.pick(id, pick) else {
                    return;
                };
                let edit = VersionEdit {
                    keyspace: id,
                    removed: vec![(level, t.number)],
                    ..VersionEdit::default()
                };
                self.edit(edit, true);
            }
            Op::Move { keyspace, pick } => {
                let id = self.model.id(keyspace);
                let Some((level, t)) = self.model.pick(id, pick) else {
                    return;
                };
                let to = (level + 1).min(NUM_LEVELS - 1);
                if to == level || !self.model.fits(id, to, &t) {
                    return;
                }
                let edit = VersionEdit {
                    keyspace: id,
                    removed: vec![(level, t.number)],
                    added: vec![(to, t)],
                    ..VersionEdit::default()
                };
                self.edit(edit, true);
            }
            Op::LogNumbers {
                keyspace,
                global,
                own,
            } => {
                let edit = VersionEdit {
                    keyspace: self.model.id(keyspace),
                    log_number: global,
                    keyspace_log_number: own,
                    ..VersionEdit::default()
                };
                self.edit(edit, true);
            }
            Op::Counters { seqno } => {
                let edit = VersionEdit {
                    last_seqno: Some(seqno),
                    ..VersionEdit::default()
                };
                self.edit(edit, true);
            }
            Op::Failed {
                drop,
                pick,
                name,
                sync,
            } => self.failed(drop, pick, NAMES[name], sync),
        }
    }

    /// A create or drop whose manifest write or sync fails, then a crash:
    /// the reopened state is the model before the call or after it.
    fn failed(&mut self, drop: bool, pick: usize, name: &str, sync: bool) {
        let id = self.model.id(pick);
        let mut after = self.model.clone();
        if drop {
            if id == DEFAULT_KEYSPACE || self.model.live(id).is_none() {
                return;
            }
            after.keyspaces.remove(&id);
        } else {
            if self.model.keyspaces.values().any(|k| k.name == name) {
                return;
            }
            after.create(self.model.next_id, name, 7);
        }
        let op = if sync { FaultOp::Sync } else { FaultOp::Write };
        self.fault.add_rule(
            FaultRule::new(op, FaultTrigger::Nth(1), FaultKind::Eio).on_path_containing("MANIFEST"),
        );
        let result = if drop {
            self.set().drop_keyspace(id)
        } else {
            self.set().create_keyspace(name, 7).map(|_| ())
        };
        self.fault.clear_rules();
        assert!(matches!(result, Err(Error::Io { .. })), "{result:?}");
        // Nothing became visible, and the set refuses every later edit.
        assert_eq!(sorted(keyspaces_state(self.set())), self.model.state());
        assert!(self.set().is_poisoned());
        self.reopen(Some(true));
        let state = sorted(keyspaces_state(self.set()));
        if state == after.state() {
            self.model = after;
        } else {
            assert_eq!(state, self.model.state(), "neither before nor after");
        }
    }
}

fn run(ops: Vec<Op>, seed: u64, rewrite_bytes: u64) {
    let mem = MemFs::with_seed(seed);
    let fault = FaultFs::new(Arc::new(mem.clone()));
    let fs: Arc<dyn Fs> = Arc::new(fault.clone());
    let (set, recovery) = VersionSet::open(fs, dir(), options(rewrite_bytes)).unwrap();
    assert!(recovery.created);
    let mut run = Run {
        mem,
        fault,
        rewrite_bytes,
        set: Some(set),
        model: Model::default(),
    };
    for op in ops {
        run.step(op);
        check(run.set(), &run.mem, &run.model);
    }
    run.reopen(Some(true));
    check(run.set(), &run.mem, &run.model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn keyspaces_match_the_model_through_reopens_rolls_and_crashes(
        ops in proptest::collection::vec(op(), 1..60),
        seed in any::<u64>(),
        rewrite_bytes in prop_oneof![Just(1u64), Just(400), Just(8 << 20)],
    ) {
        run(ops, seed, rewrite_bytes);
    }
}

/// A fixed sequence through every kind of step, with a manifest that rolls
/// on every edit.
#[test]
fn creates_drops_and_recreates_survive_rolls() {
    let ops = vec![
        Op::Create { name: 0 },
        Op::Create { name: 1 },
        Op::Add {
            keyspace: 1,
            level: 0,
            lo: 1,
            span: 3,
        },
        Op::Add {
            keyspace: 2,
            level: 2,
            lo: 1,
            span: 3,
        },
        Op::Drop { pick: 1 },
        Op::Create { name: 0 },
        Op::Add {
            keyspace: 3,
            level: 1,
            lo: 9,
            span: 0,
        },
        Op::LogNumbers {
            keyspace: 3,
            global: Some(2),
            own: Some(9),
        },
        Op::Crash,
        Op::Failed {
            drop: true,
            pick: 2,
            name: 0,
            sync: true,
        },
        Op::Failed {
            drop: false,
            pick: 0,
            name: 2,
            sync: false,
        },
        Op::Reopen,
        Op::Create { name: 3 },
        Op::Drop { pick: 0 },
    ];
    for seed in 0..8 {
        run(ops.clone(), seed, 1);
    }
}
