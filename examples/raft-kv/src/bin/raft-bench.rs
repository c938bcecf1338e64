//! `raft-bench`: replicated puts per second and their latency through a
//! 3-node `raft-kv` cluster on localhost, with the log and state in kevo
//! (`--store kevo`) against the same cluster on an in-memory store
//! (`--store memory`, openraft's memstore design: the upper bound, no disk).
//! Rounds are interleaved (kevo, memory, kevo, memory, ...), every round on
//! a fresh cluster; the table gives medians and the min-max spread.
//!
//! ```text
//! cargo xtask raft-bench [--rounds 3] [--seconds 5] [--clients 1,32] [--stores kevo,memory]
//! ```

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

type Failure = Box<dyn std::error::Error + Send + Sync>;

struct Options {
    rounds: usize,
    seconds: f64,
    clients: Vec<usize>,
    stores: Vec<String>,
    value_bytes: usize,
}

fn parse() -> Result<Options, Failure> {
    let mut options = Options {
        rounds: 3,
        seconds: 5.0,
        clients: vec![1, 32],
        stores: vec!["kevo".into(), "memory".into()],
        value_bytes: 100,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rounds" => options.rounds = value.parse()?,
            "--seconds" => options.seconds = value.parse()?,
            "--value-bytes" => options.value_bytes = value.parse()?,
            "--clients" => {
                options.clients = value.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            "--stores" => options.stores = value.split(',').map(String::from).collect(),
            other => return Err(format!("unknown flag {other}; see the file's docs").into()),
        }
    }
    Ok(options)
}

/// Three node processes; killed when dropped.
struct Cluster {
    children: Vec<Child>,
    addrs: Vec<String>,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, Failure> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

async fn post(
    client: &reqwest::Client,
    addr: &str,
    path: &str,
    body: &Value,
) -> Result<(u16, Value), Failure> {
    let reply = client
        .post(format!("http://{addr}/{path}"))
        .json(body)
        .send()
        .await?;
    let status = reply.status().as_u16();
    Ok((status, reply.json().await?))
}

async fn start(
    bin: &Path,
    store: &str,
    client: &reqwest::Client,
) -> Result<(Cluster, String), Failure> {
    let dir = std::env::temp_dir().join(format!("raft-bench-{}-{store}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut cluster = Cluster {
        children: Vec::new(),
        addrs: Vec::new(),
        dir: dir.clone(),
    };
    for id in 1..=3 {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let child = Command::new(bin)
            .args(["--id", &id.to_string(), "--addr", &addr, "--store", store])
            .arg("--dir")
            .arg(dir.join(id.to_string()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        cluster.children.push(child);
        cluster.addrs.push(addr);
    }
    let nodes: BTreeMap<String, String> = (1..=3)
        .map(|id| (id.to_string(), cluster.addrs[id - 1].clone()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(
        post(
            client,
            &cluster.addrs[0],
            "cluster/init",
            &json!({ "nodes": nodes })
        )
        .await,
        Ok((200, _))
    ) {
        if Instant::now() > deadline {
            return Err("the cluster did not initialise in 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The leader: whoever answers a put.
    loop {
        for addr in &cluster.addrs {
            if let Ok((200, _)) = post(
                client,
                addr,
                "kv/put",
                &json!({ "key": "warm", "value": "up" }),
            )
            .await
            {
                let leader = addr.clone();
                return Ok((cluster, leader));
            }
        }
        if Instant::now() > deadline {
            return Err("no leader in 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Measured {
    ops_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
}

/// `clients` loops putting distinct keys for `seconds` after a 1 s warm-up.
async fn run_load(
    client: &reqwest::Client,
    leader: &str,
    clients: usize,
    seconds: f64,
    value: &str,
) -> Result<Measured, Failure> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, leader, value) = (client.clone(), leader.to_string(), value.to_string());
        let (measuring, stop) = (measuring.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = json!({ "key": format!("c{c:03}-{i:010}"), "value": value });
                let started = Instant::now();
                let (status, reply) = post(&client, &leader, "kv/put", &body).await?;
                if status != 200 {
                    return Err(format!("put answered {status}: {reply}").into());
                }
                if measuring.load(Ordering::Relaxed) {
                    histogram.saturating_record(started.elapsed().as_micros() as u64);
                }
            }
            Ok::<_, Failure>(histogram)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for task in tasks {
        all.add(task.await??)?;
    }
    Ok(Measured {
        ops_per_sec: all.len() as f64 / elapsed,
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
        p999_us: all.value_at_quantile(0.999),
    })
}

fn median_and_spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    (median, values[0], values[values.len() - 1])
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let options = parse()?;
    let bin = std::env::current_exe()?.with_file_name("raft-kv");
    if !bin.exists() {
        return Err(format!(
            "{} is missing: build the raft-kv binary first",
            bin.display()
        )
        .into());
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let value = "x".repeat(options.value_bytes);
    let mut results: BTreeMap<(usize, String), Vec<Measured>> = BTreeMap::new();
    println!("store    clients round      puts/s   p50 us   p99 us p99.9 us");
    for round in 0..options.rounds {
        for &clients in &options.clients {
            for store in &options.stores {
                let (cluster, leader) = start(&bin, store, &client).await?;
                let m = run_load(&client, &leader, clients, options.seconds, &value).await?;
                drop(cluster);
                println!(
                    "{store:<8} {clients:>7} {round:>5} {:>11.0} {:>8} {:>8} {:>8}",
                    m.ops_per_sec, m.p50_us, m.p99_us, m.p999_us
                );
                results.entry((clients, store.clone())).or_default().push(m);
            }
        }
    }
    println!();
    println!("| clients | store | puts/s (median, min-max) | p50 µs | p99 µs | p99.9 µs |");
    println!("|---|---|---|---|---|---|");
    for ((clients, store), runs) in &results {
        let (ops, lo, hi) = median_and_spread(runs.iter().map(|m| m.ops_per_sec).collect());
        let (p50, _, _) = median_and_spread(runs.iter().map(|m| m.p50_us as f64).collect());
        let (p99, _, _) = median_and_spread(runs.iter().map(|m| m.p99_us as f64).collect());
        let (p999, _, _) = median_and_spread(runs.iter().map(|m| m.p999_us as f64).collect());
        println!(
            "| {clients} | {store} | {ops:.0} ({lo:.0}-{hi:.0}) | {p50:.0} | {p99:.0} | {p999:.0} |"
        );
    }
    Ok(())
}
