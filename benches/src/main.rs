//! `kevo-bench`: db_bench-style workloads on the kevo engine and, for
//! comparison, on peer engines, run by `cargo xtask bench`.
//!
//! ```text
//! kevo-bench [--num N] [--threads T] [--value-bytes B] [--cache-mib M] [--only a,b,..]
//!            [--compare fjall,sled,redb,rocksdb] [--rounds R] [--chart FILE.svg]
//! kevo-bench --chart-from FILE.json [--chart FILE.svg]
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
//! | readseq iter | kevo only: readseq through `Db::range` (owned `(Bytes, Bytes)` per entry) instead of the cursor (`Db::cursor`, borrowed key and value) that readseq and readreverse use |
//! | seekrandom | `N / 10` seeks to a random key, each followed by 10 nexts |
//! | deleterandom | `N` deletes of random keys |
//! | fillsync | `N / 100` puts, each synced to disk, fresh database |
//! | disk limit | with fillsync, just before each engine's: the disk's own rate for it, `N / 100` overwrites of a record's bytes in a zeroed, synced file, each followed by an fdatasync (the same row for every engine: compare fillsync with it) |
//! | txn | optimistic transactions, each reading 2 random keys and writing both; 4 rows: low contention (keys of all `N`) and high (the first 16 keys), 1 and 4 threads; `max(N / 10, 10 000)` commits each; commits/s and abort rate; engines without them (sled, redb, rocksdb): n/a |
//! | keyspaces | 3 rows, each on a fresh database: `keyspaces fill 1` (`N` random puts into one keyspace; kevo: not the default one), `keyspaces fill 8` (the same puts round-robin over 8 keyspaces), `keyspaces batch 2` (`N / 2` atomic write batches of one put into each of 2 keyspaces; batches/s); a sample read back after each row; engines without keyspaces (rocksdb): n/a |
//! | deleterange | only with `--only deleterange`: 15 rows (`dr ...`) on a fresh database: `N` puts in fillrandom's order, compacted whole (not timed); readrandom and seekrandom (as those workloads: `N` gets, `N / 10` seeks + 10 nexts) before the deletes; one put; one range delete of the middle 10% of the keys (`key(0.45 N)..key(0.55 N)`); one prefix delete (a run of leading digits, at most 10%: 50 000 keys at 1 M); one put; the reads again; 100 small range deletes spread evenly (`N / 10 000` keys each, 1% in all); the reads again; a full compaction (timed; table bytes before and after); the reads again; kevo only (its tables cut at 2 MiB in this workload, so that a 1 M-key database has a few dozen): one range delete over exactly the middle third of the bottom level's tables, a flush, and the compactions after it (`whole:` figures: tables deleted whole, unread, and the bytes compactions wrote). Delete rows in µs and keys deleted/s; kevo: `Db::delete_range` / `delete_prefix`, fjall: a range (prefix) scan and batches of 10 000 removes; every read's found count and a sample of values and seeks checked against a model (a mismatch stops the run); ends with a table of medians and ratios (reads after / before); engines without it wired in (sled, redb, rocksdb): n/a |
//! | checkpoint | only with `--only checkpoint`, kevo only (see `copies.rs`): `N` puts in fillrandom's order, settled; three `Db::checkpoint`s timed while a writer overwrites random keys; `Backup::create`, `N / 100` overwrites, a second `Backup::create` (bytes copied over the first's), `verify` and `restore` timed; rows `cp ...` |
//! | fillbig | only with `--only fillbig`: `N` puts of uniformly random keys in `0..N`, fresh database; write and space amplification, stalls |
//!
//! `--compare a,b` runs the same workloads on each named peer engine in the
//! same process (each behind its cargo feature; `cargo xtask bench
//! --compare a,b` turns them on) and ends with a table of medians over
//! `--rounds R` and kevo's ratio to each peer. `--chart FILE.svg` then
//! draws those medians (ops/s and p99 latency per workload and engine, see
//! `chart.rs`) and writes them as JSON to `FILE.json`; `--chart-from
//! FILE.json` only draws (to `--chart`, by default `FILE.svg`). See
//! `benches/README.md`.

mod chart;
mod copies;
mod engine;
mod workload;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use engine::{Engine, RangeDeleteEngine, Res};
use workload::{
    DeleteModel, DeletePlan, KEY_BYTES, Outcome, ProcIo, TXN_HOT_KEYS, TxnOutcome, Values, key,
};

#[derive(Debug, Clone)]
pub(crate) struct Config {
    num: u64,
    threads: usize,
    value_bytes: usize,
    cache_mib: usize,
    only: Option<Vec<String>>,
    /// Peer engines, in the order given (kevo is always first and not here).
    compare: Vec<String>,
    rounds: usize,
    /// `--chart FILE.svg`: draw the medians there after the run.
    chart: Option<PathBuf>,
    /// `--chart-from FILE.json`: run nothing, draw these results.
    chart_from: Option<PathBuf>,
}

/// The default workloads, in order.
const WORKLOADS: [&str; 14] = [
    "fillseq",
    "fillrandom",
    "overwrite",
    "readrandom",
    "readmissing",
    "readseq",
    "readreverse",
    "readseq iter",
    "seekrandom",
    "deleterandom",
    "fillsync",
    "disk limit",
    "txn",
    "keyspaces",
];

/// The resource rows of the fillrandom..deleterandom chain (lower is
/// better): the directory's allocated size after fillrandom and after
/// overwrite, each flushed, settled (`Engine::flush`, `Engine::settle`),
/// left idle for [`IDLE_BEFORE_DISK`] and settled again,
/// the process's peak RSS over the chain (its high-water mark reset, and
/// freed heap handed back, when the chain starts), and the fills' p99.9 and
/// slowest put.
const RESOURCE_ROWS: [&str; 7] = [
    "disk fillrandom MiB",
    "disk overwrite MiB",
    "peak RSS MiB",
    "fillrandom p99.9 µs",
    "fillrandom max µs",
    "overwrite p99.9 µs",
    "overwrite max µs",
];

/// How long the resource rows leave each engine idle (after flushing and
/// settling it) before measuring its directory.
const IDLE_BEFORE_DISK: Duration = Duration::from_millis(1500);

/// Flushes and settles `db`, leaves it alone for [`IDLE_BEFORE_DISK`] as a
/// database between bursts would be (kevo compacts its upper levels into
/// the last one after 1 s without writes), and settles it again: every
/// fill of the chain ends so, whether its row was asked for or not, so that
/// the reads after it find the same database whichever rows run.
fn rest(db: &dyn Engine) -> Res<()> {
    db.flush()?;
    db.settle()?;
    std::thread::sleep(IDLE_BEFORE_DISK);
    db.settle()
}

/// The fill's tail latencies, flush, settle and the directory's size.
/// The txn workload's rows: (name, high contention, threads). The thread
/// counts are fixed (`--threads` does not apply).
const TXN_ROWS: [(&str, bool, usize); 4] = [
    ("txn low 1t", false, 1),
    ("txn low 4t", false, 4),
    ("txn high 1t", true, 1),
    ("txn high 4t", true, 4),
];

/// The keyspaces workload's rows, in order: (name, keyspaces, batched). A
/// fill row puts `N` keys round-robin over its keyspaces; a batched row
/// writes `N / keyspaces` atomic batches, each one put into every keyspace.
const KEYSPACE_ROWS: [(&str, usize, bool); 3] = [
    ("keyspaces fill 1", 1, false),
    ("keyspaces fill 8", 8, false),
    ("keyspaces batch 2", 2, true),
];

/// The width of the workload column of the keyspaces rows.
const KEYSPACE_NAME_WIDTH: usize = 17;

/// The deleterange workload's rows (see `Bench::deleterange`): the load,
/// the timed deletes, and the reads before and after them.
const DR_FILL: &str = "dr fillrandom";
const DR_PUT_BEFORE: &str = "dr one put";
const DR_RANGE: &str = "dr delete range 10%";
const DR_PREFIX: &str = "dr delete prefix";
const DR_PUT_AFTER: &str = "dr one put after";
const DR_SMALL: &str = "dr 100 range deletes";
const DR_COMPACT: &str = "dr compact";

/// The deleterange read phases, in order: (readrandom row, seekrandom row).
/// Before the deletes, after the range and prefix deletes, after the 100
/// small range deletes (the range tombstones still in the memtable), and
/// after the full compaction.
const DR_READS: [(&str, &str); 4] = [
    ("dr readrandom before", "dr seekrandom before"),
    ("dr readrandom after", "dr seekrandom after"),
    ("dr readrandom after100", "dr seekrandom after100"),
    ("dr readrandom compacted", "dr seekrandom compacted"),
];

/// The deleterange rows of the summary, in order (the compaction's rate
/// is compactions/s: 1 / its time).
const DELETERANGE_ROWS: [&str; 15] = [
    DR_FILL,
    DR_READS[0].0,
    DR_READS[0].1,
    DR_PUT_BEFORE,
    DR_RANGE,
    DR_PREFIX,
    DR_PUT_AFTER,
    DR_READS[1].0,
    DR_READS[1].1,
    DR_SMALL,
    DR_READS[2].0,
    DR_READS[2].1,
    DR_COMPACT,
    DR_READS[3].0,
    DR_READS[3].1,
];

/// The deleterange rows of one op each, not charted (their rates would
/// set the scale): the deletes (whose rate in the summary is keys deleted
/// per second), the single puts and the compaction (1 / their time).
const DR_NOT_CHARTED: [&str; 6] = [
    DR_PUT_BEFORE,
    DR_RANGE,
    DR_PREFIX,
    DR_PUT_AFTER,
    DR_SMALL,
    DR_COMPACT,
];

/// The width of the workload column of the deleterange rows.
const DR_NAME_WIDTH: usize = 23;

/// The read rows' generator seeds (the same in every phase, so that every
/// phase reads the same keys).
const DR_READ_SEED: u64 = 81;
const DR_SEEK_SEED: u64 = 83;

/// The deleterange table's figures, in order: (name, decimals). Ratios are
/// ops/s of a read row over the same read before the deletes, in the same
/// round; `kevo only` figures are its `Stats` deltas over the compaction.
const DR_FIGURES: [(&str, usize); 30] = [
    ("put p50 µs (dr fillrandom)", 2),
    ("one put before the range, µs", 1),
    ("delete range 10%, µs", 1),
    ("delete prefix, µs", 1),
    ("one put after the prefix, µs", 1),
    ("100 range deletes, p50 µs", 2),
    ("100 range deletes, max µs", 1),
    ("100 range deletes, total µs", 0),
    ("readrandom after / before", 3),
    ("seekrandom after / before", 3),
    ("readrandom after100 / before", 3),
    ("seekrandom after100 / before", 3),
    ("readrandom compacted / before", 3),
    ("seekrandom compacted / before", 3),
    ("readrandom after100 / after", 3),
    ("seekrandom after100 / after", 3),
    ("table MiB before deletes", 1),
    ("table MiB after compaction", 1),
    ("table after / before", 3),
    ("compaction s", 2),
    ("tables deleted whole", 0),
    ("MiB deleted whole", 1),
    ("compaction MiB written", 1),
    ("range-deleted entries dropped", 0),
    ("whole: tables covered", 0),
    ("whole: MiB covered", 1),
    ("whole: tables deleted", 0),
    ("whole: MiB deleted", 1),
    ("whole: compaction B written", 0),
    ("whole: flush B written", 0),
];

/// Workloads that run only when `--only` names them (deleterange: with
/// `--compare fjall` its seeks through fjall's point tombstones take about
/// 7 minutes a round at 1 M keys).
const EXTRA_WORKLOADS: [&str; 3] = ["deleterange", "fillbig", "checkpoint"];

fn usage() -> String {
    format!(
        "usage: kevo-bench [--num N] [--threads T] [--value-bytes B] [--cache-mib M] \
         [--only {},{}] [--compare {}] [--rounds R] [--chart FILE.svg]\n       \
         kevo-bench --chart-from FILE.json [--chart FILE.svg]",
        WORKLOADS.join(","),
        EXTRA_WORKLOADS.join(","),
        engine::ALL[1..].join(",")
    )
}

fn parse_args() -> Result<Config, String> {
    let mut config = Config {
        num: 1_000_000,
        threads: 1,
        value_bytes: 100,
        cache_mib: 64,
        only: None,
        compare: Vec::new(),
        rounds: 1,
        chart: None,
        chart_from: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        if matches!(args[i].as_str(), "-h" | "--help") {
            return Err(usage());
        }
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
            "--rounds" => config.rounds = number()?.clamp(1, 1000) as usize,
            "--chart" => config.chart = Some(PathBuf::from(value)),
            "--chart-from" => config.chart_from = Some(PathBuf::from(value)),
            "--only" => {
                let names: Vec<String> = value.split(',').map(str::to_string).collect();
                let known = |n: &str| WORKLOADS.contains(&n) || EXTRA_WORKLOADS.contains(&n);
                if let Some(bad) = names.iter().find(|n| !known(n)) {
                    return Err(format!(
                        "unknown workload `{bad}`; known: {},{}",
                        WORKLOADS.join(","),
                        EXTRA_WORKLOADS.join(",")
                    ));
                }
                config.only = Some(names);
            }
            "--compare" => {
                for name in value.split(',').filter(|n| !n.is_empty()) {
                    if !engine::built(name) {
                        return Err(engine::not_built(name));
                    }
                    if name != "kevo" && !config.compare.iter().any(|n| n == name) {
                        config.compare.push(name.to_string());
                    }
                }
            }
            other => return Err(format!("unknown argument `{other}`\n{}", usage())),
        }
        i += 2;
    }
    Ok(config)
}

/// Ends a table row with kevo's figure over each peer's (`-` where a peer
/// has none, or 0).
fn print_ratios(kevo: f64, peers: impl Iterator<Item = Option<f64>>) {
    for peer in peers {
        match peer {
            Some(v) if v > 0.0 => print!(" {:>12.2}x", kevo / v),
            _ => print!(" {:>13}", "-"),
        }
    }
    println!();
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// What fillbig measured on one engine in one round.
#[derive(Debug, Clone, Copy)]
struct Big {
    ops_per_sec: f64,
    p99_us: f64,
    max_us: f64,
    /// `/proc/self/io` write_bytes over user bytes.
    wamp_io: f64,
    /// The same less the cancelled write-back.
    wamp_net: f64,
    /// The engine's own bytes written over user bytes, where it counts them.
    wamp_own: Option<f64>,
    /// Allocated bytes of the directory after flush and close over live data.
    samp: f64,
    disk_mib: f64,
    /// The same as file sizes (`ls`, not `du`).
    apparent_mib: f64,
    /// The engine's own stall time, where it counts it.
    stall_own: Option<f64>,
    /// The sum of the write latencies above 1 ms.
    stall_slow: f64,
    flush_close_secs: f64,
}

impl Big {
    fn median(all: &[Big]) -> Big {
        let m = |f: fn(&Big) -> f64| median(&all.iter().map(f).collect::<Vec<_>>());
        let opt = |f: fn(&Big) -> Option<f64>| {
            let some: Vec<f64> = all.iter().filter_map(f).collect();
            (!some.is_empty()).then(|| median(&some))
        };
        Big {
            ops_per_sec: m(|b| b.ops_per_sec),
            p99_us: m(|b| b.p99_us),
            max_us: m(|b| b.max_us),
            wamp_io: m(|b| b.wamp_io),
            wamp_net: m(|b| b.wamp_net),
            wamp_own: opt(|b| b.wamp_own),
            samp: m(|b| b.samp),
            disk_mib: m(|b| b.disk_mib),
            apparent_mib: m(|b| b.apparent_mib),
            stall_own: opt(|b| b.stall_own),
            stall_slow: m(|b| b.stall_slow),
            flush_close_secs: m(|b| b.flush_close_secs),
        }
    }
}

/// Everything measured, for the summary tables.
struct Bench<'c> {
    config: &'c Config,
    /// kevo first, then the peers.
    engines: Vec<String>,
    values: &'c Values,
    /// ops/s per (engine, workload), one per round.
    ops: HashMap<(String, &'static str), Vec<f64>>,
    /// p99 latency in µs per (engine, workload), one per round.
    p99: HashMap<(String, &'static str), Vec<f64>>,
    big: HashMap<String, Vec<Big>>,
    /// txn abort rates per (engine, row), one per round.
    aborts: HashMap<(String, &'static str), Vec<f64>>,
    /// Engine statistics after fillrandom..deleterandom (latest round).
    stats: HashMap<String, String>,
    /// Resource figures per (engine, row), one per round; lower is better
    /// (see [`RESOURCE_ROWS`]).
    resources: HashMap<(String, &'static str), Vec<f64>>,
    /// What the deleterange workload deletes.
    plan: DeletePlan,
    /// The deleterange table's figures per (engine, figure), one per round.
    dr: HashMap<(String, &'static str), Vec<f64>>,
}

impl Bench<'_> {
    fn comparing(&self) -> bool {
        self.engines.len() > 1
    }

    fn wanted(&self, name: &str) -> bool {
        match &self.config.only {
            None => WORKLOADS.contains(&name),
            Some(only) => only.iter().any(|n| n == name),
        }
    }

    fn print_header(&self) {
        if self.comparing() {
            print!("{:<8} ", "engine");
        }
        println!(
            "{:<13} {:>9} {:>11} {:>8} {:>9} {:>9} {:>9} {:>10} {:>8}",
            "workload", "ops", "ops/s", "MB/s", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "found"
        );
    }

    fn report(&mut self, engine: &str, name: &'static str, outcome: &Outcome) {
        self.report_as(engine, name, 13, outcome);
    }

    /// Prints one row, its name in a column `width` wide, and keeps its
    /// ops/s and p99 for the summary.
    fn report_as(&mut self, engine: &str, name: &'static str, width: usize, outcome: &Outcome) {
        let secs = outcome.elapsed.as_secs_f64().max(1e-9);
        let us = |q: f64| outcome.latency.value_at_quantile(q) as f64 / 1000.0;
        if self.comparing() {
            print!("{engine:<8} ");
        }
        println!(
            "{:<width$} {:>9} {:>11.0} {:>8.1} {:>9.2} {:>9.2} {:>9.2} {:>10.1} {:>8}",
            name,
            outcome.ops,
            outcome.ops_per_sec(),
            outcome.bytes as f64 / secs / 1e6,
            us(0.5),
            us(0.99),
            us(0.999),
            outcome.latency.max() as f64 / 1000.0,
            outcome.found
        );
        self.ops
            .entry((engine.to_string(), name))
            .or_default()
            .push(outcome.ops_per_sec());
        self.p99
            .entry((engine.to_string(), name))
            .or_default()
            .push(us(0.99));
    }

    fn open(&self, engine: &str) -> Res<(tempfile::TempDir, Box<dyn Engine>)> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let db = engine::open(engine, dir.path(), self.config)?;
        Ok((dir, db))
    }

    fn fillseq(&mut self, engine: &str) -> Res<()> {
        let (_dir, db) = self.open(engine)?;
        let outcome = workload::fill(
            &*db,
            self.config,
            self.values,
            self.config.num,
            &|i| i,
            false,
        )?;
        self.report(engine, "fillseq", &outcome);
        db.close()
    }

    fn resource(&mut self, engine: &str, row: &'static str, value: f64) {
        self.resources
            .entry((engine.to_string(), row))
            .or_default()
            .push(value);
    }

    /// The fill's tail latencies, then [`rest`] and the directory's size.
    fn fill_resources(
        &mut self,
        engine: &str,
        db: &dyn Engine,
        dir: &std::path::Path,
        rows: [&'static str; 3],
        outcome: &Outcome,
    ) -> Res<()> {
        let us = outcome.latency.value_at_quantile(0.999) as f64 / 1000.0;
        self.resource(engine, rows[1], us);
        self.resource(engine, rows[2], outcome.latency.max() as f64 / 1000.0);
        rest(db)?;
        let (_, allocated) = engine::dir_bytes(dir)?;
        self.resource(engine, rows[0], allocated as f64 / (1 << 20) as f64);
        Ok(())
    }

    /// fillrandom..deleterandom on one database.
    fn chain(&mut self, engine: &str, order: &[u64], again: &[u64]) -> Res<()> {
        workload::reset_peak_rss()?;
        let (dir, boxed) = self.open(engine)?;
        let db = &*boxed;
        let (config, values) = (self.config, self.values);
        let fill = |order: &[u64]| {
            workload::fill(
                db,
                config,
                values,
                config.num,
                &|i| order[i as usize],
                false,
            )
        };
        let outcome = fill(order)?;
        if self.wanted("fillrandom") {
            self.report(engine, "fillrandom", &outcome);
            let rows = [RESOURCE_ROWS[0], RESOURCE_ROWS[3], RESOURCE_ROWS[4]];
            self.fill_resources(engine, db, dir.path(), rows, &outcome)?;
        } else {
            // The reads below find the same database whichever rows run.
            rest(db)?;
        }
        if self.wanted("overwrite") {
            let outcome = fill(again)?;
            self.report(engine, "overwrite", &outcome);
            let rows = [RESOURCE_ROWS[1], RESOURCE_ROWS[5], RESOURCE_ROWS[6]];
            self.fill_resources(engine, db, dir.path(), rows, &outcome)?;
        }
        if self.wanted("readrandom") {
            let outcome = workload::read_random(db, config, true, 21)?;
            self.report(engine, "readrandom", &outcome);
        }
        if self.wanted("readmissing") {
            let outcome = workload::read_random(db, config, false, 23)?;
            self.report(engine, "readmissing", &outcome);
        }
        if self.wanted("readseq") {
            let outcome = workload::scan(db, config, false)?;
            self.report(engine, "readseq", &outcome);
        }
        if self.wanted("readreverse") {
            let outcome = workload::scan(db, config, true)?;
            self.report(engine, "readreverse", &outcome);
        }
        if self.wanted("readseq iter")
            && let Some(outcome) = workload::scan_iter(db, config)?
        {
            self.report(engine, "readseq iter", &outcome);
        }
        if self.wanted("seekrandom") {
            let outcome = workload::seek_random(db, config, 31)?;
            self.report(engine, "seekrandom", &outcome);
        }
        if self.wanted("deleterandom") {
            let outcome = workload::delete_random(db, config, 41)?;
            self.report(engine, "deleterandom", &outcome);
        }
        if let Some(text) = db.stats_text() {
            self.stats.insert(engine.to_string(), text);
        }
        let peak = workload::peak_rss_bytes()?;
        self.resource(engine, RESOURCE_ROWS[2], peak as f64 / (1 << 20) as f64);
        boxed.close()
    }

    fn fillsync(&mut self, engine: &str) -> Res<()> {
        // The disk's own limit, measured just before each engine's run.
        let limit = workload::disk_limit(self.config)?;
        self.report(engine, "disk limit", &limit);
        let (_dir, db) = self.open(engine)?;
        let outcome = workload::fill_sync(&*db, self.config, self.values)?;
        self.report(engine, "fillsync", &outcome);
        db.close()
    }

    fn print_txn_header(&self) {
        if self.comparing() {
            print!("{:<8} ", "engine");
        }
        println!(
            "{:<13} {:>9} {:>11} {:>8} {:>8} {:>9} {:>9} {:>10}",
            "txn", "commits", "commits/s", "aborts", "abort %", "p50 µs", "p99 µs", "max µs"
        );
    }

    /// The txn rows on one fresh database, pre-filled with `N` keys in
    /// order (not measured).
    fn txn(&mut self, engine: &str) -> Res<()> {
        let config = self.config;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let Some(boxed) = engine::open_txn(engine, dir.path(), config)? else {
            if self.comparing() {
                print!("{engine:<8} ");
            }
            println!("{:<13} n/a (no optimistic transactions here)", "txn");
            return Ok(());
        };
        let db = &*boxed;
        let txn = db
            .txn()
            .ok_or_else(|| format!("{engine}: opened for txn without transactions"))?;
        workload::fill(db, config, self.values, config.num, &|i| i, false)?;
        let commits = (config.num / 10).max(10_000);
        let hot = TXN_HOT_KEYS.min(config.num);
        // Each transaction moves one unit between two counters, so the sum
        // of the hot keys' counters is the same before and after the high
        // rows (which touch nothing else): a check that every transaction
        // counted as committed was applied whole, and no aborted one was.
        let mut hot_sum = None;
        for (row, &(name, high, threads)) in TXN_ROWS.iter().enumerate() {
            if high && hot_sum.is_none() {
                hot_sum = Some(workload::txn_counter_sum(txn, hot)?);
            }
            let keys = if high { hot } else { config.num };
            let seed = 61 + 8 * row as u64;
            let outcome = workload::txn(txn, self.values, commits, threads, keys, seed)?;
            self.report_txn(engine, name, &outcome);
        }
        if let Some(before) = hot_sum {
            let after = workload::txn_counter_sum(txn, hot)?;
            if after != before {
                return Err(format!(
                    "{engine}: txn: the hot keys' counters sum to {after} after the high \
                     rows, {before} before"
                ));
            }
        }
        boxed.close()
    }

    fn report_txn(&mut self, engine: &str, name: &'static str, txn: &TxnOutcome) {
        let outcome = &txn.outcome;
        let us = |q: f64| outcome.latency.value_at_quantile(q) as f64 / 1000.0;
        if self.comparing() {
            print!("{engine:<8} ");
        }
        println!(
            "{:<13} {:>9} {:>11.0} {:>8} {:>8.2} {:>9.2} {:>9.2} {:>10.1}",
            name,
            outcome.ops,
            outcome.ops_per_sec(),
            txn.aborts,
            txn.abort_rate() * 100.0,
            us(0.5),
            us(0.99),
            outcome.latency.max() as f64 / 1000.0,
        );
        self.ops
            .entry((engine.to_string(), name))
            .or_default()
            .push(outcome.ops_per_sec());
        self.p99
            .entry((engine.to_string(), name))
            .or_default()
            .push(us(0.99));
        self.aborts
            .entry((engine.to_string(), name))
            .or_default()
            .push(txn.abort_rate());
    }

    fn print_keyspaces_header(&self) {
        println!(
            "keyspaces: a fresh database per row and engine; batch 2: ops = write batches \
             (one put into each keyspace), ops/s = batches/s, latency per batch; checked = \
             reads of the check"
        );
        if self.comparing() {
            print!("{:<8} ", "engine");
        }
        println!(
            "{:<KEYSPACE_NAME_WIDTH$} {:>9} {:>11} {:>8} {:>9} {:>9} {:>10} {:>8}",
            "keyspaces", "ops", "ops/s", "MB/s", "p50 µs", "p99 µs", "max µs", "checked"
        );
    }

    /// One keyspaces row on a fresh database: the writes (timed), then the
    /// check (not timed; a mismatch stops the run).
    fn keyspaces(
        &mut self,
        engine: &str,
        (name, count, batched): (&'static str, usize, bool),
        order: &[u64],
    ) -> Res<()> {
        let (config, values) = (self.config, self.values);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let Some(db) = engine::open_keyspaces(engine, dir.path(), config, count)? else {
            if self.comparing() {
                print!("{engine:<8} ");
            }
            println!("{name:<KEYSPACE_NAME_WIDTH$} n/a (no keyspaces here)");
            return Ok(());
        };
        let outcome = if batched {
            workload::keyspaces_batch(&*db, config, values, order, count)?
        } else {
            workload::keyspaces_fill(&*db, config, values, order, count)?
        };
        let written = if batched {
            outcome.ops * count as u64
        } else {
            outcome.ops
        };
        let checked = workload::keyspaces_check(&*db, values, order, written, count)
            .map_err(|e| format!("{engine}: {name}: check failed: {e}"))?;
        let outcome = Outcome {
            found: checked,
            ..outcome
        };
        self.report_as(engine, name, KEYSPACE_NAME_WIDTH, &outcome);
        db.close()
    }

    fn print_deleterange_header(&self) {
        let plan = &self.plan;
        println!(
            "deleterange: a fresh database per engine: {} puts in fillrandom's order, then \
             compacted whole (not timed); deletes, in order: keys {}..{} as one range (10%), \
             prefix \"{}\" (keys {}..{}), {} ranges of {} keys spread evenly; then a full \
             compaction; reads before, between and after (the same keys each time); last \
             (kevo, whose tables are cut at {} MiB here): one range delete over the middle \
             third of the bottom level's tables, exactly, then a flush and the compactions \
             it starts: what comes back and what is written",
            self.config.num,
            plan.range.start,
            plan.range.end,
            String::from_utf8_lossy(&plan.prefix),
            plan.prefix_keys.start,
            plan.prefix_keys.end,
            plan.small.len(),
            plan.small.first().map_or(0, |r| r.end - r.start),
            engine::DELETERANGE_KEVO_TABLE_MIB,
        );
        println!(
            "  delete rows: ops = delete calls (fjall: each a range or prefix scan and \
             removes), keys = keys deleted that were not yet, keys/s; read rows: found = gets \
             (seek entries) that found a key, checked against the model; compact: the live \
             keys"
        );
        if self.comparing() {
            print!("{:<8} ", "engine");
        }
        println!(
            "{:<DR_NAME_WIDTH$} {:>9} {:>11} {:>9} {:>9} {:>10} {:>10} {:>9} {:>12}",
            "deleterange",
            "ops",
            "ops/s",
            "p50 µs",
            "p99 µs",
            "max µs",
            "total ms",
            "keys/found",
            "keys/s"
        );
    }

    /// Prints one deleterange row and keeps its rate and p99 for the
    /// summary: `deleted` is `Some(keys deleted)` for a delete row (its
    /// rate is then keys/s), `None` for a read or fill row.
    fn report_dr(
        &mut self,
        engine: &str,
        name: &'static str,
        outcome: &Outcome,
        deleted: Option<u64>,
    ) {
        let secs = outcome.elapsed.as_secs_f64().max(1e-9);
        let us = |q: f64| outcome.latency.value_at_quantile(q) as f64 / 1000.0;
        if self.comparing() {
            print!("{engine:<8} ");
        }
        let (count, rate) = match deleted {
            Some(keys) => (keys, Some(keys as f64 / secs)),
            None => (outcome.found, None),
        };
        println!(
            "{:<DR_NAME_WIDTH$} {:>9} {:>11.0} {:>9.2} {:>9.2} {:>10.1} {:>10.3} {:>9} {:>12}",
            name,
            outcome.ops,
            outcome.ops_per_sec(),
            us(0.5),
            us(0.99),
            outcome.latency.max() as f64 / 1000.0,
            secs * 1000.0,
            count,
            rate.map_or("-".to_string(), |r| format!("{r:.0}")),
        );
        self.ops
            .entry((engine.to_string(), name))
            .or_default()
            .push(rate.unwrap_or_else(|| outcome.ops_per_sec()));
        self.p99
            .entry((engine.to_string(), name))
            .or_default()
            .push(us(0.99));
    }

    /// Keeps one figure of the deleterange table.
    fn dr_figure(&mut self, engine: &str, name: &'static str, value: f64) {
        debug_assert!(DR_FIGURES.iter().any(|(n, _)| *n == name), "{name}");
        self.dr
            .entry((engine.to_string(), name))
            .or_default()
            .push(value);
    }

    /// One deleterange read phase: readrandom and seekrandom rows over all
    /// `N` keys (deleted ones included), each `found` checked against what
    /// `model` says the engine holds. Returns their ops/s.
    fn dr_reads(
        &mut self,
        engine: &str,
        db: &dyn Engine,
        model: &DeleteModel,
        (read_row, seek_row): (&'static str, &'static str),
    ) -> Res<(f64, f64)> {
        let config = self.config;
        let read = workload::read_random(db, config, true, DR_READ_SEED)?;
        let want = model.read_random_found(config, DR_READ_SEED);
        if read.found != want {
            return Err(format!(
                "{engine}: {read_row}: {} gets found a key, {want} should have",
                read.found
            ));
        }
        self.report_dr(engine, read_row, &read, None);
        let seek = workload::seek_random(db, config, DR_SEEK_SEED)?;
        let want = model.seek_random_found(config, DR_SEEK_SEED);
        if seek.found != want {
            return Err(format!(
                "{engine}: {seek_row}: the seeks found {} entries, {want} should have",
                seek.found
            ));
        }
        self.report_dr(engine, seek_row, &seek, None);
        Ok((read.ops_per_sec(), seek.ops_per_sec()))
    }

    /// The deleterange check (not timed): a sample of gets and seeks, and
    /// with `count` a full scan's count, against the model.
    fn dr_check(
        &self,
        engine: &str,
        db: &dyn Engine,
        rd: &dyn RangeDeleteEngine,
        model: &DeleteModel,
        when: &str,
        count: bool,
    ) -> Res<()> {
        let fail = |e: String| format!("{engine}: deleterange, {when}: check failed: {e}");
        workload::deleterange_check(rd, self.values, model, &self.plan, 91).map_err(fail)?;
        if count {
            let (got, want) = (workload::count_all(db)?, model.live());
            if got != want {
                return Err(fail(format!("a full scan found {got} keys, not {want}")));
            }
        }
        Ok(())
    }

    /// The deleterange workload on one fresh database: see the module
    /// docs and `print_deleterange_header`.
    fn deleterange(&mut self, engine: &str, order: &[u64]) -> Res<()> {
        let (config, values) = (self.config, self.values);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let boxed = engine::open_deleterange(engine, dir.path(), self.config)?;
        let db = &*boxed;
        let Some(rd) = db.range_deletes() else {
            if self.comparing() {
                print!("{engine:<8} ");
            }
            println!(
                "{:<DR_NAME_WIDTH$} n/a (not wired in for this engine)",
                "deleterange"
            );
            return boxed.close();
        };
        let plan = self.plan.clone();
        let num = config.num;
        // A single op's time: its latency as recorded (the histogram's
        // max); a row of several: their total.
        let us = |o: &Outcome| match o.ops {
            1 => o.latency.max() as f64 / 1000.0,
            _ => o.elapsed.as_secs_f64() * 1e6,
        };
        let fill = workload::fill(db, config, values, num, &|i| order[i as usize], false)?;
        self.report_dr(engine, DR_FILL, &fill, None);
        let p50 = fill.latency.value_at_quantile(0.5) as f64 / 1000.0;
        self.dr_figure(engine, "put p50 µs (dr fillrandom)", p50);
        rd.compact_all()?;
        let tables_before = rd.table_bytes()?;
        let mut model = DeleteModel::new(num);
        self.dr_check(engine, db, rd, &model, "after the load", false)?;
        // The baseline's reads once untimed first, so that it does not pay
        // alone for a cold block cache.
        workload::read_random(db, config, true, DR_READ_SEED)?;
        workload::seek_random(db, config, DR_SEEK_SEED)?;
        let before = self.dr_reads(engine, db, &model, DR_READS[0])?;

        // One put of key 0 with the value it has (the model is unchanged):
        // what one small write takes at this point, just before the range
        // delete and just after the prefix delete. The first write after
        // the compaction pays for a fresh memtable; the put before pays it.
        let one_put = || workload::timed_calls(1, &|_| db.put(&key(0), values.get(0), false));
        let put_before = one_put()?;
        // One call each; an engine that removes keys one by one must have
        // removed exactly the keys the model deletes.
        let mut one_delete = |name: &'static str, keys: std::ops::Range<u64>, prefix| {
            let removed = std::cell::Cell::new(None);
            let outcome = workload::timed_calls(1, &|_| {
                removed.set(if prefix {
                    rd.delete_prefix(&plan.prefix)?
                } else {
                    rd.delete_range(&key(keys.start), &key(keys.end))?
                });
                Ok(())
            })?;
            let deleted = model.delete(keys);
            if let Some(n) = removed.get().filter(|&n| n != deleted) {
                return Err(format!(
                    "{engine}: {name}: removed {n} keys, {deleted} were there"
                ));
            }
            Ok::<_, String>((outcome, deleted))
        };
        let (range, range_keys) = one_delete(DR_RANGE, plan.range.clone(), false)?;
        let (prefix, prefix_keys) = one_delete(DR_PREFIX, plan.prefix_keys.clone(), true)?;
        let put_after = one_put()?;
        self.report_dr(engine, DR_PUT_BEFORE, &put_before, None);
        self.report_dr(engine, DR_RANGE, &range, Some(range_keys));
        self.report_dr(engine, DR_PREFIX, &prefix, Some(prefix_keys));
        self.report_dr(engine, DR_PUT_AFTER, &put_after, None);
        self.dr_figure(engine, "one put before the range, µs", us(&put_before));
        self.dr_figure(engine, "delete range 10%, µs", us(&range));
        self.dr_figure(engine, "delete prefix, µs", us(&prefix));
        self.dr_figure(engine, "one put after the prefix, µs", us(&put_after));
        self.dr_check(engine, db, rd, &model, "after the range and prefix", false)?;
        let after = self.dr_reads(engine, db, &model, DR_READS[1])?;

        let removed = std::cell::Cell::new(None);
        let small = workload::timed_calls(plan.small.len() as u64, &|j| {
            let r = &plan.small[j as usize];
            if let Some(n) = rd.delete_range(&key(r.start), &key(r.end))? {
                removed.set(Some(removed.get().unwrap_or(0) + n));
            }
            Ok(())
        })?;
        let small_keys: u64 = plan.small.iter().map(|r| model.delete(r.clone())).sum();
        if let Some(n) = removed.get().filter(|&n| n != small_keys) {
            return Err(format!(
                "{engine}: {DR_SMALL}: removed {n} keys, {small_keys} were there"
            ));
        }
        self.report_dr(engine, DR_SMALL, &small, Some(small_keys));
        let small_us = |q: f64| small.latency.value_at_quantile(q) as f64 / 1000.0;
        self.dr_figure(engine, "100 range deletes, p50 µs", small_us(0.5));
        self.dr_figure(engine, "100 range deletes, max µs", small_us(1.0));
        self.dr_figure(engine, "100 range deletes, total µs", us(&small));
        self.dr_check(engine, db, rd, &model, "after the 100 range deletes", true)?;
        let after100 = self.dr_reads(engine, db, &model, DR_READS[2])?;

        // The compaction, timed as one op.
        let counters = rd.compaction_counters();
        let compaction = workload::timed_calls(1, &|_| rd.compact_all())?;
        let compaction = Outcome {
            found: model.live(),
            ..compaction
        };
        let tables_after = rd.table_bytes()?;
        self.report_dr(engine, DR_COMPACT, &compaction, None);
        let counters = counters
            .zip(rd.compaction_counters())
            .map(|(before, after)| after.since(before));
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let shrunk = tables_after as f64 / tables_before.max(1) as f64;
        print!(
            "{:w$}  tables {:.1} MiB before the deletes, {:.1} MiB after the compaction \
             ({shrunk:.3}; live keys {:.3})",
            "",
            mib(tables_before),
            mib(tables_after),
            model.live() as f64 / num as f64,
            w = if self.comparing() { 8 } else { 0 },
        );
        match counters {
            Some(c) => println!(
                "; {} tables deleted whole ({:.1} MiB), compaction wrote {:.1} MiB, \
                 {} range-deleted entries dropped",
                c.tables_deleted_whole,
                mib(c.bytes_deleted_whole),
                mib(c.bytes_written),
                c.range_deleted_entries_dropped
            ),
            None => println!(),
        }
        self.dr_check(engine, db, rd, &model, "after the compaction", true)?;
        let compacted = self.dr_reads(engine, db, &model, DR_READS[3])?;

        // Space back without rewriting: a range over whole tables (kevo).
        if let Some(whole) = rd.delete_whole_tables()? {
            let keys = workload::key_span(&whole.from, &whole.to, num);
            let deleted = model.delete(keys);
            let c = whole.counters;
            println!(
                "{:w$}  whole tables: one range delete over {} tables ({:.1} MiB, {deleted} live \
                 keys), flushed and settled: {} tables deleted whole ({:.1} MiB), \
                 compactions wrote {} bytes, the flush {} bytes",
                "",
                whole.tables,
                mib(whole.table_bytes),
                c.tables_deleted_whole,
                mib(c.bytes_deleted_whole),
                c.bytes_written,
                whole.flush_bytes,
                w = if self.comparing() { 8 } else { 0 },
            );
            let figures = [
                ("whole: tables covered", whole.tables as f64),
                ("whole: MiB covered", mib(whole.table_bytes)),
                ("whole: tables deleted", c.tables_deleted_whole as f64),
                ("whole: MiB deleted", mib(c.bytes_deleted_whole)),
                ("whole: compaction B written", c.bytes_written as f64),
                ("whole: flush B written", whole.flush_bytes as f64),
            ];
            for (figure, value) in figures {
                self.dr_figure(engine, figure, value);
            }
            self.dr_check(engine, db, rd, &model, "after the whole-table delete", true)?;
        }

        let ratios = [
            ("readrandom after / before", after.0 / before.0),
            ("seekrandom after / before", after.1 / before.1),
            ("readrandom after100 / before", after100.0 / before.0),
            ("seekrandom after100 / before", after100.1 / before.1),
            ("readrandom compacted / before", compacted.0 / before.0),
            ("seekrandom compacted / before", compacted.1 / before.1),
            ("readrandom after100 / after", after100.0 / after.0),
            ("seekrandom after100 / after", after100.1 / after.1),
            ("table MiB before deletes", mib(tables_before)),
            ("table MiB after compaction", mib(tables_after)),
            ("table after / before", shrunk),
            ("compaction s", compaction.elapsed.as_secs_f64()),
        ];
        for (figure, value) in ratios {
            self.dr_figure(engine, figure, value);
        }
        if let Some(c) = counters {
            let own = [
                ("tables deleted whole", c.tables_deleted_whole as f64),
                ("MiB deleted whole", mib(c.bytes_deleted_whole)),
                ("compaction MiB written", mib(c.bytes_written)),
                (
                    "range-deleted entries dropped",
                    c.range_deleted_entries_dropped as f64,
                ),
            ];
            for (figure, value) in own {
                self.dr_figure(engine, figure, value);
            }
        }
        boxed.close()
    }

    /// The deleterange figures: per engine, the median over the rounds and
    /// (with several rounds) the lowest and highest.
    fn print_deleterange(&self) {
        let plan = &self.plan;
        println!(
            "\ndeleterange: median over {} round(s) (lowest..highest); range {} keys, prefix \
             {} keys, 100 range deletes {} keys in all; x / before: ops/s of the read over \
             the same read before the deletes (same round)",
            self.config.rounds,
            plan.range.end - plan.range.start,
            plan.prefix_keys.end - plan.prefix_keys.start,
            plan.small.iter().map(|r| r.end - r.start).sum::<u64>(),
        );
        print!("{:<30}", "figure");
        for e in &self.engines {
            print!(" {e:>28}");
        }
        println!();
        for (name, prec) in DR_FIGURES {
            print!("{name:<30}");
            for e in &self.engines {
                match self.dr.get(&(e.clone(), name)) {
                    Some(v) if v.len() > 1 => {
                        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let cell = format!("{:.prec$} ({lo:.prec$}..{hi:.prec$})", median(v));
                        print!(" {cell:>28}");
                    }
                    Some(v) => print!(" {:>28.prec$}", median(v)),
                    None => print!(" {:>28}", "-"),
                }
            }
            println!();
        }
    }

    fn fillbig(&mut self, engine: &str, distinct: u64) -> Res<()> {
        let config = self.config;
        let (dir, db) = self.open(engine)?;
        let before = ProcIo::now()?;
        let outcome = workload::fill_big(&*db, config, self.values)?;
        let closing = Instant::now();
        db.flush()?;
        // Space is measured once the engine says its compactions are done
        // (kevo; the peers offer no such call and are measured after their
        // flush and close). The time it takes is in `flush_close_secs`.
        db.settle()?;
        let own = db.own_figures();
        db.close()?;
        let flush_close_secs = closing.elapsed().as_secs_f64();
        let io = ProcIo::now()?.since(before);
        let (apparent, allocated) = engine::dir_bytes(dir.path())?;
        self.report(engine, "fillbig", &outcome);

        let entry_bytes = (KEY_BYTES + config.value_bytes) as f64;
        let user = config.num as f64 * entry_bytes;
        let live = distinct as f64 * entry_bytes;
        let big = Big {
            ops_per_sec: outcome.ops_per_sec(),
            p99_us: outcome.latency.value_at_quantile(0.99) as f64 / 1000.0,
            max_us: outcome.latency.max() as f64 / 1000.0,
            wamp_io: io.write_bytes as f64 / user,
            wamp_net: io.write_bytes.saturating_sub(io.cancelled_write_bytes) as f64 / user,
            wamp_own: own.bytes_written.map(|b| b as f64 / user),
            samp: allocated as f64 / live,
            disk_mib: allocated as f64 / (1 << 20) as f64,
            apparent_mib: apparent as f64 / (1 << 20) as f64,
            stall_own: own.stall_time.map(|d| d.as_secs_f64()),
            stall_slow: outcome.time_above(Duration::from_millis(1)).as_secs_f64(),
            flush_close_secs,
        };
        self.big.entry(engine.to_string()).or_default().push(big);
        Ok(())
    }

    fn round(&mut self, round: usize, order: &[u64], again: &[u64], distinct: u64) -> Res<()> {
        // Engine order rotates by one each round, so that none always runs
        // first (cold page cache, fresh disk) or last.
        let mut engines = self.engines.clone();
        let first = round % engines.len();
        engines.rotate_left(first);
        if self.config.rounds > 1 {
            println!(
                "\nround {}/{}: {}",
                round + 1,
                self.config.rounds,
                engines.join(", ")
            );
        }
        let all = WORKLOADS.iter().chain(EXTRA_WORKLOADS.iter());
        let own_header = ["txn", "keyspaces", "deleterange"];
        if all
            .filter(|w| !own_header.contains(w))
            .any(|w| self.wanted(w))
        {
            self.print_header();
        }
        if self.wanted("fillseq") {
            for e in &engines {
                self.fillseq(e)?;
            }
        }
        if WORKLOADS[1..10].iter().any(|w| self.wanted(w)) {
            for e in &engines {
                self.chain(e, order, again)?;
            }
        }
        if self.wanted("fillsync") || self.wanted("disk limit") {
            for e in &engines {
                self.fillsync(e)?;
            }
        }
        if self.wanted("txn") {
            self.print_txn_header();
            for e in &engines {
                self.txn(e)?;
            }
        }
        if self.wanted("keyspaces") {
            // Row by row, each engine in turn: the engines' figures for one
            // row are measured close together.
            self.print_keyspaces_header();
            for row in KEYSPACE_ROWS {
                for e in &engines {
                    self.keyspaces(e, row, order)?;
                }
            }
        }
        if self.wanted("deleterange") {
            self.print_deleterange_header();
            for e in &engines {
                self.deleterange(e, order)?;
            }
        }
        if self.wanted("checkpoint") {
            copies::run(
                self.config.num,
                self.config.cache_mib << 20,
                self.values,
                order,
            )?;
        }
        if self.wanted("fillbig") {
            if ["txn", "keyspaces", "deleterange"]
                .iter()
                .any(|w| self.wanted(w))
            {
                // fillbig's rows have the columns of the first table.
                self.print_header();
            }
            for e in &engines {
                self.fillbig(e, distinct)?;
            }
        }
        Ok(())
    }

    fn print_stats(&self) {
        for engine in &self.engines {
            let Some(text) = self.stats.get(engine) else {
                continue;
            };
            if self.comparing() {
                println!("\n{engine} stats after fillrandom..deleterandom:\n{text}");
            } else {
                println!("\nengine stats after fillrandom..deleterandom:\n{text}");
            }
        }
    }

    /// The summary's rows: every workload in order, txn as its four rows,
    /// keyspaces as its three.
    fn rows() -> impl Iterator<Item = &'static str> {
        let all = WORKLOADS.iter().chain(EXTRA_WORKLOADS.iter());
        all.flat_map(|&w| match w {
            "txn" => TXN_ROWS.iter().map(|r| r.0).collect(),
            "keyspaces" => KEYSPACE_ROWS.iter().map(|r| r.0).collect(),
            "deleterange" => DELETERANGE_ROWS.to_vec(),
            _ => vec![w],
        })
    }

    /// The medians of every row that ran, for `--chart`.
    fn results(&self) -> chart::Results {
        let config = self.config;
        let mut workloads = Vec::new();
        let mut points = Vec::new();
        for w in Self::rows().filter(|w| !DR_NOT_CHARTED.contains(w)) {
            let mut ran = false;
            for e in &self.engines {
                let key = (e.clone(), w);
                let (Some(ops), Some(p99)) = (self.ops.get(&key), self.p99.get(&key)) else {
                    continue;
                };
                ran = true;
                points.push(chart::Point {
                    workload: w.to_string(),
                    engine: e.clone(),
                    ops_per_sec: median(ops),
                    p99_us: median(p99),
                });
            }
            if ran {
                workloads.push(w.to_string());
            }
        }
        chart::Results {
            setup: format!(
                "{} keys of {KEY_BYTES} B, values of {} B, {} thread(s) (txn rows: 1 and 4), \
                 {} MiB cache each; median of {} round(s)",
                config.num, config.value_bytes, config.threads, config.cache_mib, config.rounds
            ),
            engines: self.engines.clone(),
            workloads,
            points,
        }
    }

    /// Median ops/s per workload and engine, and kevo's ratio to each peer.
    fn print_summary(&self) {
        let peers = &self.engines[1..];
        println!(
            "\nsummary: median ops/s (txn rows: commits/s; keyspaces batch 2: batches/s; \
             dr delete rows: keys deleted/s; dr compact: 1/s) over {} round(s){}",
            self.config.rounds,
            if peers.is_empty() {
                ""
            } else {
                "; kevo/x = kevo's ops/s over x's (> 1: kevo faster)"
            }
        );
        // The row names that ran, and room for the longest.
        let kevo = &self.engines[0];
        let width = Self::rows()
            .filter(|&w| self.ops.contains_key(&(kevo.clone(), w)))
            .map(str::len)
            .fold(13, usize::max);
        self.print_engine_header("workload", width);
        for w in Self::rows() {
            let get = |e: &String| self.ops.get(&(e.clone(), w)).map(|v| median(v));
            let Some(kevo) = get(&self.engines[0]) else {
                continue;
            };
            print!("{w:<width$}");
            for e in &self.engines {
                match get(e) {
                    // `dr compact`'s 1/s and the like: not 0 or 1.
                    Some(v) if v < 100.0 => print!(" {v:>11.2}"),
                    Some(v) => print!(" {v:>11.0}"),
                    None => print!(" {:>11}", "-"),
                }
            }
            print_ratios(kevo, peers.iter().map(get));
        }
    }

    /// The header of a per-engine table: `first` in a column `width`
    /// wide, a column per engine, then one per peer for kevo's ratio.
    fn print_engine_header(&self, first: &str, width: usize) {
        print!("{first:<width$}");
        for e in &self.engines {
            print!(" {e:>11}");
        }
        for p in &self.engines[1..] {
            print!(" {:>13}", format!("kevo/{p}"));
        }
        println!();
    }

    /// Median resource figures per row and engine (lower is better), and
    /// kevo's ratio to each peer.
    fn print_resources(&self) {
        let kevo = &self.engines[0];
        if !RESOURCE_ROWS
            .iter()
            .any(|&r| self.resources.contains_key(&(kevo.clone(), r)))
        {
            return;
        }
        let peers = &self.engines[1..];
        println!(
            "\nresources: medians over {} round(s), lower is better{}",
            self.config.rounds,
            if peers.is_empty() {
                ""
            } else {
                "; kevo/x = kevo's figure over x's (< 1: kevo smaller)"
            }
        );
        self.print_engine_header("figure", 20);
        for row in RESOURCE_ROWS {
            let get = |e: &String| self.resources.get(&(e.clone(), row)).map(|v| median(v));
            let Some(mine) = get(kevo) else {
                continue;
            };
            print!("{row:<20}");
            for e in &self.engines {
                match get(e) {
                    Some(v) => print!(" {v:>11.1}"),
                    None => print!(" {:>11}", "-"),
                }
            }
            print_ratios(mine, peers.iter().map(get));
        }
    }

    /// Median txn abort rate per row and engine.
    fn print_aborts(&self) {
        println!(
            "\ntxn abort rate: aborts / (commits + aborts), %, median over {} round(s)",
            self.config.rounds
        );
        print!("{:<13}", "txn");
        for e in &self.engines {
            print!(" {e:>11}");
        }
        println!();
        for (name, _, _) in TXN_ROWS {
            print!("{name:<13}");
            for e in &self.engines {
                match self.aborts.get(&(e.clone(), name)) {
                    Some(v) => print!(" {:>11.2}", median(v) * 100.0),
                    None => print!(" {:>11}", "n/a"),
                }
            }
            println!();
        }
    }

    fn print_big(&self, distinct: u64) {
        let config = self.config;
        let entry = (KEY_BYTES + config.value_bytes) as u64;
        println!(
            "\nfillbig: {} puts of uniformly random keys in 0..{} ({} distinct), {:.1} MiB \
             written by the user, {:.1} MiB live; median of {} round(s)",
            config.num,
            config.num,
            distinct,
            (config.num * entry) as f64 / (1 << 20) as f64,
            (distinct * entry) as f64 / (1 << 20) as f64,
            config.rounds
        );
        println!(
            "  wamp io  = /proc/self/io write_bytes during the puts, flush and close / user bytes \
             (net: less cancelled write-back)"
        );
        println!(
            "  wamp own = the engine's own count (kevo: WAL + table bytes from Stats) / user bytes"
        );
        println!(
            "  samp     = allocated bytes of the directory after flush and close / live bytes \
             (distinct keys x {entry} B); disk = du, files = ls"
        );
        println!(
            "  stall    = own: the engine's Stats::stall_time (kevo); >1ms: the sum of put \
             latencies above 1 ms (every engine)"
        );
        println!(
            "{:<8} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "engine",
            "ops/s",
            "p99 µs",
            "max ms",
            "wamp io",
            "net",
            "own",
            "samp",
            "disk MiB",
            "files MiB",
            "stall own",
            "stall>1ms",
            "close s"
        );
        for engine in &self.engines {
            let Some(all) = self.big.get(engine) else {
                continue;
            };
            let b = Big::median(all);
            let opt = |v: Option<f64>, prec: usize| {
                v.map_or_else(|| "-".to_string(), |v| format!("{v:.prec$}"))
            };
            println!(
                "{:<8} {:>10.0} {:>9.1} {:>9.1} {:>8.2} {:>8.2} {:>8} {:>6.2} {:>9.1} {:>9.1} {:>9} {:>9.3} {:>8.2}",
                engine,
                b.ops_per_sec,
                b.p99_us,
                b.max_us / 1000.0,
                b.wamp_io,
                b.wamp_net,
                opt(b.wamp_own, 2),
                b.samp,
                b.disk_mib,
                b.apparent_mib,
                opt(b.stall_own, 3),
                b.stall_slow,
                b.flush_close_secs
            );
        }
    }
}

fn run(config: &Config) -> Res<()> {
    let mut engines = vec!["kevo".to_string()];
    engines.extend(config.compare.iter().cloned());
    let values = Values::new(config.value_bytes);
    let mut bench = Bench {
        config,
        engines,
        values: &values,
        ops: HashMap::new(),
        p99: HashMap::new(),
        big: HashMap::new(),
        aborts: HashMap::new(),
        stats: HashMap::new(),
        resources: HashMap::new(),
        plan: DeletePlan::new(config.num),
        dr: HashMap::new(),
    };
    let tmp = std::env::temp_dir();
    println!(
        "kevo db_bench: {} keys of {KEY_BYTES} B, values of {} B (~50% compressible), {} thread(s)",
        config.num, config.value_bytes, config.threads
    );
    if bench.comparing() {
        println!(
            "engines: {}; {} round(s); cache {} MiB each; no fsync per write except in fillsync",
            bench.engines.join(", "),
            config.rounds,
            config.cache_mib
        );
        for e in &bench.engines {
            println!("options {e}: {}", engine::describe(e, config));
        }
        println!(
            "order: phase by phase (fillseq | fillrandom..deleterandom | fillsync | txn | \
             keyspaces, row by row | deleterange | fillbig), \
             each engine in turn on its own fresh database, closed before the next engine \
             opens; engine order rotates each round"
        );
    } else {
        println!("options: {}", engine::describe("kevo", config));
    }
    println!(
        "temp dir: {}; one database for fillrandom..deleterandom, fresh ones for fillseq, \
         fillsync, txn, each keyspaces row, deleterange and fillbig",
        tmp.display()
    );
    if cfg!(debug_assertions) {
        println!("note: debug build; `cargo xtask bench` builds with optimisations");
    }
    let num = config.num;
    let needs_chain = WORKLOADS[1..10].iter().any(|w| bench.wanted(w));
    // fillrandom's order, which the keyspaces and deleterange rows put in
    // as well.
    let order = if needs_chain
        || ["keyspaces", "deleterange", "checkpoint"]
            .iter()
            .any(|w| bench.wanted(w))
    {
        workload::permutation(num, 7)
    } else {
        Vec::new()
    };
    let again = if bench.wanted("overwrite") {
        workload::permutation(num, 11)
    } else {
        Vec::new()
    };
    let distinct = if bench.wanted("fillbig") {
        workload::fill_big_distinct(config)
    } else {
        0
    };
    for round in 0..config.rounds {
        bench.round(round, &order, &again, distinct)?;
    }
    bench.print_stats();
    if bench.comparing() || config.rounds > 1 {
        bench.print_summary();
        if !bench.aborts.is_empty() {
            bench.print_aborts();
        }
    }
    bench.print_resources();
    if !bench.dr.is_empty() {
        bench.print_deleterange();
    }
    if bench.wanted("fillbig") {
        bench.print_big(distinct);
    }
    if let Some(path) = &config.chart {
        chart::write(&bench.results(), path)?;
        println!(
            "\nchart: {} (results: {})",
            path.display(),
            chart::json_path(path).display()
        );
    }
    Ok(())
}

/// `--chart-from FILE.json`: draws saved results, runs nothing.
fn chart_only(json: &std::path::Path, config: &Config) -> Res<()> {
    let svg = config
        .chart
        .clone()
        .unwrap_or_else(|| json.with_extension("svg"));
    if svg == json {
        return Err(format!(
            "--chart-from {} would draw over itself; name the SVG with --chart",
            json.display()
        ));
    }
    chart::render_from(json, &svg)?;
    println!("chart: {}", svg.display());
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
    let result = match &config.chart_from {
        Some(json) => chart_only(json, &config),
        None => run(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kevo-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
