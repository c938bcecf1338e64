//! Where a put's time goes in its tail: 1 M puts of the bench's shape
//! (16-byte keys in random order, 100-byte values, the bench's `fillrandom`
//! then `overwrite`) into a fresh database at `DIR`, each timed alone, then
//! the latency percentiles, how many puts took over 1 and 5 ms, and what
//! the engine counted meanwhile: the slowest WAL rotation (memtable
//! switch), the time writers were slowed or stopped for flushes and
//! compactions.
//!
//! ```text
//! cargo build --release -p kevo-engine --example put_latency
//! target/release/examples/put_latency /tmp/pl [CACHE_MIB]
//! ```
//!
//! `DIR` is removed first. `CACHE_MIB` (default 64) is the block cache.

use std::time::{Duration, Instant};

use kevo_engine::{Db, Error, Options, Result};

mod common;

use common::{key, shuffled, value};

/// Puts every key once in a shuffled order (`seed`), timing each put.
fn puts(db: &Db, seed: u64) -> Result<Vec<Duration>> {
    let order = shuffled(seed);
    let value = value();
    let mut took = Vec::with_capacity(order.len());
    for i in order {
        let started = Instant::now();
        db.put(key(i), &value)?;
        took.push(started.elapsed());
    }
    Ok(took)
}

/// Writes `line` to stdout: a closed stdout (`| head`) is an error, not a
/// panic as `println!` would make it.
fn say(line: &str) -> Result<()> {
    use std::io::Write as _;
    writeln!(std::io::stdout(), "{line}").map_err(|source| Error::Io {
        context: "writing to stdout".to_string(),
        source,
    })
}

/// One line of percentiles for `took`.
fn report(name: &str, mut took: Vec<Duration>) -> String {
    took.sort_unstable();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    let over = |ms: u64| {
        took.iter()
            .filter(|d| d.as_millis() >= u128::from(ms))
            .count()
    };
    format!(
        "{name:<10} p50 {:>6.2} µs  p99 {:>7.2} µs  p99.9 {:>8.2} µs  max {:>9.1} µs  over 1 ms: {}  over 5 ms: {}",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(0.999).as_secs_f64() * 1e6,
        took.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
        over(1),
        over(5)
    )
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .ok_or_else(|| Error::InvalidArgument("usage: put_latency DIR [CACHE_MIB]".to_string()))?;
    let cache_mib: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Io {
                context: format!("removing {dir}"),
                source,
            });
        }
    }
    let db = Db::open_with(dir, Options::default().block_cache_bytes(cache_mib << 20))?;
    say(&report("fillrandom", puts(&db, 12_345)?))?;
    say(&report("overwrite", puts(&db, 67_890)?))?;
    let stats = db.stats();
    say(&format!(
        "slowest WAL rotation {} µs over {} segments; writers slowed or stopped {:.1} ms ({} slowdowns, {} stops)",
        stats.wal_slowest_rotation.as_micros(),
        stats.wal_segments_started,
        stats.stall_time.as_secs_f64() * 1e3,
        stats.slowdowns,
        stats.stops
    ))?;
    db.close()
}
