//! Keys, values, the thread split and the workloads themselves, written
//! once against [`Engine`] so that every engine runs exactly the same
//! operations in the same order.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::Config;
use crate::engine::{Engine, KeyspaceEngine, RangeDeleteEngine, Res, Scan, TxnEngine};

pub(crate) const KEY_BYTES: usize = 16;

/// xorshift64*: a small, fast, seeded generator (no dependency needed).
#[derive(Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
}

fn digits(n: u64) -> [u8; KEY_BYTES] {
    let mut out = [0u8; KEY_BYTES];
    let text = format!("{n:016}");
    out.copy_from_slice(&text.as_bytes()[text.len() - KEY_BYTES..]);
    out
}

/// The `i`th present key: `2 i` in 16 decimal digits.
pub(crate) fn key(i: u64) -> [u8; KEY_BYTES] {
    digits(i * 2)
}

/// A key between `key(i)` and `key(i + 1)`, never written.
pub(crate) fn missing_key(i: u64) -> [u8; KEY_BYTES] {
    digits(i * 2 + 1)
}

/// Values cut from a buffer that is half random, half repeated bytes.
#[derive(Clone)]
pub(crate) struct Values {
    buf: Vec<u8>,
    len: usize,
}

impl Values {
    pub(crate) fn new(len: usize) -> Self {
        let mut rng = Rng::new(301);
        let mut buf = Vec::with_capacity(1 << 20);
        while buf.len() < (1 << 20) {
            let piece = len.div_ceil(2).max(1);
            buf.extend((0..piece).map(|_| b' ' + (rng.next() % 95) as u8));
            buf.extend(std::iter::repeat_n(b'x', piece));
        }
        Values { buf, len }
    }

    pub(crate) fn get(&self, i: u64) -> &[u8] {
        let start = (i as usize * 97) % (self.buf.len() - self.len);
        &self.buf[start..start + self.len]
    }
}

/// A fixed random permutation of `0..n`.
pub(crate) fn permutation(n: u64, seed: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..n).collect();
    let mut rng = Rng::new(seed);
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

pub(crate) fn histogram() -> Histogram<u64> {
    // Explicit bounds: 1 ns to 60 s at 3 significant digits (FIELD-NOTES:
    // `Histogram::new(3)` with saturating_record caps values near 2 µs).
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|e| {
        eprintln!("histogram: {e}");
        std::process::exit(2)
    })
}

pub(crate) struct Outcome {
    pub(crate) ops: u64,
    pub(crate) bytes: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latency: Histogram<u64>,
    pub(crate) found: u64,
}

impl Outcome {
    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The total time of the operations slower than `threshold` (from the
    /// histogram, so within its 0.1% precision).
    pub(crate) fn time_above(&self, threshold: Duration) -> Duration {
        let threshold = threshold.as_nanos() as u64;
        let nanos: u64 = self
            .latency
            .iter_recorded()
            .filter(|v| v.value_iterated_to() > threshold)
            .map(|v| v.value_iterated_to() * v.count_at_value())
            .sum();
        Duration::from_nanos(nanos)
    }
}

/// Runs `per_thread(thread, range_of_ops, histogram)` on `threads` threads,
/// splitting `0..ops`; each returns (bytes, found).
fn parallel<F>(threads: usize, ops: u64, per_thread: F) -> Res<Outcome>
where
    F: Fn(usize, std::ops::Range<u64>, &mut Histogram<u64>) -> Res<(u64, u64)> + Sync,
{
    let started = Instant::now();
    type ThreadResult = Res<(u64, u64, Histogram<u64>)>;
    let results: Vec<ThreadResult> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let per_thread = &per_thread;
                scope.spawn(move || {
                    let (from, to) = share(ops, threads, t);
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

/// Thread `t`'s share `[from, to)` of `0..ops`.
fn share(ops: u64, threads: usize, t: usize) -> (u64, u64) {
    (
        ops * t as u64 / threads as u64,
        ops * (t as u64 + 1) / threads as u64,
    )
}

fn record(hist: &mut Histogram<u64>, started: Instant) {
    hist.saturating_record(started.elapsed().as_nanos().max(1) as u64);
}

/// Puts keys `order(i)` for `i` in `0..ops`.
pub(crate) fn fill(
    db: &dyn Engine,
    config: &Config,
    values: &Values,
    ops: u64,
    order: &(dyn Fn(u64) -> u64 + Sync),
    sync: bool,
) -> Res<Outcome> {
    parallel(config.threads, ops, |_, range, hist| {
        let mut bytes = 0;
        for i in range {
            let k = order(i);
            let value = values.get(k);
            let key = key(k);
            let started = Instant::now();
            db.put(&key, value, sync)?;
            record(hist, started);
            bytes += (KEY_BYTES + value.len()) as u64;
        }
        Ok((bytes, 0))
    })
}

/// `N / 100` synced puts in key order (fresh database).
pub(crate) fn fill_sync(db: &dyn Engine, config: &Config, values: &Values) -> Res<Outcome> {
    let ops = (config.num / 100).max(100);
    let seq = AtomicU64::new(0);
    fill(
        db,
        config,
        values,
        ops,
        &|_| seq.fetch_add(1, Ordering::Relaxed),
        true,
    )
}

/// The disk's own rate for what fillsync asks of it: `N / 100` writes of
/// one record's bytes (16 + value bytes + 16 of framing) at increasing
/// offsets of a file zeroed and synced beforehand, each followed by an
/// fdatasync (overwrite plus fdatasync, the fastest a synced log append
/// can be on this disk). One thread; the file lives in the temp dir.
pub(crate) fn disk_limit(config: &Config) -> Res<Outcome> {
    use std::os::unix::fs::FileExt as _;
    let ops = (config.num / 100).max(100);
    let payload = vec![0x5au8; KEY_BYTES + config.value_bytes + 16];
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("disk-limit");
    let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = ops as usize * payload.len();
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    file.write_all_at(&vec![0u8; len], 0).map_err(io)?;
    file.sync_all().map_err(io)?;
    parallel(1, ops, |_, range, hist| {
        let mut bytes = 0;
        for i in range {
            let started = Instant::now();
            file.write_all_at(&payload, i * payload.len() as u64)
                .map_err(io)?;
            file.sync_data().map_err(io)?;
            record(hist, started);
            bytes += payload.len() as u64;
        }
        Ok((bytes, 0))
    })
}

pub(crate) fn read_random(
    db: &dyn Engine,
    config: &Config,
    present: bool,
    seed: u64,
) -> Res<Outcome> {
    let num = config.num;
    parallel(config.threads, num, |t, range, hist| {
        let mut rng = Rng::new(seed + t as u64);
        let (mut bytes, mut found) = (0, 0);
        for _ in range {
            let i = rng.below(num);
            let k = if present { key(i) } else { missing_key(i) };
            let started = Instant::now();
            let value = db.get(&k)?;
            record(hist, started);
            if let Some(len) = value {
                found += 1;
                bytes += (KEY_BYTES + len) as u64;
            }
        }
        Ok((bytes, found))
    })
}

pub(crate) fn scan(db: &dyn Engine, config: &Config, reverse: bool) -> Res<Outcome> {
    // A scan is one stream; with several threads each scans its share of
    // the key space.
    let num = config.num;
    let threads = config.threads;
    parallel(threads, threads as u64, |t, _, hist| {
        let (from, to) = share(num, threads, t);
        let (from, to) = (key(from), key(to));
        drain(db.scan(&from, Some(&to), reverse)?, hist)
    })
}

/// Steps `iter` to its end, timing each step: (bytes, entries).
fn drain(mut iter: Scan<'_>, hist: &mut Histogram<u64>) -> Res<(u64, u64)> {
    let (mut bytes, mut found) = (0, 0);
    loop {
        let started = Instant::now();
        let Some(item) = iter.next() else { break };
        let len = item?;
        record(hist, started);
        found += 1;
        bytes += len as u64;
    }
    Ok((bytes, found))
}

/// readseq through the engine's owned-pair iterator where it has one
/// besides the scan `scan` uses (kevo: `Db::range` beside `Db::cursor`).
pub(crate) fn scan_iter(db: &dyn Engine, config: &Config) -> Res<Option<Outcome>> {
    if db.scan_iter(&key(0), Some(&key(0)))?.is_none() {
        return Ok(None);
    }
    let num = config.num;
    let threads = config.threads;
    let outcome = parallel(threads, threads as u64, |t, _, hist| {
        let (from, to) = share(num, threads, t);
        let (from, to) = (key(from), key(to));
        let iter = db
            .scan_iter(&from, Some(&to))?
            .ok_or("scan_iter went away")?;
        drain(iter, hist)
    })?;
    Ok(Some(outcome))
}

pub(crate) fn seek_random(db: &dyn Engine, config: &Config, seed: u64) -> Res<Outcome> {
    let num = config.num;
    parallel(config.threads, (num / 10).max(1), |t, range, hist| {
        let mut rng = Rng::new(seed + t as u64);
        let (mut bytes, mut found) = (0, 0);
        for _ in range {
            let start = key(rng.below(num));
            let started = Instant::now();
            // The seek's own entry and 10 nexts.
            let (f, b) = db.seek_next(&start, 11)?;
            record(hist, started);
            found += f;
            bytes += b;
        }
        Ok((bytes, found))
    })
}

pub(crate) fn delete_random(db: &dyn Engine, config: &Config, seed: u64) -> Res<Outcome> {
    let num = config.num;
    parallel(config.threads, num, |t, range, hist| {
        let mut rng = Rng::new(seed + t as u64);
        for _ in range {
            let k = key(rng.below(num));
            let started = Instant::now();
            db.delete(&k)?;
            record(hist, started);
        }
        Ok((0, 0))
    })
}

/// The keys the high-contention txn rows draw from: `key(0..16)`.
pub(crate) const TXN_HOT_KEYS: u64 = 16;

/// A txn value's counter: its first 8 bytes, little-endian (the rest of
/// the value is carried over unchanged).
fn counter(value: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = value.len().min(8);
    bytes[..n].copy_from_slice(&value[..n]);
    u64::from_le_bytes(bytes)
}

/// `value` with its counter moved by `delta` (wrapping).
fn with_counter(value: &[u8], delta: i64) -> Vec<u8> {
    let mut out = value.to_vec();
    let n = out.len().min(8);
    let bytes = counter(value).wrapping_add_signed(delta).to_le_bytes();
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

/// What a txn row measured: `outcome.ops` are the commits, its histogram
/// the time from the first `begin` to the successful commit of each
/// logical transaction (every retry included).
pub(crate) struct TxnOutcome {
    pub(crate) outcome: Outcome,
    pub(crate) aborts: u64,
}

impl TxnOutcome {
    /// aborts / (commits + aborts): the share of commit attempts that lost.
    pub(crate) fn abort_rate(&self) -> f64 {
        let attempts = self.outcome.ops + self.aborts;
        if attempts == 0 {
            0.0
        } else {
            self.aborts as f64 / attempts as f64
        }
    }
}

/// `commits` transactions in all over `threads` threads, each reading two
/// distinct random keys of `key(0..keys)` and writing both back with one
/// unit moved from the first's counter to the second's; a transaction whose
/// commit loses to a conflict is counted as an abort and run again (same
/// keys, fresh reads) until it commits.
pub(crate) fn txn(
    db: &dyn TxnEngine,
    values: &Values,
    commits: u64,
    threads: usize,
    keys: u64,
    seed: u64,
) -> Res<TxnOutcome> {
    let keys = keys.max(2);
    let outcome = parallel(threads, commits, |t, range, hist| {
        let mut rng = Rng::new(seed + t as u64);
        let (mut bytes, mut aborts) = (0, 0);
        for _ in range {
            let a = rng.below(keys);
            let b = loop {
                let b = rng.below(keys);
                if b != a {
                    break b;
                }
            };
            let (key_a, key_b) = (key(a), key(b));
            let mut update = |i: usize, old: Option<&[u8]>| {
                let old = old.unwrap_or_else(|| values.get([a, b][i]));
                with_counter(old, if i == 0 { -1 } else { 1 })
            };
            let started = Instant::now();
            while !db.read2_write2([&key_a, &key_b], &mut update)? {
                aborts += 1;
            }
            record(hist, started);
            bytes += 2 * (KEY_BYTES + values.len) as u64;
        }
        // `found` carries the aborts out of `parallel`.
        Ok((bytes, aborts))
    })?;
    let aborts = outcome.found;
    Ok(TxnOutcome {
        outcome: Outcome {
            found: 0,
            ..outcome
        },
        aborts,
    })
}

/// The wrapping sum of the counters of `key(0..keys)`, read in one
/// transaction per pair (each written back unchanged): transfers keep it.
pub(crate) fn txn_counter_sum(db: &dyn TxnEngine, keys: u64) -> Res<u64> {
    let mut sum = 0u64;
    for pair in (0..keys).step_by(2) {
        let (key_a, key_b) = (key(pair), key((pair + 1).min(keys - 1)));
        if key_a == key_b {
            return Err("txn_counter_sum wants an even number of keys".to_string());
        }
        let mut seen = [0u64; 2];
        let mut same = |i: usize, old: Option<&[u8]>| {
            let old = old.unwrap_or_default();
            seen[i] = counter(old);
            old.to_vec()
        };
        while !db.read2_write2([&key_a, &key_b], &mut same)? {}
        sum = sum.wrapping_add(seen[0]).wrapping_add(seen[1]);
    }
    Ok(sum)
}

/// The keyspace op `i` of a keyspaces row writes: round-robin over
/// `count` (with batches of `count` puts, batch `b` is ops `b * count ..
/// (b + 1) * count`: one put into each keyspace).
fn keyspace_of(i: u64, count: usize) -> usize {
    (i % count.max(1) as u64) as usize
}

/// A keyspaces fill row: for `i` in `0..order.len()`, a put of key
/// `order[i]` into keyspace `i % count` (not synced).
pub(crate) fn keyspaces_fill(
    db: &dyn KeyspaceEngine,
    config: &Config,
    values: &Values,
    order: &[u64],
    count: usize,
) -> Res<Outcome> {
    parallel(config.threads, order.len() as u64, |_, range, hist| {
        let mut bytes = 0;
        for i in range {
            let k = order[i as usize];
            let value = values.get(k);
            let key = key(k);
            let ks = keyspace_of(i, count);
            let started = Instant::now();
            db.put_in(ks, &key, value)?;
            record(hist, started);
            bytes += (KEY_BYTES + value.len()) as u64;
        }
        Ok((bytes, 0))
    })
}

/// A keyspaces batch row: `order.len() / count` atomic write batches, batch
/// `b` putting key `order[b * count + m]` into keyspace `m` for each `m` in
/// `0..count` (not synced). The outcome's ops are the batches and its
/// histogram their latency.
pub(crate) fn keyspaces_batch(
    db: &dyn KeyspaceEngine,
    config: &Config,
    values: &Values,
    order: &[u64],
    count: usize,
) -> Res<Outcome> {
    let count = count.max(1);
    let batches = (order.len() / count) as u64;
    parallel(config.threads, batches, |_, range, hist| {
        let mut bytes = 0;
        for b in range {
            let first = b as usize * count;
            let keys: Vec<(u64, [u8; KEY_BYTES])> = order[first..first + count]
                .iter()
                .map(|&k| (k, key(k)))
                .collect();
            let puts: Vec<(usize, &[u8], &[u8])> = keys
                .iter()
                .enumerate()
                .map(|(m, (k, key))| (m, &key[..], values.get(*k)))
                .collect();
            let started = Instant::now();
            db.batch_in(&puts)?;
            record(hist, started);
            bytes += puts
                .iter()
                .map(|(_, key, value)| (key.len() + value.len()) as u64)
                .sum::<u64>();
        }
        Ok((bytes, 0))
    })
}

/// How many written keys [`keyspaces_check`] reads back (besides each
/// keyspace's last one).
const KEYSPACES_SAMPLE: u64 = 1000;

/// The check after a keyspaces row that wrote ops `0..written` (op `i`: key
/// `order[i]` into keyspace `i % count`): for a random sample of ops and the
/// last op of each keyspace, the key has its value in its keyspace and, with
/// several keyspaces, is absent from the next one; a key never written is
/// absent from every keyspace. Returns the number of reads; a mismatch is an
/// error.
pub(crate) fn keyspaces_check(
    db: &dyn KeyspaceEngine,
    values: &Values,
    order: &[u64],
    written: u64,
    count: usize,
) -> Res<u64> {
    let written = written.min(order.len() as u64);
    let mut rng = Rng::new(71);
    let sample = (0..KEYSPACES_SAMPLE.min(written)).map(|_| rng.below(written));
    let last = written.saturating_sub(count as u64)..written;
    let mut reads = 0;
    for i in sample.chain(last) {
        let k = order[i as usize];
        let (key, want) = (key(k), values.get(k));
        let ks = keyspace_of(i, count);
        let got = db.get_in(ks, &key)?;
        reads += 1;
        if got.as_deref() != Some(want) {
            return Err(format!(
                "key {} (op {i}) in keyspace {ks}: {} instead of its {}-byte value",
                String::from_utf8_lossy(&key),
                got.map_or("absent".to_string(), |v| format!(
                    "a {}-byte value that differs",
                    v.len()
                )),
                want.len()
            ));
        }
        if count > 1 {
            let other = keyspace_of(i + 1, count);
            reads += 1;
            if db.get_in(other, &key)?.is_some() {
                return Err(format!(
                    "key {} (op {i}) written into keyspace {ks} is also in keyspace {other}",
                    String::from_utf8_lossy(&key)
                ));
            }
        }
    }
    let absent = missing_key(order.first().copied().unwrap_or(0));
    for ks in 0..count {
        reads += 1;
        if db.get_in(ks, &absent)?.is_some() {
            return Err(format!(
                "key {} was never written, yet keyspace {ks} has it",
                String::from_utf8_lossy(&absent)
            ));
        }
    }
    Ok(reads)
}

/// The number of small range deletes of the deleterange workload.
pub(crate) const SMALL_DELETES: u64 = 100;

/// What the deleterange workload deletes, as ranges of key indices (`i`
/// of `key(i)`, so that `key(lo)..key(hi)` is exactly `lo..hi`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeletePlan {
    /// The big range delete: the middle tenth, `[0.45 N, 0.55 N)`.
    pub(crate) range: Range<u64>,
    /// The prefix delete: a run of leading digits of the 16-digit keys
    /// ([`prefix_for`]).
    pub(crate) prefix: Vec<u8>,
    /// The key indices `prefix` covers ([`prefix_span`]).
    pub(crate) prefix_keys: Range<u64>,
    /// The [`SMALL_DELETES`] small range deletes, in key order.
    pub(crate) small: Vec<Range<u64>>,
}

impl DeletePlan {
    pub(crate) fn new(num: u64) -> DeletePlan {
        let range = num * 45 / 100..num * 55 / 100;
        let prefix = prefix_for(num);
        let prefix_keys = prefix_span(&prefix, num);
        // Evenly spread, each in the middle of its hundredth of the keys,
        // `N / 10 000` keys wide (100 at 1 M keys, at least 1): 1% of the
        // keys in all. Those that fall into the big range or the prefix
        // delete keys already deleted.
        let width = (num / 10_000).clamp(1, 100);
        let small = (0..SMALL_DELETES)
            .map(|j| {
                let start = (j * num / SMALL_DELETES + num / (2 * SMALL_DELETES)).min(num);
                start..(start + width).min(num)
            })
            .collect();
        DeletePlan {
            range,
            prefix,
            prefix_keys,
            small,
        }
    }
}

/// The prefix the deleterange workload deletes for `num` keys: the leading
/// `16 - d` digits of one block of `10^d` numbers, `10^d` the largest power
/// of ten at most `N / 5` (so that the block, `10^d / 2` keys since keys
/// are the even numbers, is at most a tenth of the keys: 50 000 at 1 M),
/// the first such block at or after number `1.4 N` (key `0.7 N`), which is
/// clear of the big range (numbers `0.9 N .. 1.1 N`) and ends before
/// number `1.8 N` (the last key is `2 N - 2`).
pub(crate) fn prefix_for(num: u64) -> Vec<u8> {
    let mut block = 10u64;
    while block * 10 <= num / 5 {
        block *= 10;
    }
    let free = block.ilog10() as usize;
    let first = (num * 14 / 10).div_ceil(block);
    let text = format!("{:0width$}", first, width = KEY_BYTES - free);
    text.into_bytes()
}

/// The key indices whose keys start with `prefix` (leading decimal digits
/// of the 16-digit number `2 i`), within `0..num`: they are contiguous,
/// since the keys sort as their numbers.
pub(crate) fn prefix_span(prefix: &[u8], num: u64) -> Range<u64> {
    let free = KEY_BYTES.saturating_sub(prefix.len()) as u32;
    let digits = std::str::from_utf8(prefix)
        .ok()
        .and_then(|t| t.parse::<u64>().ok());
    let Some(lead) = digits else {
        return 0..0;
    };
    let scale = 10u64.pow(free);
    // Numbers [lead * scale, (lead + 1) * scale); key i is number 2 i.
    let lo = (lead * scale).div_ceil(2).min(num);
    let hi = ((lead + 1) * scale).div_ceil(2).min(num);
    lo..hi
}

/// The indices `i < num` whose `key(i)` lies in `[from, to)` (keys sort as
/// their indices).
pub(crate) fn key_span(from: &[u8], to: &[u8], num: u64) -> Range<u64> {
    // The first index whose key is at or after `bound`.
    let first_at = |bound: &[u8]| {
        let (mut lo, mut hi) = (0, num);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(mid).as_slice() < bound {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let start = first_at(from);
    start..first_at(to).max(start)
}

/// Which keys of `key(0..N)` the deleterange workload has deleted so far.
pub(crate) struct DeleteModel {
    deleted: Vec<bool>,
}

impl DeleteModel {
    pub(crate) fn new(num: u64) -> DeleteModel {
        DeleteModel {
            deleted: vec![false; num as usize],
        }
    }

    /// Marks `keys` deleted: the number of them that were not yet.
    pub(crate) fn delete(&mut self, keys: Range<u64>) -> u64 {
        let mut newly = 0;
        for d in &mut self.deleted[keys.start as usize..keys.end as usize] {
            newly += u64::from(!*d);
            *d = true;
        }
        newly
    }

    pub(crate) fn kept(&self, i: u64) -> bool {
        !self.deleted[i as usize]
    }

    /// The keys not deleted.
    pub(crate) fn live(&self) -> u64 {
        self.deleted.iter().filter(|d| !**d).count() as u64
    }

    /// The first kept key index at or after `i`.
    pub(crate) fn next_kept(&self, i: u64) -> Option<u64> {
        (i..self.deleted.len() as u64).find(|&j| self.kept(j))
    }

    /// The `found` count [`read_random`] (present keys, `seed`) must report
    /// on an engine holding exactly the kept keys: it replays the reads'
    /// generators.
    pub(crate) fn read_random_found(&self, config: &Config, seed: u64) -> u64 {
        let num = config.num;
        (0..config.threads)
            .map(|t| {
                let (from, to) = share(num, config.threads, t);
                let mut rng = Rng::new(seed + t as u64);
                (from..to).filter(|_| self.kept(rng.below(num))).count() as u64
            })
            .sum()
    }

    /// The `found` count [`seek_random`] (`seed`) must report: each seek to
    /// `key(i)` finds the entries after it, 11 at most.
    pub(crate) fn seek_random_found(&self, config: &Config, seed: u64) -> u64 {
        let num = config.num;
        // kept_from[i]: kept keys in i..N.
        let mut kept_from = vec![0u64; num as usize + 1];
        for i in (0..num as usize).rev() {
            kept_from[i] = kept_from[i + 1] + u64::from(!self.deleted[i]);
        }
        let ops = (num / 10).max(1);
        (0..config.threads)
            .map(|t| {
                let (from, to) = share(ops, config.threads, t);
                let mut rng = Rng::new(seed + t as u64);
                (from..to)
                    .map(|_| kept_from[rng.below(num) as usize].min(11))
                    .sum::<u64>()
            })
            .sum()
    }
}

/// Keys the deleterange check reads besides the ends of every deleted
/// range.
const DELETERANGE_SAMPLE: u64 = 1000;

/// The deleterange workload's check (not timed): for a random sample of
/// keys and the keys at and around both ends of every range in `plan`, a
/// kept key has its value and a deleted one is absent, and a seek to the
/// key finds the first kept key at or after it (none past the last).
/// Returns the number of reads; a mismatch is an error.
pub(crate) fn deleterange_check(
    db: &dyn RangeDeleteEngine,
    values: &Values,
    model: &DeleteModel,
    plan: &DeletePlan,
    seed: u64,
) -> Res<u64> {
    let num = model.deleted.len() as u64;
    let mut rng = Rng::new(seed);
    let mut keys: Vec<u64> = (0..DELETERANGE_SAMPLE.min(num))
        .map(|_| rng.below(num))
        .collect();
    let ranges = [plan.range.clone(), plan.prefix_keys.clone()];
    for r in ranges.iter().chain(&plan.small) {
        let ends = [r.start.checked_sub(1), Some(r.start), r.end.checked_sub(1)];
        keys.extend(ends.into_iter().flatten().chain([r.end]));
    }
    keys.retain(|&i| i < num);
    let show = |i: u64| String::from_utf8_lossy(&key(i)).into_owned();
    let mut reads = 0;
    for i in keys {
        let got = db.get_value(&key(i))?;
        reads += 1;
        let want = model.kept(i).then(|| values.get(i));
        if got.as_deref() != want {
            return Err(format!(
                "get {} (key {i}, {}): {} instead of {}",
                show(i),
                if model.kept(i) { "kept" } else { "deleted" },
                got.map_or("absent".to_string(), |v| format!(
                    "a {}-byte value",
                    v.len()
                )),
                if want.is_some() {
                    "its value"
                } else {
                    "absent"
                }
            ));
        }
        let first = db.first_key_from(&key(i))?;
        reads += 1;
        let want = model.next_kept(i);
        if first.as_deref() != want.map(key).as_ref().map(|k| &k[..]) {
            return Err(format!(
                "seek to {} (key {i}): found {} instead of {}",
                show(i),
                first.map_or("nothing".to_string(), |k| String::from_utf8_lossy(&k)
                    .into_owned()),
                want.map_or("nothing".to_string(), show)
            ));
        }
    }
    Ok(reads)
}

/// A full forward scan's entry count (the deleterange check: it must be
/// the model's live keys).
pub(crate) fn count_all(db: &dyn Engine) -> Res<u64> {
    let mut count = 0;
    for item in db.scan(&[], None, false)? {
        item?;
        count += 1;
    }
    Ok(count)
}

/// The deleterange rows' timed calls (deletes, single puts, the
/// compaction): `call(j)` for `j` in `0..ops`, in this thread, each its own
/// op.
pub(crate) fn timed_calls(ops: u64, call: &dyn Fn(u64) -> Res<()>) -> Res<Outcome> {
    let mut hist = histogram();
    let started = Instant::now();
    for j in 0..ops {
        let one = Instant::now();
        call(j)?;
        record(&mut hist, one);
    }
    Ok(Outcome {
        ops,
        bytes: 0,
        elapsed: started.elapsed(),
        latency: hist,
        found: 0,
    })
}

/// fillbig's key stream: thread `t` puts `rng(SEED + t).below(N)` for each
/// op of its share, so about 63% of the keys are distinct and the rest
/// overwrite.
const BIG_SEED: u64 = 51;

/// `N` puts of uniformly random keys in `0..N` (not synced).
pub(crate) fn fill_big(db: &dyn Engine, config: &Config, values: &Values) -> Res<Outcome> {
    let num = config.num;
    parallel(config.threads, num, |t, range, hist| {
        let mut rng = Rng::new(BIG_SEED + t as u64);
        let mut bytes = 0;
        for _ in range {
            let k = rng.below(num);
            let value = values.get(k);
            let key = key(k);
            let started = Instant::now();
            db.put(&key, value, false)?;
            record(hist, started);
            bytes += (KEY_BYTES + value.len()) as u64;
        }
        Ok((bytes, 0))
    })
}

/// The distinct keys fillbig writes (replays its generators).
pub(crate) fn fill_big_distinct(config: &Config) -> u64 {
    let num = config.num;
    let mut seen = vec![0u64; num.div_ceil(64) as usize];
    let mut distinct = 0;
    for t in 0..config.threads {
        let (from, to) = share(num, config.threads, t);
        let mut rng = Rng::new(BIG_SEED + t as u64);
        for _ in from..to {
            let k = rng.below(num);
            let (word, bit) = ((k / 64) as usize, 1u64 << (k % 64));
            if seen[word] & bit == 0 {
                seen[word] |= bit;
                distinct += 1;
            }
        }
    }
    distinct
}

unsafe extern "C" {
    /// glibc: hands free heap memory back to the kernel.
    fn malloc_trim(pad: usize) -> i32;
}

/// Hands freed heap back to the kernel and resets the process's peak RSS
/// (`VmHWM`) to its current RSS, so that [`peak_rss_bytes`] measures what
/// follows, not what an earlier engine left in the allocator.
pub(crate) fn reset_peak_rss() -> Res<()> {
    // SAFETY: malloc_trim only walks glibc's own heap under its lock; any
    // thread may call it at any time, and it takes no pointers.
    unsafe {
        malloc_trim(0);
    }
    std::fs::write("/proc/self/clear_refs", "5")
        .map_err(|e| format!("resetting the peak RSS (/proc/self/clear_refs): {e}"))
}

/// The process's peak RSS (`VmHWM`) since the last [`reset_peak_rss`].
pub(crate) fn peak_rss_bytes() -> Res<u64> {
    let text = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kib| kib << 10)
        .ok_or_else(|| "/proc/self/status has no `VmHWM: N kB`".to_string())
}

/// This process's I/O counters from `/proc/self/io`: bytes it caused to be
/// written to storage (counted when a page is dirtied, whichever thread
/// writes it back), and bytes whose write-back was cancelled because the
/// file was truncated or deleted first.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcIo {
    pub(crate) write_bytes: u64,
    pub(crate) cancelled_write_bytes: u64,
}

impl ProcIo {
    pub(crate) fn now() -> Res<ProcIo> {
        let text = std::fs::read_to_string("/proc/self/io")
            .map_err(|e| format!("reading /proc/self/io: {e}"))?;
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| format!("/proc/self/io has no `{name}`"))
        };
        Ok(ProcIo {
            write_bytes: field("write_bytes")?,
            cancelled_write_bytes: field("cancelled_write_bytes")?,
        })
    }

    pub(crate) fn since(self, earlier: ProcIo) -> ProcIo {
        ProcIo {
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
            cancelled_write_bytes: self
                .cancelled_write_bytes
                .saturating_sub(earlier.cancelled_write_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// (keyspace, key) to value.
    type Entries = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

    /// Keyspaces in memory; `misroute` puts everything into keyspace 0,
    /// `drop_second` loses the second put of every batch.
    #[derive(Default)]
    struct Memory {
        keyspaces: Mutex<Entries>,
        misroute: bool,
        drop_second: bool,
    }

    impl KeyspaceEngine for Memory {
        fn put_in(&self, ks: usize, key: &[u8], value: &[u8]) -> Res<()> {
            let ks = if self.misroute { 0 } else { ks };
            let mut map = self.keyspaces.lock().unwrap();
            map.insert((ks, key.to_vec()), value.to_vec());
            Ok(())
        }

        fn get_in(&self, ks: usize, key: &[u8]) -> Res<Option<Vec<u8>>> {
            let map = self.keyspaces.lock().unwrap();
            Ok(map.get(&(ks, key.to_vec())).cloned())
        }

        fn batch_in(&self, puts: &[(usize, &[u8], &[u8])]) -> Res<()> {
            let keep = if self.drop_second { 1 } else { puts.len() };
            for &(ks, key, value) in &puts[..keep] {
                self.put_in(ks, key, value)?;
            }
            Ok(())
        }

        fn close(self: Box<Self>) -> Res<()> {
            Ok(())
        }
    }

    fn config() -> Config {
        Config {
            num: 2_000,
            threads: 2,
            value_bytes: 100,
            cache_mib: 1,
            only: None,
            compare: Vec::new(),
            rounds: 1,
            chart: None,
            chart_from: None,
        }
    }

    #[test]
    fn keyspaces_rows_write_what_the_check_reads() {
        let config = config();
        let values = Values::new(config.value_bytes);
        let order = permutation(config.num, 7);
        for count in [1, 8] {
            let db = Memory::default();
            let outcome = keyspaces_fill(&db, &config, &values, &order, count).unwrap();
            assert_eq!(outcome.ops, config.num);
            assert_eq!(db.keyspaces.lock().unwrap().len(), config.num as usize);
            let reads = keyspaces_check(&db, &values, &order, outcome.ops, count).unwrap();
            assert!(reads > 1000, "{reads}");
        }
        let db = Memory::default();
        let outcome = keyspaces_batch(&db, &config, &values, &order, 2).unwrap();
        assert_eq!(outcome.ops, config.num / 2);
        assert_eq!(outcome.bytes, config.num * (KEY_BYTES as u64 + 100));
        keyspaces_check(&db, &values, &order, outcome.ops * 2, 2).unwrap();
    }

    #[test]
    fn keyspaces_check_finds_lost_and_misrouted_writes() {
        let config = config();
        let values = Values::new(config.value_bytes);
        let order = permutation(config.num, 7);
        let misrouted = Memory {
            misroute: true,
            ..Memory::default()
        };
        let outcome = keyspaces_fill(&misrouted, &config, &values, &order, 8).unwrap();
        let e = keyspaces_check(&misrouted, &values, &order, outcome.ops, 8).unwrap_err();
        assert!(e.contains("absent"), "{e}");
        let lossy = Memory {
            drop_second: true,
            ..Memory::default()
        };
        let outcome = keyspaces_batch(&lossy, &config, &values, &order, 2).unwrap();
        let e = keyspaces_check(&lossy, &values, &order, outcome.ops * 2, 2).unwrap_err();
        assert!(e.contains("in keyspace 1"), "{e}");
    }
    #[test]
    fn deleterange_plan_covers_what_it_says() {
        for num in [100, 20_000, 200_000, 1_000_000, 1_234_567] {
            let plan = DeletePlan::new(num);
            assert_eq!(plan.range.end - plan.range.start, num / 10, "{num}");
            // The prefix: exactly the keys in prefix_keys, a contiguous run
            // of at most a tenth of them, clear of the big range.
            let covered: Vec<u64> = (0..num)
                .filter(|&i| key(i).starts_with(&plan.prefix))
                .collect();
            let span = plan.prefix_keys.clone();
            assert_eq!(covered, span.clone().collect::<Vec<_>>(), "{num}");
            assert!(
                !span.is_empty() && span.end - span.start <= num / 10,
                "{num}"
            );
            assert!(span.start >= plan.range.end, "{num}: {span:?}");
            assert_eq!(plan.small.len() as u64, SMALL_DELETES);
            assert!(plan.small.windows(2).all(|w| w[0].end <= w[1].start));
            assert!(plan.small.iter().all(|r| r.start < r.end && r.end <= num));
        }
        let plan = DeletePlan::new(1_000_000);
        assert_eq!(plan.range, 450_000..550_000);
        assert_eq!(plan.prefix, b"00000000014");
        assert_eq!(plan.prefix_keys, 700_000..750_000);
        assert_eq!(plan.small[0], 5_000..5_100);
        assert_eq!(prefix_span(b"000000000000000", 1_000_000), 0..5);
        assert_eq!(prefix_span(b"x", 1_000_000), 0..0);
        let mut past = key(19).to_vec();
        past.push(0);
        assert_eq!(key_span(&key(7), &past, 100), 7..20);
        assert_eq!(key_span(&key(7), &key(7), 100), 7..7);
        assert_eq!(key_span(&key(90), &key(5), 100), 90..90);
        assert_eq!(key_span(b"", b"\xff", 100), 0..100);
    }

    /// An engine in memory with range deletes, one by one (as fjall) or as
    /// one call (as kevo); `leaky` leaves the last key of every range.
    #[derive(Default)]
    struct Ranged {
        map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
        one_by_one: bool,
        leaky: bool,
    }

    impl Engine for Ranged {
        fn put(&self, key: &[u8], value: &[u8], _sync: bool) -> Res<()> {
            self.map
                .lock()
                .unwrap()
                .insert(key.to_vec(), value.to_vec());
            Ok(())
        }

        fn get(&self, key: &[u8]) -> Res<Option<usize>> {
            Ok(self.map.lock().unwrap().get(key).map(Vec::len))
        }

        fn delete(&self, key: &[u8]) -> Res<()> {
            self.map.lock().unwrap().remove(key);
            Ok(())
        }

        fn scan<'a>(&'a self, from: &[u8], to: Option<&[u8]>, reverse: bool) -> Res<Scan<'a>> {
            let map = self.map.lock().unwrap();
            let mut all: Vec<Res<usize>> = map
                .range::<[u8], _>(crate::engine::bounds(from, to))
                .map(|(k, v)| Ok(k.len() + v.len()))
                .collect();
            if reverse {
                all.reverse();
            }
            Ok(Box::new(all.into_iter()))
        }

        fn flush(&self) -> Res<()> {
            Ok(())
        }

        fn close(self: Box<Self>) -> Res<()> {
            Ok(())
        }

        fn range_deletes(&self) -> Option<&dyn RangeDeleteEngine> {
            Some(self)
        }
    }

    impl RangeDeleteEngine for Ranged {
        fn delete_range(&self, from: &[u8], to: &[u8]) -> Res<Option<u64>> {
            let mut map = self.map.lock().unwrap();
            let mut keys: Vec<Vec<u8>> = map
                .range::<[u8], _>(crate::engine::bounds(from, Some(to)))
                .map(|(k, _)| k.clone())
                .collect();
            if self.leaky {
                keys.pop();
            }
            for k in &keys {
                map.remove(k);
            }
            Ok(self.one_by_one.then_some(keys.len() as u64))
        }

        fn delete_prefix(&self, prefix: &[u8]) -> Res<Option<u64>> {
            let mut end = prefix.to_vec();
            *end.last_mut().unwrap() += 1;
            self.delete_range(prefix, &end)
        }

        fn get_value(&self, key: &[u8]) -> Res<Option<Vec<u8>>> {
            Ok(self.map.lock().unwrap().get(key).cloned())
        }

        fn first_key_from(&self, from: &[u8]) -> Res<Option<Vec<u8>>> {
            let map = self.map.lock().unwrap();
            Ok(map
                .range::<[u8], _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
                .next()
                .map(|(k, _)| k.clone()))
        }

        fn compact_all(&self) -> Res<()> {
            Ok(())
        }

        fn table_bytes(&self) -> Res<u64> {
            Ok(0)
        }
    }

    /// Loads `config.num` keys into `db` and runs the plan's deletes on it
    /// and on a model: the model.
    fn delete_planned(db: &Ranged, config: &Config, values: &Values) -> DeleteModel {
        let order = permutation(config.num, 7);
        fill(
            db,
            config,
            values,
            config.num,
            &|i| order[i as usize],
            false,
        )
        .unwrap();
        let plan = DeletePlan::new(config.num);
        let mut model = DeleteModel::new(config.num);
        let removed = db
            .delete_range(&key(plan.range.start), &key(plan.range.end))
            .unwrap();
        assert_eq!(
            removed.unwrap_or(config.num / 10),
            model.delete(plan.range.clone())
        );
        let removed = db.delete_prefix(&plan.prefix).unwrap();
        let deleted = model.delete(plan.prefix_keys.clone());
        assert_eq!(removed.unwrap_or(deleted), deleted);
        for r in &plan.small {
            db.delete_range(&key(r.start), &key(r.end)).unwrap();
            model.delete(r.clone());
        }
        model
    }

    #[test]
    fn deleterange_model_predicts_the_reads() {
        let config = config();
        let values = Values::new(config.value_bytes);
        let plan = DeletePlan::new(config.num);
        for one_by_one in [false, true] {
            let db = Ranged {
                one_by_one,
                ..Ranged::default()
            };
            let model = delete_planned(&db, &config, &values);
            assert_eq!(count_all(&db).unwrap(), model.live());
            assert!(model.live() < config.num * 9 / 10, "{}", model.live());
            let read = read_random(&db, &config, true, 81).unwrap();
            assert_eq!(read.found, model.read_random_found(&config, 81));
            assert!(read.found < read.ops);
            let seek = seek_random(&db, &config, 83).unwrap();
            assert_eq!(seek.found, model.seek_random_found(&config, 83));
            let reads = deleterange_check(&db, &values, &model, &plan, 91).unwrap();
            assert!(reads > 2 * DELETERANGE_SAMPLE, "{reads}");
        }
        // Nothing deleted: every read finds its key, every seek 11 entries.
        let model = DeleteModel::new(config.num);
        assert_eq!(model.read_random_found(&config, 81), config.num);
        assert_eq!(model.seek_random_found(&config, 83), config.num / 10 * 11);
    }

    #[test]
    fn deleterange_check_finds_a_key_left_behind() {
        let config = config();
        let values = Values::new(config.value_bytes);
        let db = Ranged {
            leaky: true,
            ..Ranged::default()
        };
        let model = delete_planned(&db, &config, &values);
        let plan = DeletePlan::new(config.num);
        let e = deleterange_check(&db, &values, &model, &plan, 91).unwrap_err();
        // The first key read in a deleted range finds the key left behind,
        // by its get or its seek.
        assert!(
            e.contains("found 0") || e.contains("instead of absent"),
            "{e}"
        );
        assert_ne!(count_all(&db).unwrap(), model.live());
    }
}
