//! `kevo-bench`: db_bench-style workloads on the kevo engine, run by
//! `cargo xtask bench`.
//!
//! ```text
//! kevo-bench [--num N] [--threads T] [--value-bytes B] [--cache-mib M] [--only a,b,..]
//! ```
//!
//! Keys are 16 decimal digits (`key(i)` = `2 i`, so that `2 i + 1` is a
//! missing key between two present ones); values are 100 bytes, half random
//! and half repeated (they compress to about 50%, as db_bench's do). Each
//! workload's operations are split evenly over `T` threads. Every operation
//! is timed into an HDR histogram with explicit bounds (1 ns ..= 60 s): a
//! slow operation is recorded as slow, never capped.
//!
//! The workloads, in order (those after `fillrandom` run on its database):
//!
//! | name | what |
//! |---|---|
//! | fillseq | `N` puts in key order, fresh database |
//! | fillrandom | `N` puts in random order (every key once), fresh database |
//! | overwrite | `N` puts of random existing keys |
//! | readrandom | `N` gets of random existing keys |
//! | readmissing | `N` gets of random absent keys |
//! | readseq | a forward scan of everything, one op per entry |
//! | readreverse | a reverse scan of everything, one op per entry |
//! | seekrandom | `N / 10` seeks to a random key, each followed by 10 nexts |
//! | deleterandom | `N` deletes of random keys |
//! | fillsync | `N / 100` puts, each synced to disk, fresh database |

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kevo_engine::{Db, Options, WriteBatch, WriteOptions};

const KEY_BYTES: usize = 16;

#[derive(Debug, Clone)]
struct Config {
    num: u64,
    threads: usize,
    value_bytes: usize,
    cache_mib: usize,
    only: Option<Vec<String>>,
}

const WORKLOADS: [&str; 10] = [
    "fillseq",
    "fillrandom",
    "overwrite",
    "readrandom",
    "readmissing",
    "readseq",
    "readreverse",
    "seekrandom",
    "deleterandom",
    "fillsync",
];

fn parse_args() -> Result<Config, String> {
    let mut config = Config {
        num: 1_000_000,
        threads: 1,
        value_bytes: 100,
        cache_mib: 64,
        only: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args
            .get(i + 1)
            .ok_or_else(|| format!("{} needs a value", args[i]))?;
        let number = || {
            value
                .replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{} wants a number, not `{value}`", args[i]))
        };
        match args[i].as_str() {
            "--num" => config.num = number()?.max(100),
            "--threads" => config.threads = number()?.clamp(1, 256) as usize,
            "--value-bytes" => config.value_bytes = number()?.clamp(1, 1 << 20) as usize,
            "--cache-mib" => config.cache_mib = number()? as usize,
            "--only" => {
                let names: Vec<String> = value.split(',').map(str::to_string).collect();
                if let Some(bad) = names.iter().find(|n| !WORKLOADS.contains(&n.as_str())) {
                    return Err(format!(
                        "unknown workload `{bad}`; known: {}",
                        WORKLOADS.join(",")
                    ));
                }
                config.only = Some(names);
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}`\nusage: kevo-bench [--num N] [--threads T] \
                     [--value-bytes B] [--cache-mib M] [--only {}]",
                    WORKLOADS.join(",")
                ));
            }
        }
        i += 2;
    }
    Ok(config)
}

/// xorshift64*: a small, fast, seeded generator (no dependency needed).
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
}

fn key(i: u64) -> [u8; KEY_BYTES] {
    let mut out = [0u8; KEY_BYTES];
    let text = format!("{:016}", i * 2);
    out.copy_from_slice(&text.as_bytes()[text.len() - KEY_BYTES..]);
    out
}

fn missing_key(i: u64) -> [u8; KEY_BYTES] {
    let mut out = [0u8; KEY_BYTES];
    let text = format!("{:016}", i * 2 + 1);
    out.copy_from_slice(&text.as_bytes()[text.len() - KEY_BYTES..]);
    out
}

/// Values cut from a buffer that is half random, half repeated bytes.
struct Values {
    buf: Vec<u8>,
    len: usize,
}

impl Values {
    fn new(len: usize) -> Self {
        let mut rng = Rng::new(301);
        let mut buf = Vec::with_capacity(1 << 20);
        while buf.len() < (1 << 20) {
            let piece = len.div_ceil(2).max(1);
            buf.extend((0..piece).map(|_| b' ' + (rng.next() % 95) as u8));
            buf.extend(std::iter::repeat_n(b'x', piece));
        }
        Values { buf, len }
    }

    fn get(&self, i: u64) -> &[u8] {
        let start = (i as usize * 97) % (self.buf.len() - self.len);
        &self.buf[start..start + self.len]
    }
}

/// A fixed random permutation of `0..n`.
fn permutation(n: u64, seed: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..n).collect();
    let mut rng = Rng::new(seed);
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

fn histogram() -> Histogram<u64> {
    // Explicit bounds: 1 ns to 60 s at 3 significant digits (FIELD-NOTES:
    // `Histogram::new(3)` with saturating_record caps values near 2 µs).
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|e| {
        eprintln!("histogram: {e}");
        std::process::exit(2)
    })
}

struct Outcome {
    ops: u64,
    bytes: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    found: u64,
}

/// Runs `per_thread(thread, range_of_ops, histogram)` on `threads` threads,
/// splitting `0..ops`; each returns (bytes, found).
fn parallel<F>(threads: usize, ops: u64, per_thread: F) -> Result<Outcome, String>
where
    F: Fn(usize, std::ops::Range<u64>, &mut Histogram<u64>) -> Result<(u64, u64), String> + Sync,
{
    let started = Instant::now();
    type ThreadResult = Result<(u64, u64, Histogram<u64>), String>;
    let results: Vec<ThreadResult> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let per_thread = &per_thread;
                scope.spawn(move || {
                    let from = ops * t as u64 / threads as u64;
                    let to = ops * (t as u64 + 1) / threads as u64;
                    let mut hist = histogram();
                    let (bytes, found) = per_thread(t, from..to, &mut hist)?;
                    Ok((bytes, found, hist))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a thread panicked".to_string()))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let mut latency = histogram();
    let (mut bytes, mut found) = (0, 0);
    for result in results {
        let (b, f, hist) = result?;
        bytes += b;
        found += f;
        latency.add(&hist).map_err(|e| e.to_string())?;
    }
    Ok(Outcome {
        ops: latency.len(),
        bytes,
        elapsed,
        latency,
        found,
    })
}

fn record(hist: &mut Histogram<u64>, started: Instant) {
    hist.saturating_record(started.elapsed().as_nanos().max(1) as u64);
}

fn err(e: kevo_engine::Error) -> String {
    e.to_string()
}

fn open(dir: &std::path::Path, config: &Config) -> Result<Db, String> {
    Db::open_with(dir, options(config)).map_err(err)
}

fn options(config: &Config) -> Options {
    Options::default().block_cache_bytes(config.cache_mib << 20)
}

/// Puts keys `order(i)` for `i` in `0..num`.
fn fill(
    db: &Db,
    config: &Config,
    values: &Values,
    ops: u64,
    order: &(dyn Fn(u64) -> u64 + Sync),
    sync: bool,
) -> Result<Outcome, String> {
    let write_options = WriteOptions { sync };
    parallel(config.threads, ops, |_, range, hist| {
        let mut bytes = 0;
        for i in range {
            let k = order(i);
            let value = values.get(k);
            let mut batch = WriteBatch::new();
            batch.put(key(k), value);
            let started = Instant::now();
            db.write_with(batch, &write_options).map_err(err)?;
            record(hist, started);
            bytes += (KEY_BYTES + value.len()) as u64;
        }
        Ok((bytes, 0))
    })
}

fn read_random(db: &Db, config: &Config, present: bool, seed: u64) -> Result<Outcome, String> {
    let num = config.num;
    parallel(config.threads, num, |t, range, hist| {
        let mut rng = Rng::new(seed + t as u64);
        let (mut bytes, mut found) = (0, 0);
        for _ in range {
            let i = rng.below(num);
            let k = if present { key(i) } else { missing_key(i) };
            let started = Instant::now();
            let value = db.get(k).map_err(err)?;
            record(hist, started);
            if let Some(value) = value {
                found += 1;
                bytes += (KEY_BYTES + value.len()) as u64;
            }
        }
        Ok((bytes, found))
    })
}

fn scan(db: &Db, config: &Config, reverse: bool) -> Result<Outcome, String> {
    // A scan is one stream; with several threads each scans its share of
    // the key space.
    let num = config.num;
    let threads = config.threads;
    parallel(threads, threads as u64, |t, _, hist| {
        let from = key(num * t as u64 / threads as u64);
        let to = key(num * (t as u64 + 1) / threads as u64);
        let mut iter = db.range(from..to);
        let (mut bytes, mut found) = (0, 0);
        loop {
            let started = Instant::now();
            let item = if reverse {
                iter.next_back()
            } else {
                iter.next()
            };
            let Some(item) = item else { break };
            let (k, v) = item.map_err(err)?;
            record(hist, started);
            found += 1;
            bytes += (k.len() + v.len()) as u64;
        }
        Ok((bytes, found))
    })
}

fn seek_random(db: &Db, config: &Config, seed: u64) -> Result<Outcome, String> {
    let num = config.num;
    parallel(config.threads, (num / 10).max(1), |t, range, hist| {
        let mut rng = Rng::new(seed + t as u64);
        let (mut bytes, mut found) = (0, 0);
        for _ in range {
            let start = key(rng.below(num));
            let started = Instant::now();
            let mut iter = db.range(start..);
            for _ in 0..11 {
                match iter.next() {
                    Some(item) => {
                        let (k, v) = item.map_err(err)?;
                        bytes += (k.len() + v.len()) as u64;
                        found += 1;
                    }
                    None => break,
                }
            }
            record(hist, started);
        }
        Ok((bytes, found))
    })
}

fn delete_random(db: &Db, config: &Config, seed: u64) -> Result<Outcome, String> {
    let num = config.num;
    parallel(config.threads, num, |t, range, hist| {
        let mut rng = Rng::new(seed + t as u64);
        for _ in range {
            let k = key(rng.below(num));
            let started = Instant::now();
            db.delete(k).map_err(err)?;
            record(hist, started);
        }
        Ok((0, 0))
    })
}

fn print_header() {
    println!(
        "{:<13} {:>9} {:>11} {:>8} {:>9} {:>9} {:>10} {:>8}",
        "workload", "ops", "ops/s", "MB/s", "p50 µs", "p99 µs", "max µs", "found"
    );
}

fn print_row(name: &str, outcome: &Outcome) {
    let secs = outcome.elapsed.as_secs_f64().max(1e-9);
    let us = |q: f64| outcome.latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{:<13} {:>9} {:>11.0} {:>8.1} {:>9.2} {:>9.2} {:>10.1} {:>8}",
        name,
        outcome.ops,
        outcome.ops as f64 / secs,
        outcome.bytes as f64 / secs / 1e6,
        us(0.5),
        us(0.99),
        outcome.latency.max() as f64 / 1000.0,
        outcome.found
    );
}

fn run(config: &Config) -> Result<(), String> {
    let wanted = |name: &str| {
        config
            .only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == name))
    };
    let values = Values::new(config.value_bytes);
    let tmp = std::env::temp_dir();
    println!(
        "kevo db_bench: {} keys of {KEY_BYTES} B, values of {} B (~50% compressible), {} thread(s)",
        config.num, config.value_bytes, config.threads
    );
    println!("options: {:?}", options(config));
    println!(
        "temp dir: {}; one database for fillrandom..deleterandom, fresh ones for fillseq and fillsync",
        tmp.display()
    );
    if cfg!(debug_assertions) {
        println!("note: debug build; `cargo xtask bench` builds with optimisations");
    }
    print_header();
    let num = config.num;

    if wanted("fillseq") {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let db = open(dir.path(), config)?;
        let outcome = fill(&db, config, &values, num, &|i| i, false)?;
        print_row("fillseq", &outcome);
        db.close().map_err(err)?;
    }

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = open(dir.path(), config)?;
    let order = permutation(num, 7);
    let needs_data = WORKLOADS[1..9].iter().any(|w| wanted(w));
    if needs_data {
        let outcome = fill(&db, config, &values, num, &|i| order[i as usize], false)?;
        if wanted("fillrandom") {
            print_row("fillrandom", &outcome);
        }
    }
    if wanted("overwrite") {
        let again = permutation(num, 11);
        let outcome = fill(&db, config, &values, num, &|i| again[i as usize], false)?;
        print_row("overwrite", &outcome);
    }
    if wanted("readrandom") {
        print_row("readrandom", &read_random(&db, config, true, 21)?);
    }
    if wanted("readmissing") {
        print_row("readmissing", &read_random(&db, config, false, 23)?);
    }
    if wanted("readseq") {
        print_row("readseq", &scan(&db, config, false)?);
    }
    if wanted("readreverse") {
        print_row("readreverse", &scan(&db, config, true)?);
    }
    if wanted("seekrandom") {
        print_row("seekrandom", &seek_random(&db, config, 31)?);
    }
    if wanted("deleterandom") {
        print_row("deleterandom", &delete_random(&db, config, 41)?);
    }
    let stats = db.stats();
    db.close().map_err(err)?;
    drop(dir);

    if wanted("fillsync") {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let db = open(dir.path(), config)?;
        let ops = (num / 100).max(100);
        let seq = AtomicU64::new(0);
        let outcome = fill(
            &db,
            config,
            &values,
            ops,
            &|_| seq.fetch_add(1, Ordering::Relaxed),
            true,
        )?;
        print_row("fillsync", &outcome);
        db.close().map_err(err)?;
    }
    println!("\nengine stats after fillrandom..deleterandom:\n{stats}");
    Ok(())
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kevo-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
