//! Serializable transactions: bank transfers under contention, write skew,
//! phantoms, read-your-writes, rollback, a model of interleaved
//! transactions, and crashes during commits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kevo_core::{FaultFs, MemFs};
use kevo_engine::{Db, Error, Options, SyncMode};
use proptest::prelude::*;

const ACCOUNTS: u64 = 100;
const START_BALANCE: u64 = 1000;

fn account(i: u64) -> String {
    format!("account{i:03}")
}

fn balance(value: Option<Bytes>) -> u64 {
    value.map_or(0, |v| {
        std::str::from_utf8(&v)
            .expect("utf-8")
            .parse()
            .expect("number")
    })
}

fn total(snapshot_items: Vec<(Bytes, Bytes)>) -> u64 {
    snapshot_items
        .into_iter()
        .map(|(_, v)| balance(Some(v)))
        .sum()
}

/// 8 threads move random amounts between 100 accounts with
/// `db.transaction`; the total never changes in any snapshot taken
/// meanwhile, nor after a reopen. Runs until 100 000 transfers committed
/// (or a time limit, which then fails the test).
#[test]
fn bank_transfers_keep_the_total() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options::default()
        .memtable_bytes(1 << 20)
        .sync_mode(SyncMode::None);
    let db = Db::open_with(dir.path(), options.clone()).expect("open");
    for i in 0..ACCOUNTS {
        db.put(account(i), START_BALANCE.to_string()).expect("put");
    }
    let target: u64 = std::env::var("KEVO_BANK_TRANSFERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let committed = Arc::new(AtomicU64::new(0));
    let conflicts = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8u64)
        .map(|t| {
            let (db, committed, stop) = (db.clone(), committed.clone(), stop.clone());
            thread::spawn(move || {
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut rand = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                while !stop.load(Ordering::Relaxed) {
                    let from = rand() % ACCOUNTS;
                    let to = (from + 1 + rand() % (ACCOUNTS - 1)) % ACCOUNTS;
                    let amount = rand() % 50;
                    db.transaction(|tx| {
                        let a = balance(tx.get(account(from))?);
                        let b = balance(tx.get(account(to))?);
                        let moved = amount.min(a);
                        tx.put(account(from), (a - moved).to_string())?;
                        tx.put(account(to), (b + moved).to_string())?;
                        Ok(())
                    })
                    .expect("transfer");
                    committed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let auditor = {
        let (db, stop) = (db.clone(), stop.clone());
        thread::spawn(move || {
            let mut audits = 0;
            while !stop.load(Ordering::Relaxed) {
                let snapshot = db.begin_read();
                let items: Vec<_> = snapshot
                    .prefix("account")
                    .collect::<Result<_, _>>()
                    .expect("scan");
                assert_eq!(items.len() as u64, ACCOUNTS);
                assert_eq!(total(items), ACCOUNTS * START_BALANCE, "audit {audits}");
                audits += 1;
                thread::sleep(Duration::from_millis(5));
            }
            audits
        })
    };
    let started = Instant::now();
    while committed.load(Ordering::Relaxed) < target {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} transfers in 120 s",
            committed.load(Ordering::Relaxed)
        );
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("worker");
    }
    let audits = auditor.join().expect("auditor");
    assert!(audits > 0);
    let _ = conflicts;
    let items: Vec<_> = db
        .prefix("account")
        .collect::<Result<_, _>>()
        .expect("scan");
    assert_eq!(total(items), ACCOUNTS * START_BALANCE);
    db.close().expect("close");
    let db = Db::open_with(dir.path(), options).expect("reopen");
    let items: Vec<_> = db
        .prefix("account")
        .collect::<Result<_, _>>()
        .expect("scan");
    assert_eq!(total(items), ACCOUNTS * START_BALANCE, "after reopen");
}

fn mem_db() -> Db {
    Db::open_with_fs(Arc::new(MemFs::new()), "/db", Options::default()).expect("open")
}

/// Two transactions each read both keys and write one: one must fail.
#[test]
fn write_skew_is_refused() {
    let db = mem_db();
    db.put("x", "1").expect("put");
    db.put("y", "1").expect("put");
    let mut t1 = db.begin();
    let mut t2 = db.begin();
    for tx in [&mut t1, &mut t2] {
        assert!(tx.get("x").expect("get").is_some());
        assert!(tx.get("y").expect("get").is_some());
    }
    t1.put("x", "0").expect("put");
    t2.put("y", "0").expect("put");
    t1.commit().expect("the first commit wins");
    assert!(matches!(t2.commit(), Err(Error::Conflict(_))));
    assert_eq!(db.get("y").expect("get").as_deref(), Some(&b"1"[..]));
}

/// A lost update is refused too: two read-modify-writes of one key.
#[test]
fn lost_update_is_refused() {
    let db = mem_db();
    db.put("counter", "0").expect("put");
    let mut t1 = db.begin();
    let mut t2 = db.begin();
    let _ = t1.get("counter").expect("get");
    let _ = t2.get("counter").expect("get");
    t1.put("counter", "1").expect("put");
    t2.put("counter", "1").expect("put");
    t1.commit().expect("commit");
    assert!(matches!(t2.commit(), Err(Error::Conflict(_))));
}

/// A transaction that scanned a range conflicts with a commit that inserted
/// into it (a phantom), also by a plain write; one that scanned elsewhere
/// does not.
#[test]
fn phantoms_are_refused() {
    let db = mem_db();
    db.put("item/1", "a").expect("put");
    let mut scanner = db.begin();
    let mut other = db.begin();
    assert_eq!(scanner.prefix("item/").count(), 1);
    assert_eq!(other.prefix("zzz/").count(), 0);
    db.put("item/2", "b")
        .expect("a plain write inserts into the range");
    scanner.put("summary", "1 item").expect("put");
    other.put("other", "x").expect("put");
    assert!(matches!(scanner.commit(), Err(Error::Conflict(_))));
    other.commit().expect("no overlap, no conflict");
    // And between transactions, in both directions of scan.
    let mut a = db.begin();
    let mut b = db.begin();
    assert_eq!(a.range("item/".."item0").rev().count(), 2);
    b.put("item/3", "c").expect("put");
    b.commit().expect("commit");
    a.put("summary", "2 items").expect("put");
    assert!(matches!(a.commit(), Err(Error::Conflict(_))));
}

/// Reads see the transaction's own writes, deletes included, in gets and in
/// ranges in both directions; rollback (and drop) leave no trace.
#[test]
fn read_your_writes_and_rollback() {
    let db = mem_db();
    for k in ["a", "c", "e", "g"] {
        db.put(k, format!("stored-{k}")).expect("put");
    }
    db.flush().expect("some of it in a table");
    db.put("i", "stored-i").expect("put");
    let mut tx = db.begin();
    tx.put("b", "mine-b").expect("put");
    tx.put("c", "mine-c").expect("put");
    tx.delete("e").expect("delete");
    tx.delete("zz").expect("delete of an absent key");
    tx.put("j", "mine-j").expect("put");
    assert_eq!(tx.get("c").expect("get").as_deref(), Some(&b"mine-c"[..]));
    assert_eq!(tx.get("e").expect("get"), None);
    assert_eq!(tx.get("g").expect("get").as_deref(), Some(&b"stored-g"[..]));
    let forward: Vec<(Bytes, Bytes)> = tx
        .range::<&str, _>(..)
        .collect::<Result<_, _>>()
        .expect("scan");
    let keys: Vec<&[u8]> = forward.iter().map(|(k, _)| &k[..]).collect();
    assert_eq!(keys, [&b"a"[..], b"b", b"c", b"g", b"i", b"j"]);
    assert_eq!(forward[2].1, "mine-c");
    let backward: Vec<(Bytes, Bytes)> = tx
        .range("b".."i")
        .rev()
        .collect::<Result<_, _>>()
        .expect("scan");
    let keys: Vec<&[u8]> = backward.iter().map(|(k, _)| &k[..]).collect();
    assert_eq!(keys, [&b"g"[..], b"c", b"b"]);
    // Meeting in the middle.
    let mut both = tx.range::<&str, _>(..);
    assert_eq!(both.next().unwrap().unwrap().0, "a");
    assert_eq!(both.next_back().unwrap().unwrap().0, "j");
    assert_eq!(both.next().unwrap().unwrap().0, "b");
    assert_eq!(both.count(), 3);
    // Nothing is visible outside before the commit.
    assert_eq!(db.get("b").expect("get"), None);
    tx.rollback();
    assert_eq!(db.get("b").expect("get"), None);
    assert!(db.get("e").expect("get").is_some());
    {
        let mut dropped = db.begin();
        dropped.put("b", "dropped").expect("put");
    }
    assert_eq!(db.get("b").expect("get"), None);
    // Committed, everything at once.
    let mut tx = db.begin();
    tx.put("b", "mine-b").expect("put");
    tx.delete("e").expect("delete");
    tx.commit().expect("commit");
    assert_eq!(db.get("b").expect("get").as_deref(), Some(&b"mine-b"[..]));
    assert_eq!(db.get("e").expect("get"), None);
}

/// `begin_read` never conflicts; a `begin` transaction that only read
/// commits unless what it read changed (commit-order serializability).
#[test]
fn read_only_transactions() {
    let db = mem_db();
    db.put("k", "1").expect("put");
    let mut tx = db.begin();
    let mut quiet = db.begin();
    let snapshot = db.begin_read();
    assert!(tx.get("k").expect("get").is_some());
    assert!(quiet.get("other").expect("get").is_none());
    db.put("k", "2").expect("put");
    assert!(matches!(tx.commit(), Err(Error::Conflict(_))));
    quiet.commit().expect("nothing it read changed");
    assert_eq!(snapshot.get("k").expect("get").as_deref(), Some(&b"1"[..]));
}

#[derive(Debug, Clone)]
enum Step {
    Begin,
    Get(u8),
    Scan(u8, u8),
    Put(u8),
    Delete(u8),
    Commit,
}

fn step() -> impl Strategy<Value = (usize, Step)> {
    (
        0usize..4,
        prop_oneof![
            2 => Just(Step::Begin),
            4 => (0u8..12).prop_map(Step::Get),
            2 => (0u8..12, 0u8..12).prop_map(|(a, b)| Step::Scan(a.min(b), a.max(b))),
            4 => (0u8..12).prop_map(Step::Put),
            1 => (0u8..12).prop_map(Step::Delete),
            3 => Just(Step::Commit),
        ],
    )
}

fn key(k: u8) -> Bytes {
    Bytes::from(format!("k{k:02}"))
}

/// A scan's bounds and what it saw.
type Scan = (u8, u8, Vec<(Bytes, Bytes)>);

/// An open transaction in the model run: what it read (before writing
/// anything, so that reads reflect its snapshot) and what it wrote.
struct Open {
    tx: kevo_engine::Transaction,
    gets: Vec<(Bytes, Option<Bytes>)>,
    scans: Vec<Scan>,
    writes: Vec<(Bytes, Option<Bytes>)>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every committed history equals running the committed transactions
    /// one at a time in commit order: each committed transaction's reads
    /// match the serial state at its commit point.
    #[test]
    fn committed_histories_are_serial(steps in prop::collection::vec(step(), 1..80)) {
        let db = mem_db();
        let mut model: BTreeMap<Bytes, Bytes> = BTreeMap::new();
        let mut open: Vec<Option<Open>> = (0..4).map(|_| None).collect();
        let mut counter = 0u64;
        for (slot, step) in steps {
            match step {
                Step::Begin => {
                    if open[slot].is_none() {
                        open[slot] = Some(Open { tx: db.begin(), gets: vec![], scans: vec![], writes: vec![] });
                    }
                }
                Step::Get(k) => if let Some(o) = open[slot].as_mut().filter(|o| o.writes.is_empty()) {
                    let got = o.tx.get(key(k)).expect("get");
                    o.gets.push((key(k), got));
                },
                Step::Scan(a, b) => if let Some(o) = open[slot].as_mut().filter(|o| o.writes.is_empty()) {
                    let got: Vec<(Bytes, Bytes)> = o.tx.range(key(a)..=key(b)).collect::<Result<_, _>>().expect("scan");
                    o.scans.push((a, b, got));
                },
                Step::Put(k) => if let Some(o) = open[slot].as_mut() {
                    counter += 1;
                    let value = Bytes::from(format!("v{counter}"));
                    o.tx.put(key(k), &value).expect("put");
                    o.writes.push((key(k), Some(value)));
                },
                Step::Delete(k) => if let Some(o) = open[slot].as_mut() {
                    o.tx.delete(key(k)).expect("delete");
                    o.writes.push((key(k), None));
                },
                Step::Commit => if let Some(o) = open[slot].take() {
                    match o.tx.commit() {
                        Ok(()) => {
                            for (k, seen) in &o.gets {
                                prop_assert_eq!(model.get(k), seen.as_ref(), "a committed get is stale");
                            }
                            for (a, b, seen) in &o.scans {
                                let now: Vec<(Bytes, Bytes)> = model.range(key(*a)..=key(*b)).map(|(k, v)| (k.clone(), v.clone())).collect();
                                prop_assert_eq!(&now, seen, "a committed scan is stale");
                            }
                            for (k, v) in o.writes {
                                match v {
                                    Some(v) => { model.insert(k, v); }
                                    None => { model.remove(&k); }
                                }
                            }
                        }
                        Err(Error::Conflict(_)) => {}
                        Err(e) => return Err(TestCaseError::fail(format!("commit: {e}"))),
                    }
                },
            }
        }
        drop(open);
        let all: Vec<(Bytes, Bytes)> = db.range::<&[u8], _>(..).collect::<Result<_, _>>().expect("scan");
        let want: Vec<(Bytes, Bytes)> = model.into_iter().collect();
        prop_assert_eq!(all, want);
    }
}

/// Crashes during commits: after each reopen every transaction is all or
/// nothing (each writes two keys with its id).
#[test]
fn a_crash_during_commits_keeps_each_transaction_whole() {
    for seed in 0..20u64 {
        let mem = Arc::new(MemFs::with_seed(seed));
        let fs = Arc::new(FaultFs::new(mem.clone()));
        let options = Options::default()
            .sync_mode(SyncMode::None)
            .memtable_bytes(64 * 1024);
        let db = Db::open_with_fs(fs.clone(), "/db", options.clone()).expect("open");
        let committed = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..3u64)
            .map(|t| {
                let (db, committed) = (db.clone(), committed.clone());
                thread::spawn(move || {
                    for i in 0..200u64 {
                        let id = t * 1000 + i;
                        let result = db.transaction(|tx| {
                            tx.put(format!("a{id:05}"), format!("{id}-{}", "x".repeat(100)))?;
                            let _ = tx.get(format!("b{id:05}"))?;
                            tx.put(format!("b{id:05}"), format!("{id}"))?;
                            Ok(())
                        });
                        match result {
                            Ok(()) => {
                                committed.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => return, // the crash
                        }
                    }
                })
            })
            .collect();
        // Crash once some commits went through.
        while committed.load(Ordering::Relaxed) < 50 + seed * 10 {
            thread::yield_now();
        }
        fs.fail_every_change();
        mem.crash();
        for writer in writers {
            writer.join().expect("writer");
        }
        drop(db);
        let db = Db::open_with_fs(mem, "/db", options).expect("reopen");
        let a: BTreeMap<Bytes, Bytes> = db.prefix("a").collect::<Result<_, _>>().expect("scan");
        let b: BTreeMap<Bytes, Bytes> = db.prefix("b").collect::<Result<_, _>>().expect("scan");
        assert_eq!(
            a.len(),
            b.len(),
            "seed {seed}: a transaction was cut in half"
        );
        for k in a.keys() {
            let other = Bytes::from(format!("b{}", std::str::from_utf8(&k[1..]).unwrap()));
            assert!(
                b.contains_key(&other),
                "seed {seed}: {k:?} without {other:?}"
            );
        }
    }
}
