//! The kill -9 crash loop (RocksDB's db_crashtest): a child process runs a
//! random workload on a real directory and reports every acknowledged
//! operation over a pipe; this process kills it with SIGKILL at a random
//! moment, reopens the database and checks it against an expected-state
//! oracle:
//!
//! - every write acknowledged as durable (`sync: true`, `SyncMode::Always`,
//!   before a completed `flush` or `compact_range`) is there;
//! - the state equals the model after *some* prefix of the issued
//!   operations that includes every durable one (values are unique, so the
//!   prefix is identified exactly): no torn batch or transaction, no hole,
//!   no reordering;
//! - iterators are strictly ordered, and backward is forward reversed.
//!
//! The writes go to three keyspaces (the default one and two more with
//! their own options; batches and transactions span them), and a keyspace
//! is now and then dropped and created again: the prefix rule holds across
//! them all (a drop is durable with everything before it).
//!
//! The child also checks its own reads (gets, ranges both ways, snapshots
//! read later, transactions reading their writes) against its in-memory
//! model, and dies with a message on any difference.
//!
//! Every life draws its options: sync mode, compaction style, tiny
//! memtables, tables and WAL segments (so that flushes and compactions run
//! all the time), 1 to 3 background threads. Some kills land during open.
//!
//! `cargo test -p kevo-engine --test crash_loop` runs `KEVO_CRASH_KILLS`
//! lives (10 by default); `cargo xtask crash` runs at least 100 in release
//! mode. `KEVO_CRASH_SEED` replays a run's workloads, options and kill
//! delays (where a kill lands also depends on timing); the seed is
//! printed, and a failing run keeps its directory.
//!
//! A plain `main` (`harness = false`): the same binary is the parent and,
//! with `KEVO_CRASH_CHILD` set, the child.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Rng;
use kevo_engine::{
    CompactionStyle, Db, Keyspace, KeyspaceOptions, Options, SyncMode, WriteBatch, WriteOptions,
};

mod common;

/// Model keys carry their keyspace as a first byte: `0k0012` is `k0012`
/// in the default keyspace, `1k0012` in `a`, `2k0012` in `b`.
type Model = BTreeMap<Bytes, Bytes>;

const CHILD_ENV: &str = "KEVO_CRASH_CHILD";
/// Keys are `k0000` .. `k1499` in each keyspace.
const KEYS: u64 = 1500;
/// The keyspaces besides the default one (model prefixes `1` and `2`).
const KEYSPACES: [&str; 2] = ["a", "b"];

fn main() -> ExitCode {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return ExitCode::SUCCESS;
    }
    match parent() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("crash loop FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Model key `n` in keyspace `ks` (0: the default one).
fn key(ks: u64, n: u64) -> Bytes {
    Bytes::from(format!("{ks}k{:04}", n % KEYS))
}

/// A model key's keyspace (0: the default one) and its key there.
fn split(model_key: &[u8]) -> (usize, &[u8]) {
    (usize::from(model_key[0] - b'0'), &model_key[1..])
}

/// The model prefix of keyspace `ks`.
fn prefix(ks: usize) -> u8 {
    b'0' + ks as u8
}

/// The options of the two extra keyspaces: different from the database's
/// where a keyspace may differ.
fn keyspace_options(seed: u64, life: u64, ks: usize) -> KeyspaceOptions {
    let mut rng = Rng(seed.rotate_left(29) ^ life ^ (ks as u64) << 40);
    KeyspaceOptions::default()
        .compaction_style(if rng.chance(50) {
            CompactionStyle::Leveled
        } else {
            CompactionStyle::Tiered
        })
        .memtable_bytes((64 << 10) << rng.below(3))
        .block_bytes(512 << rng.below(4))
        .bloom_bits_per_key(if rng.chance(30) { 0 } else { 10 })
        .target_file_bytes(64 << 10)
}

/// One operation of the workload, fully determined by (seed, life, index).
#[derive(Debug, Clone)]
enum Op {
    Put {
        key: Bytes,
        value: Bytes,
        sync: bool,
    },
    Delete {
        key: Bytes,
        sync: bool,
    },
    Batch {
        entries: Vec<(Bytes, Option<Bytes>)>,
        sync: bool,
    },
    /// Reads `reads` (checked by the child), then writes `writes`.
    Transaction {
        reads: Vec<Bytes>,
        writes: Vec<(Bytes, Option<Bytes>)>,
    },
    /// Flushes keyspace `ks`.
    Flush {
        ks: usize,
    },
    /// Compacts the model range (one keyspace).
    Compact {
        start: Bytes,
        end: Bytes,
    },
    /// Drops keyspace `ks` (1 or 2) and creates it again, empty.
    DropKeyspace {
        ks: usize,
    },
    /// Deletes the model range `start..end` (one keyspace) with one range
    /// tombstone.
    DeleteRange {
        start: Bytes,
        end: Bytes,
        sync: bool,
    },
    TakeSnapshot,
    /// Reads back snapshot `index % taken` (checked by the child).
    ReadSnapshot {
        index: u64,
    },
    /// Reads a range both ways (checked by the child).
    Scan {
        start: Bytes,
        end: Bytes,
    },
    Get {
        key: Bytes,
    },
}

impl Op {
    /// Whether, once acknowledged, everything before it is durable.
    fn makes_durable(&self, sync_mode: SyncMode) -> bool {
        match self {
            Op::Put { sync, .. }
            | Op::Delete { sync, .. }
            | Op::Batch { sync, .. }
            | Op::DeleteRange { sync, .. } => *sync || sync_mode == SyncMode::Always,
            Op::Transaction { .. } => sync_mode == SyncMode::Always,
            Op::Flush { .. } | Op::Compact { .. } | Op::DropKeyspace { .. } => true,
            _ => false,
        }
    }

    /// What it writes, applied to `state` (a drop deletes the keys the
    /// state holds in its keyspace).
    fn writes(&self, state: &Model) -> Vec<(Bytes, Option<Bytes>)> {
        match self {
            Op::Put { key, value, .. } => vec![(key.clone(), Some(value.clone()))],
            Op::Delete { key, .. } => vec![(key.clone(), None)],
            Op::Batch { entries, .. } => entries.clone(),
            Op::Transaction { writes, .. } => writes.clone(),
            Op::DropKeyspace { ks } => state
                .keys()
                .filter(|k| k[0] == prefix(*ks))
                .map(|k| (k.clone(), None))
                .collect(),
            Op::DeleteRange { start, end, .. } => state
                .range(start.clone()..end.clone())
                .map(|(k, _)| (k.clone(), None))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The operations of one life, in order, without end.
struct Workload {
    rng: Rng,
    life: u64,
    index: u64,
}

impl Workload {
    fn new(seed: u64, life: u64) -> Self {
        Workload {
            rng: Rng(seed ^ life.wrapping_mul(0xA24B_AED4_963E_E407)),
            life,
            index: 0,
        }
    }

    fn value(&mut self) -> Bytes {
        let len = match self.rng.below(10) {
            0 => 0,
            1..=6 => 8 + self.rng.below(120),
            _ => 200 + self.rng.below(1800),
        } as usize;
        let mut v = format!("{}.{}:", self.life, self.index).into_bytes();
        let fill = self.rng.next();
        v.extend((0..len).map(|i| b'a' + ((fill >> (i % 60)) as u8).wrapping_add(i as u8) % 26));
        Bytes::from(v)
    }

    /// A keyspace: the default one half the time.
    fn keyspace(&mut self) -> u64 {
        self.rng.below(4).saturating_sub(1)
    }

    fn key(&mut self) -> Bytes {
        let ks = self.keyspace();
        // Half the writes go to a hot tenth of the keys.
        if self.rng.chance(50) {
            key(ks, self.rng.below(KEYS / 10))
        } else {
            key(ks, self.rng.below(KEYS))
        }
    }

    /// A model range inside one keyspace.
    fn range(&mut self) -> (Bytes, Bytes) {
        let ks = self.keyspace();
        let a = self.rng.below(KEYS);
        let b = a + 1 + self.rng.below(KEYS / 4);
        let end = if b >= KEYS {
            Bytes::from(format!("{ks}l"))
        } else {
            key(ks, b)
        };
        (key(ks, a), end)
    }

    fn entries(&mut self, n: u64) -> Vec<(Bytes, Option<Bytes>)> {
        (0..n)
            .map(|_| {
                let key = self.key();
                let value = (!self.rng.chance(20)).then(|| self.value());
                (key, value)
            })
            .collect()
    }

    fn next_op(&mut self) -> Op {
        self.index += 1;
        let sync = self.rng.chance(5);
        match self.rng.below(1000) {
            0..=499 => {
                let key = self.key();
                let value = self.value();
                Op::Put { key, value, sync }
            }
            500..=579 => Op::Delete {
                key: self.key(),
                sync,
            },
            580..=699 => {
                let n = 1 + self.rng.below(12);
                Op::Batch {
                    entries: self.entries(n),
                    sync,
                }
            }
            700..=759 => {
                let reads = (0..1 + self.rng.below(3)).map(|_| self.key()).collect();
                let n = 1 + self.rng.below(4);
                Op::Transaction {
                    reads,
                    writes: self.entries(n),
                }
            }
            760..=768 => Op::Flush {
                ks: self.keyspace() as usize,
            },
            769 => Op::DropKeyspace {
                ks: 1 + self.rng.below(2) as usize,
            },
            770..=774 => {
                let (start, end) = self.range();
                Op::Compact { start, end }
            }
            950..=964 => {
                // Short ranges mostly, now and then a wide one.
                let (start, mut end) = self.range();
                if self.rng.chance(70) {
                    let n: u64 = String::from_utf8_lossy(&start[2..]).parse().unwrap_or(0);
                    end = key(
                        u64::from(start[0] - b'0'),
                        (n + 1 + self.rng.below(20)).min(KEYS - 1),
                    );
                }
                Op::DeleteRange { start, end, sync }
            }
            775..=794 => Op::TakeSnapshot,
            795..=839 => Op::ReadSnapshot {
                index: self.rng.next(),
            },
            840..=889 => {
                let (start, end) = self.range();
                Op::Scan { start, end }
            }
            _ => Op::Get { key: self.key() },
        }
    }
}

/// The options of one life, drawn from (seed, life).
fn options(seed: u64, life: u64) -> Options {
    let mut rng = Rng(seed.rotate_left(17) ^ life);
    let sync_mode = match rng.below(3) {
        0 => SyncMode::None,
        1 => SyncMode::Always,
        _ => SyncMode::Interval(Duration::from_millis(1 + rng.below(20))),
    };
    let style = if rng.chance(50) {
        CompactionStyle::Leveled
    } else {
        CompactionStyle::Tiered
    };
    Options::default()
        .sync_mode(sync_mode)
        .compaction_style(style)
        .memtable_bytes((64 << 10) << rng.below(3))
        .max_immutable_memtables(1 + rng.below(2) as usize)
        .wal_segment_bytes((64 << 10) << rng.below(4))
        .block_bytes(512 << rng.below(4))
        .block_restart_interval(1 + rng.below(16) as usize)
        .bloom_bits_per_key(if rng.chance(30) { 0 } else { 10 })
        .target_file_bytes(64 << 10)
        .base_level_bytes(256 << 10)
        .level_multiplier(4)
        .l0_compaction_trigger(2)
        .l0_slowdown_trigger(6)
        .l0_stop_trigger(10)
        .manifest_rewrite_bytes(64 << 10)
        .block_cache_bytes(if rng.chance(50) { 0 } else { 1 << 20 })
        .memory_budget_bytes(if rng.chance(25) { 8 << 20 } else { 0 })
        // Idle compactions start within the pauses of the workload too.
        .idle_compaction_delay_ms(if rng.chance(50) { 10 } else { 1000 })
        .background_threads(1 + rng.below(3) as usize)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------- child

/// Runs the workload until killed. Prints `A <index>` once operation
/// `index` (1-based) is acknowledged.
fn child() {
    let dir = PathBuf::from(std::env::var("KEVO_CRASH_DIR").expect("KEVO_CRASH_DIR"));
    let seed = env_u64("KEVO_CRASH_SEED").expect("KEVO_CRASH_SEED");
    let life = env_u64("KEVO_CRASH_LIFE").expect("KEVO_CRASH_LIFE");
    let db = match Db::open_with(&dir, options(seed, life)) {
        Ok(db) => db,
        Err(e) => fail(&format!("open failed: {e}")),
    };
    let mut spaces = Spaces::open(db, seed, life)
        .unwrap_or_else(|e| fail(&format!("opening the keyspaces: {e}")));
    // The parent checked that the database holds its model.
    let mut model: Model = spaces
        .scan_all(None)
        .unwrap_or_else(|e| fail(&format!("first scan: {e}")))
        .into_iter()
        .collect();
    println!("OPEN");
    let mut snapshots: Vec<(kevo_engine::Snapshot, Model)> = Vec::new();
    let mut workload = Workload::new(seed, life);
    loop {
        let op = workload.next_op();
        let index = workload.index;
        if let Err(e) = run(&mut spaces, &op, &mut model, &mut snapshots) {
            fail(&format!("operation {index} ({op:?}): {e}"));
        }
        println!("A {index}");
    }
}

fn fail(message: &str) -> ! {
    eprintln!("child: {message}");
    std::process::exit(3)
}

/// The database and handles of its two extra keyspaces (created if
/// missing, with the options of the life).
struct Spaces {
    db: Db,
    keyspaces: Vec<Keyspace>,
    seed: u64,
    life: u64,
}

impl Spaces {
    fn open(db: Db, seed: u64, life: u64) -> kevo_engine::Result<Spaces> {
        let keyspaces = KEYSPACES
            .iter()
            .enumerate()
            .map(|(i, name)| db.keyspace(name, keyspace_options(seed, life, i + 1)))
            .collect::<kevo_engine::Result<_>>()?;
        Ok(Spaces {
            db,
            keyspaces,
            seed,
            life,
        })
    }

    /// Keyspace `ks` (1 or 2).
    fn keyspace(&self, ks: usize) -> &Keyspace {
        &self.keyspaces[ks - 1]
    }

    /// The range `start..end` of one keyspace (model keys), both ways.
    fn scan_range(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> kevo_engine::Result<[Vec<(Bytes, Bytes)>; 2]> {
        let (ks, from) = split(start);
        let (_, to) = split(end);
        let ([forward, backward], p) = match ks {
            0 => (
                [
                    scan(self.db.range(from..to))?,
                    scan(self.db.range(from..to).rev())?,
                ],
                prefix(0),
            ),
            ks => (
                [
                    scan(self.keyspace(ks).range(from..to))?,
                    scan(self.keyspace(ks).range(from..to).rev())?,
                ],
                prefix(ks),
            ),
        };
        Ok([with_prefix(p, forward), with_prefix(p, backward)])
    }

    /// Every keyspace (of `snapshot`, or now), as model keys in order;
    /// each keyspace read forward and backward.
    fn scan_all(
        &self,
        snapshot: Option<&kevo_engine::Snapshot>,
    ) -> kevo_engine::Result<Vec<(Bytes, Bytes)>> {
        let mut all = Vec::new();
        for ks in 0..=KEYSPACES.len() {
            let read = |back: bool| {
                let iter = match (snapshot, ks) {
                    (None, 0) => self.db.range::<&[u8], _>(..),
                    (None, ks) => self.keyspace(ks).range::<&[u8], _>(..),
                    (Some(s), 0) => s.range::<&[u8], _>(..),
                    (Some(s), ks) => s.range_in::<&[u8], _>(self.keyspace(ks), ..),
                };
                if back { scan(iter.rev()) } else { scan(iter) }
            };
            let forward = read(false)?;
            let backward = read(true)?;
            if forward.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(kevo_engine::Error::InvalidArgument(format!(
                    "keyspace {ks}: a forward scan is not strictly ordered"
                )));
            }
            if backward.iter().rev().ne(forward.iter()) {
                return Err(kevo_engine::Error::InvalidArgument(format!(
                    "keyspace {ks}: a backward scan is not the forward one reversed"
                )));
            }
            all.extend(with_prefix(prefix(ks), forward));
        }
        Ok(all)
    }
}

/// `entries` with their keys made model keys of the keyspace of `p`.
fn with_prefix(p: u8, entries: Vec<(Bytes, Bytes)>) -> Vec<(Bytes, Bytes)> {
    entries
        .into_iter()
        .map(|(k, v)| {
            let mut key = Vec::with_capacity(k.len() + 1);
            key.push(p);
            key.extend_from_slice(&k);
            (Bytes::from(key), v)
        })
        .collect()
}

fn scan(
    iter: impl Iterator<Item = kevo_engine::Result<(Bytes, Bytes)>>,
) -> kevo_engine::Result<Vec<(Bytes, Bytes)>> {
    iter.collect()
}

fn apply(model: &mut Model, writes: &[(Bytes, Option<Bytes>)]) {
    for (key, value) in writes {
        match value {
            Some(value) => model.insert(key.clone(), value.clone()),
            None => model.remove(key),
        };
    }
}

/// Runs `op` on the database and on the model; any read that disagrees is
/// an error.
fn run(
    spaces: &mut Spaces,
    op: &Op,
    model: &mut Model,
    snapshots: &mut Vec<(kevo_engine::Snapshot, Model)>,
) -> Result<(), String> {
    let e = |e: kevo_engine::Error| e.to_string();
    let db = &spaces.db;
    match op {
        Op::Put { sync, .. } | Op::Delete { sync, .. } | Op::Batch { sync, .. } => {
            let writes = op.writes(model);
            let mut batch = WriteBatch::new();
            for (key, value) in &writes {
                match (split(key), value) {
                    ((0, key), Some(value)) => batch.put(key, value),
                    ((0, key), None) => batch.delete(key),
                    ((ks, key), Some(value)) => batch.put_in(spaces.keyspace(ks), key, value),
                    ((ks, key), None) => batch.delete_in(spaces.keyspace(ks), key),
                }
            }
            db.write_with(batch, &WriteOptions { sync: *sync })
                .map_err(e)?;
            apply(model, &writes);
        }
        Op::Transaction { reads, writes } => {
            let mut tx = db.begin();
            let get = |tx: &mut kevo_engine::Transaction, key: &Bytes| match split(key) {
                (0, k) => tx.get(k),
                (ks, k) => tx.get_in(spaces.keyspace(ks), k),
            };
            for key in reads {
                let got = get(&mut tx, key).map_err(e)?;
                if got.as_ref() != model.get(key) {
                    return Err(format!("transaction read {key:?}: {got:?}"));
                }
            }
            for (key, value) in writes {
                match (split(key), value) {
                    ((0, k), Some(value)) => tx.put(k, value).map_err(e)?,
                    ((0, k), None) => tx.delete(k).map_err(e)?,
                    ((ks, k), Some(value)) => {
                        tx.put_in(spaces.keyspace(ks), k, value).map_err(e)?
                    }
                    ((ks, k), None) => tx.delete_in(spaces.keyspace(ks), k).map_err(e)?,
                }
            }
            // Reads see the transaction's own writes.
            let mut expected = model.clone();
            apply(&mut expected, writes);
            let (key, _) = &writes[0];
            if get(&mut tx, key).map_err(e)?.as_ref() != expected.get(key) {
                return Err(format!(
                    "transaction does not read its own write of {key:?}"
                ));
            }
            tx.commit().map_err(e)?;
            *model = expected;
        }
        Op::DeleteRange { start, end, sync } => {
            let (ks, from) = split(start);
            let (_, to) = split(end);
            let mut batch = WriteBatch::new();
            match ks {
                0 => batch.delete_range(from..to),
                ks => batch.delete_range_in(spaces.keyspace(ks), from..to),
            }
            db.write_with(batch, &WriteOptions { sync: *sync })
                .map_err(e)?;
            let writes = op.writes(model);
            apply(model, &writes);
        }
        Op::Flush { ks: 0 } => db.flush().map_err(e)?,
        Op::Flush { ks } => spaces.keyspace(*ks).flush().map_err(e)?,
        Op::Compact { start, end } => match (split(start), split(end)) {
            ((0, from), (_, to)) => db.compact_range(from..to).map_err(e)?,
            ((ks, from), (_, to)) => spaces.keyspace(ks).compact_range(from..to).map_err(e)?,
        },
        Op::DropKeyspace { ks } => {
            let name = KEYSPACES[ks - 1];
            db.drop_keyspace(name).map_err(e)?;
            let created = db
                .keyspace(name, keyspace_options(spaces.seed, spaces.life, *ks))
                .map_err(e)?;
            if created.get("k0000").map_err(e)?.is_some()
                || created.range::<&[u8], _>(..).next().is_some()
            {
                return Err(format!("keyspace {name} is not empty after a drop"));
            }
            spaces.keyspaces[ks - 1] = created;
            let writes = op.writes(model);
            apply(model, &writes);
            // Snapshots taken before the drop no longer read the keyspace:
            // forget them.
            snapshots.clear();
        }
        Op::TakeSnapshot => {
            if snapshots.len() >= 4 {
                snapshots.remove(0);
            }
            snapshots.push((db.snapshot(), model.clone()));
        }
        Op::ReadSnapshot { index } => {
            if !snapshots.is_empty() {
                let (snapshot, seen) = &snapshots[(*index as usize) % snapshots.len()];
                let got = spaces.scan_all(Some(snapshot)).map_err(e)?;
                let want: Vec<_> = seen.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                if got != want {
                    return Err(format!(
                        "a snapshot reads {} entries, {} when taken",
                        got.len(),
                        want.len()
                    ));
                }
            }
        }
        Op::Scan { start, end } => {
            let [forward, backward] = spaces.scan_range(start, end).map_err(e)?;
            let want: Vec<_> = model
                .range(start.clone()..end.clone())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if forward != want {
                return Err(format!(
                    "range forward: {} entries, want {}",
                    forward.len(),
                    want.len()
                ));
            }
            if backward.iter().rev().ne(want.iter()) {
                return Err("range backward differs".to_string());
            }
        }
        Op::Get { key } => {
            let got = match split(key) {
                (0, k) => db.get(k),
                (ks, k) => spaces.keyspace(ks).get(k),
            }
            .map_err(e)?;
            if got.as_ref() != model.get(key) {
                return Err(format!("get {key:?}: {got:?}, want {:?}", model.get(key)));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- parent

struct Totals {
    crashes: u64,
    during_open: u64,
    acknowledged: u64,
    durable_checked: u64,
    lost_unsynced: u64,
}

fn parent() -> Result<(), String> {
    let kills = env_u64("KEVO_CRASH_KILLS").unwrap_or(10);
    let seed = env_u64("KEVO_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let dir = std::env::temp_dir().join(format!("kevo-crash-loop-{seed}"));
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "crash loop: {kills} kill -9 crashes, seed {seed} (KEVO_CRASH_SEED={seed} replays its workloads), directory {}",
        dir.display()
    );
    let started = Instant::now();
    let mut totals = Totals {
        crashes: 0,
        during_open: 0,
        acknowledged: 0,
        durable_checked: 0,
        lost_unsynced: 0,
    };
    let mut model = Model::new();
    let mut pick = Rng(seed ^ 0x5EED);
    for life in 0..kills {
        life_and_death(&dir, seed, life, &mut model, &mut pick, &mut totals).map_err(|e| {
            format!(
                "seed {seed}, life {life}: {e}\n(the directory is kept: {})",
                dir.display()
            )
        })?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "crash loop: {} crashes ({} during open), {} operations acknowledged and verified, {} \
         durable points checked, {} unsynced operations lost by a kill (allowed); no synced \
         write lost, no torn batch (either fails the run); {:.1} s",
        totals.crashes,
        totals.during_open,
        totals.acknowledged,
        totals.durable_checked,
        totals.lost_unsynced,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One life: start the child, kill it, check what survived.
fn life_and_death(
    dir: &Path,
    seed: u64,
    life: u64,
    model: &mut Model,
    pick: &mut Rng,
    totals: &mut Totals,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .env(CHILD_ENV, "1")
        .env("KEVO_CRASH_DIR", dir)
        .env("KEVO_CRASH_SEED", seed.to_string())
        .env("KEVO_CRASH_LIFE", life.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the child: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // A few kills land during open; most after a while of work.
    let delay = if pick.chance(15) {
        Duration::from_micros(pick.below(20_000))
    } else {
        Duration::from_millis(100 + pick.below(900))
    };
    std::thread::sleep(delay);
    child
        .kill()
        .map_err(|e| format!("killing the child: {e}"))?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = reader.join();
    let mut opened = false;
    let mut acked = 0u64;
    for line in received.try_iter() {
        if line == "OPEN" {
            opened = true;
        } else if let Some(index) = line.strip_prefix("A ") {
            acked = index.parse().map_err(|_| format!("bad line {line:?}"))?;
        }
    }
    use std::os::unix::process::ExitStatusExt;
    if output.status.signal() != Some(9) {
        return Err(format!(
            "the child was not killed but ended by itself ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    totals.crashes += 1;
    if !opened {
        totals.during_open += 1;
    }

    // The oracle: replay the same operations on the model.
    let options = options(seed, life);
    let sync_mode = options.sync_mode;
    let mut workload = Workload::new(seed, life);
    let ops: Vec<Op> = (0..=acked).map(|_| workload.next_op()).collect();
    let durable = (1..=acked)
        .rev()
        .find(|&i| ops[i as usize - 1].makes_durable(sync_mode))
        .unwrap_or(0);

    let db = Db::open_with(dir, options).map_err(|e| format!("reopen after the kill: {e}"))?;
    let spaces =
        Spaces::open(db, seed, life).map_err(|e| format!("keyspaces after the kill: {e}"))?;
    let recovered: Model = spaces
        .scan_all(None)
        .map_err(|e| format!("scan: {e}"))?
        .into_iter()
        .collect();

    // Find the prefix: the state after `p` operations, durable <= p <=
    // acked + 1 (the one in flight may have been applied).
    let mut state = model.clone();
    let mut differing: std::collections::BTreeSet<Bytes> = state
        .keys()
        .chain(recovered.keys())
        .filter(|k| state.get(*k) != recovered.get(*k))
        .cloned()
        .collect();
    let mut found = None;
    for p in 0..=acked + 1 {
        if p >= durable && differing.is_empty() {
            found = Some(p);
        }
        let Some(op) = ops.get(p as usize) else { break };
        for (key, value) in op.writes(&state) {
            match value {
                Some(v) => state.insert(key.clone(), v),
                None => state.remove(&key),
            };
            if state.get(&key) == recovered.get(&key) {
                differing.remove(&key);
            } else {
                differing.insert(key);
            }
        }
    }
    let Some(found) = found else {
        return Err(format!(
            "the reopened database ({} keys) equals no prefix of the {acked} acknowledged \
             operations from the last durable one ({durable}) on",
            recovered.len()
        ));
    };
    spaces.db.close().map_err(|e| format!("close: {e}"))?;
    totals.acknowledged += acked;
    totals.durable_checked += u64::from(durable > 0);
    totals.lost_unsynced += acked.saturating_sub(found.min(acked));
    *model = recovered;
    Ok(())
}
