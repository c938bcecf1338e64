//! Four writers and four readers at once, over flushes: per key, readers
//! never see a value go back in time, and every acknowledged write is
//! readable afterwards (also after a reopen).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use kevo_engine::{Db, Options, SyncMode, WriteBatch};

const WRITERS: u64 = 4;
const KEYS_PER_WRITER: u64 = 64;

/// Values are `writer:counter`, counters rising per key.
fn parse(value: &[u8]) -> (u64, u64) {
    let text = std::str::from_utf8(value).expect("utf-8");
    let (writer, counter) = text.split_once(':').expect("writer:counter");
    let counter = counter.split('-').next().expect("counter");
    (
        writer.parse().expect("writer"),
        counter.parse().expect("counter"),
    )
}

#[test]
fn writers_and_readers_never_see_time_go_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options::default()
        .memtable_bytes(256 * 1024)
        .sync_mode(SyncMode::None)
        .max_immutable_memtables(2);
    let db = Db::open_with(dir.path(), options.clone()).expect("open");
    let stop = Arc::new(AtomicBool::new(false));
    let run_for = Duration::from_millis(
        std::env::var("KEVO_CONCURRENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000),
    );

    // Writer w owns keys "w{w}-{k}"; readers check the counter never drops.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let db = db.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut counter = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    counter += 1;
                    if counter.is_multiple_of(5) {
                        let mut batch = WriteBatch::new();
                        for k in 0..4 {
                            let key = format!("w{w}-{:02}", (counter + k) % KEYS_PER_WRITER);
                            batch.put(key, format!("{w}:{counter}-{}", "p".repeat(100)));
                        }
                        db.write(batch).expect("batch");
                    } else {
                        let key = format!("w{w}-{:02}", counter % KEYS_PER_WRITER);
                        db.put(key, format!("{w}:{counter}-{}", "p".repeat(100)))
                            .expect("put");
                    }
                }
                counter
            })
        })
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let db = db.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut seen = std::collections::HashMap::<String, u64>::new();
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if r % 2 == 0 {
                        for w in 0..WRITERS {
                            let key = format!("w{w}-{:02}", reads % KEYS_PER_WRITER);
                            if let Some(value) = db.get(&key).expect("get") {
                                let (_, counter) = parse(&value);
                                let last = seen.entry(key.clone()).or_insert(0);
                                assert!(
                                    counter >= *last,
                                    "{key} went back from {last} to {counter}"
                                );
                                *last = counter;
                            }
                        }
                    } else {
                        let snapshot = db.snapshot();
                        let items: Vec<_> = if reads.is_multiple_of(2) {
                            snapshot.range::<&[u8], _>(..).collect::<Result<_, _>>()
                        } else {
                            snapshot
                                .range::<&[u8], _>(..)
                                .rev()
                                .collect::<Result<_, _>>()
                        }
                        .expect("scan");
                        for (key, value) in items {
                            let key = String::from_utf8(key.to_vec()).expect("utf-8");
                            let (_, counter) = parse(&value);
                            let last = seen.entry(key.clone()).or_insert(0);
                            assert!(counter >= *last, "{key} went back from {last} to {counter}");
                            *last = counter;
                            // The snapshot reads the same value again.
                            let again = snapshot.get(&key).expect("snapshot get");
                            assert_eq!(again.as_deref(), Some(&value[..]));
                        }
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();

    let started = Instant::now();
    while started.elapsed() < run_for {
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let counters: Vec<u64> = writers
        .into_iter()
        .map(|t| t.join().expect("writer"))
        .collect();
    let reads: u64 = readers.into_iter().map(|t| t.join().expect("reader")).sum();
    assert!(
        counters.iter().all(|&c| c > 100),
        "writers made little progress: {counters:?}"
    );
    assert!(reads > 10, "readers made little progress: {reads}");
    let stats = db.stats();
    assert!(stats.flushes > 0, "no flush happened:\n{stats}");

    // Every key holds its writer's newest write, before and after reopen.
    let check = |db: &Db| {
        for (w, &last) in counters.iter().enumerate() {
            for k in 0..KEYS_PER_WRITER {
                let key = format!("w{w}-{k:02}");
                let value = db.get(&key).expect("get").expect("written");
                let (writer, counter) = parse(&value);
                assert_eq!(writer, w as u64);
                // The newest counter that touched key k.
                let newest = (1..=last)
                    .rev()
                    .find(|c| {
                        if c % 5 == 0 {
                            (0..4).any(|j| (c + j) % KEYS_PER_WRITER == k)
                        } else {
                            c % KEYS_PER_WRITER == k
                        }
                    })
                    .expect("touched");
                assert_eq!(counter, newest, "{key}");
            }
        }
    };
    check(&db);
    db.close().expect("close");
    let db = Db::open_with(dir.path(), options).expect("reopen");
    check(&db);
}
