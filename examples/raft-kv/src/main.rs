//! `raft-kv`: one node of a replicated key-value service: openraft for
//! consensus, kevo (through `kevo-raft`) for the log and the state, HTTP
//! (axum) for clients, administration and the Raft RPCs between nodes.
//!
//! ```text
//! raft-kv --id 1 --addr 127.0.0.1:21001 --dir /tmp/raft-kv/1
//! ```
//!
//! `cluster.sh` beside this crate starts three nodes on localhost and makes
//! them one cluster; `docs/raft.md` shows the calls; the kill test
//! (`tests/kill.rs`, `cargo xtask raft-kill`) runs them as separate
//! processes and kills them with SIGKILL.

mod api;
mod memstore;
mod network;
#[cfg(feature = "rocksdb")]
mod rocks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use openraft::{Config, Raft, SnapshotPolicy};

/// One node of a replicated key-value service on kevo.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// This node's id in the cluster (unique, above 0).
    #[arg(long)]
    id: u64,
    /// The address to listen on, which is also this node's address for the
    /// others (host:port).
    #[arg(long)]
    addr: String,
    /// The node's directory (created if missing; reused on restart).
    #[arg(long)]
    dir: PathBuf,
    /// Build a snapshot after this many applied entries.
    #[arg(long, default_value_t = 5000)]
    snapshot_logs: u64,
    /// Entries kept in the log behind the last snapshot (a follower further
    /// behind than this is sent the snapshot instead).
    #[arg(long, default_value_t = 1000)]
    keep_logs: u64,
    /// Leader heartbeat interval, in milliseconds.
    #[arg(long, default_value_t = 100)]
    heartbeat_ms: u64,
    /// Lower bound of the election timeout, in milliseconds (the upper
    /// bound is twice this).
    #[arg(long, default_value_t = 400)]
    election_ms: u64,
    /// Where the log and state live: `kevo` (the node's directory),
    /// `memory` (openraft's in-memory store design, nothing survives a
    /// restart: the benchmark's upper bound), or with the `rocksdb` feature
    /// `rocksdb` / `rocksdb-synced` (openraft's raft-kv-rocksdb store design:
    /// the log in RocksDB, appends unsynced / synced; the state in memory).
    #[arg(long, default_value = "kevo")]
    store: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config {
        cluster_name: "kevo-raft-kv".into(),
        heartbeat_interval: args.heartbeat_ms,
        election_timeout_min: args.election_ms,
        election_timeout_max: args.election_ms * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(args.snapshot_logs),
        max_in_snapshot_log_to_keep: args.keep_logs,
        ..Default::default()
    }
    .validate()?;

    let config = Arc::new(config);
    let network = network::Network::new()?;
    let (raft, state) = match args.store.as_str() {
        "kevo" => {
            let (log_store, state) = kevo_raft::open(&args.dir)?;
            let raft = Raft::new(args.id, config, network, log_store, state.clone()).await?;
            (raft, api::Store::Kevo(state))
        }
        "memory" => {
            let state = memstore::MemStateMachine::new(args.dir.join("memory"))?;
            let log_store = memstore::MemLog::default();
            let raft = Raft::new(args.id, config, network, log_store, state.clone()).await?;
            (raft, api::Store::Memory(state))
        }
        #[cfg(feature = "rocksdb")]
        "rocksdb" | "rocksdb-synced" => {
            let synced = args.store == "rocksdb-synced";
            let state = memstore::MemStateMachine::new(args.dir.join("memory"))?;
            let log_store = rocks::RocksLog::open(&args.dir.join("rocksdb"), synced)?;
            let raft = Raft::new(args.id, config, network, log_store, state.clone()).await?;
            (raft, api::Store::Memory(state))
        }
        other => {
            let stores = if cfg!(feature = "rocksdb") {
                "`kevo`, `memory`, `rocksdb` or `rocksdb-synced`"
            } else {
                "`kevo` or `memory` (`rocksdb` needs the feature of that name)"
            };
            return Err(format!("--store {other}: {stores}").into());
        }
    };
    let app = Arc::new(api::App {
        raft: raft.clone(),
        state,
    });

    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    eprintln!("raft-kv node {} listening on {}", args.id, args.addr);
    axum::serve(listener, api::router(app))
        .with_graceful_shutdown(stop_signal())
        .await?;
    // A clean stop: Raft's tasks end, then the databases close (syncing).
    let _ = tokio::time::timeout(Duration::from_secs(5), raft.shutdown()).await;
    Ok(())
}

/// Ctrl-C or SIGTERM: stop cleanly (a SIGKILL is what the kill test sends).
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
