//! The kill test: three `raft-kv` processes, a client writing without
//! pause (puts and deletes, each retried until acknowledged, with
//! linearizable reads of its own writes along the way), while the test
//! kills nodes with SIGKILL and restarts them from their directories:
//! `KEVO_RAFT_KILLS` leaders (default 2; `cargo xtask raft-kill` runs 10),
//! then one follower, then one follower kept down until the leader has
//! purged the log it would need, so that it must install a snapshot.
//! After each kill a new leader must be elected and writes must go on; each
//! restarted node must catch up. At the end every node's state must equal
//! the state the acknowledged writes make.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SNAPSHOT_LOGS: u64 = 300;
const KEEP_LOGS: u64 = 50;

struct Node {
    id: u64,
    addr: String,
    dir: PathBuf,
    child: Option<Child>,
}

struct Cluster {
    nodes: Vec<Node>,
    root: PathBuf,
    client: reqwest::Client,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// An operation of the client's history.
#[derive(Clone, Debug)]
enum Op {
    Put(String, String),
    Delete(String),
}

/// The state a history of acknowledged operations makes.
fn model(ops: &[Op]) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    for op in ops {
        match op {
            Op::Put(k, v) => {
                state.insert(k.clone(), v.clone());
            }
            Op::Delete(k) => {
                state.remove(k);
            }
        }
    }
    state
}

impl Cluster {
    fn new(root: &Path) -> Cluster {
        let nodes = (1..=3)
            .map(|id| Node {
                id,
                addr: format!("127.0.0.1:{}", free_port()),
                dir: root.join(id.to_string()),
                child: None,
            })
            .collect();
        Cluster {
            nodes,
            root: root.to_path_buf(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        }
    }

    fn start(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(format!("{id}.log")))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_raft-kv"))
            .args(["--id", &id.to_string(), "--addr", &node.addr])
            .arg("--dir")
            .arg(&node.dir)
            .args(["--snapshot-logs", &SNAPSHOT_LOGS.to_string()])
            .args(["--keep-logs", &KEEP_LOGS.to_string()])
            .args(["--heartbeat-ms", "50", "--election-ms", "300"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    /// SIGKILL, no warning.
    fn kill(&mut self, id: u64) {
        let mut child = self.nodes[(id - 1) as usize].child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn addr(&self, id: u64) -> &str {
        &self.nodes[(id - 1) as usize].addr
    }

    fn alive(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id)
            .collect()
    }

    async fn call(&self, id: u64, path: &str, body: Option<Value>) -> Result<(u16, Value), String> {
        let url = format!("http://{}/{path}", self.addr(id));
        let request = match body {
            Some(body) => self.client.post(url).json(&body),
            None => self.client.get(url),
        };
        let reply = request.send().await.map_err(|e| e.to_string())?;
        let status = reply.status().as_u16();
        // Bodies axum itself writes (413, 422) are plain text: `Null`.
        let value = reply.json().await.unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// `call` until it answers 200 (the node may still be starting).
    async fn call_ok(&self, id: u64, path: &str, body: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.call(id, path, Some(body.clone())).await {
                Ok((200, value)) => return value,
                other => assert!(Instant::now() < deadline, "{path} on node {id}: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Node `id`'s `/kv/dump`: its pairs, applied index and generation.
    async fn dump(&self, id: u64) -> Value {
        self.call(id, "kv/dump", None).await.unwrap().1
    }

    async fn metrics(&self, id: u64) -> Option<Value> {
        match self.call(id, "cluster/metrics", None).await {
            Ok((200, m)) => Some(m),
            _ => None,
        }
    }

    /// The node that says it leads (and no node says otherwise), other
    /// than `not`; waits up to 20 s.
    async fn wait_leader(&self, not: Option<u64>) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for id in self.alive() {
                if Some(id) != not
                    && let Some(m) = self.metrics(id).await
                    && m["state"] == "Leader"
                {
                    return id;
                }
            }
            assert!(Instant::now() < deadline, "no leader elected in 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn applied_of(m: &Value) -> u64 {
        m["last_applied"]["index"].as_u64().unwrap_or(0)
    }

    /// Waits until node `id` has applied at least what the leader had when
    /// this was called.
    async fn wait_caught_up(&self, id: u64) {
        let leader = self.wait_leader(None).await;
        let target = Self::applied_of(&self.metrics(leader).await.unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(m) = self.metrics(id).await
                && Self::applied_of(&m) >= target
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not catch up to {target} in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The client: writes without pause, each operation retried (on any node,
/// following leader hints) until acknowledged; every 20th operation also
/// reads its last put back through a linearizable get.
struct Writer {
    acked: Mutex<Vec<Op>>,
    count: AtomicUsize,
    stop: AtomicBool,
    reads: AtomicUsize,
}

/// Sends `body` to `path` until a node answers 200, starting with the node
/// `guess` and following leader hints (`guess` is left at the node that
/// answered); returns the answer.
async fn until_ok(
    cluster: &tokio::sync::RwLock<Cluster>,
    guess: &mut u64,
    path: &str,
    body: &Value,
) -> Value {
    loop {
        let reply = cluster
            .read()
            .await
            .call(*guess, path, Some(body.clone()))
            .await;
        match reply {
            Ok((200, answer)) => return answer,
            Ok((421, hint)) if hint["leader_id"].as_u64().is_some() => {
                *guess = hint["leader_id"].as_u64().unwrap_or(1);
            }
            _ => {
                *guess = *guess % 3 + 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn write_loop(cluster: Arc<tokio::sync::RwLock<Cluster>>, writer: Arc<Writer>) {
    let mut guess = 1u64;
    let mut seq = 0u64;
    while !writer.stop.load(Ordering::Relaxed) {
        seq += 1;
        let op = if seq.is_multiple_of(10) {
            Op::Delete(format!("k{:06}", seq - 3))
        } else {
            Op::Put(format!("k{seq:06}"), format!("v{seq}"))
        };
        let (path, body) = match &op {
            Op::Put(k, v) => ("kv/put", json!({ "key": k, "value": v })),
            Op::Delete(k) => ("kv/delete", json!({ "key": k })),
        };
        // Retried until acknowledged, even after `stop` (the outcome of an
        // unacknowledged attempt is unknown; a put or delete applied twice
        // is applied once).
        until_ok(&cluster, &mut guess, path, &body).await;
        writer.acked.lock().unwrap().push(op.clone());
        writer.count.fetch_add(1, Ordering::Relaxed);
        if seq % 20 == 1
            && let Op::Put(key, value) = &op
        {
            // A linearizable read after an acknowledged write sees it.
            let got = until_ok(&cluster, &mut guess, "kv/get", &json!({ "key": key })).await;
            assert_eq!(got["value"], json!(value), "a linearizable read of {key}");
            writer.reads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn wait_acks(writer: &Writer, more: usize, what: &str) {
    let target = writer.count.load(Ordering::Relaxed) + more;
    let deadline = Instant::now() + Duration::from_secs(60);
    while writer.count.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "writes stopped: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_killed_mid_stream_lose_no_acknowledged_write() {
    let kills: usize = std::env::var("KEVO_RAFT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::new(root.path());
    for id in 1..=3 {
        cluster.start(id);
    }
    let a2 = cluster.addr(2).to_string();
    let a3 = cluster.addr(3).to_string();
    let a1 = cluster.addr(1).to_string();
    cluster
        .call_ok(1, "cluster/init", json!({ "nodes": { "1": a1 } }))
        .await;
    cluster
        .call_ok(1, "cluster/add-learner", json!({ "id": 2, "addr": a2 }))
        .await;
    cluster
        .call_ok(1, "cluster/add-learner", json!({ "id": 3, "addr": a3 }))
        .await;
    cluster
        .call_ok(
            1,
            "cluster/change-membership",
            json!({ "members": [1, 2, 3] }),
        )
        .await;

    let cluster = Arc::new(tokio::sync::RwLock::new(cluster));
    let writer = Arc::new(Writer {
        acked: Mutex::new(Vec::new()),
        count: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        reads: AtomicUsize::new(0),
    });
    // Bad input is refused before it reaches the log (a malformed body, a
    // body over the service's 64 KiB); the largest value it takes
    // replicates like any other.
    {
        let c = cluster.read().await;
        let malformed = c.call(1, "kv/put", Some(json!({ "key": 7 }))).await;
        assert!(matches!(malformed, Ok((422, _))), "{malformed:?}");
        let huge = c
            .call(
                1,
                "kv/put",
                Some(json!({ "key": "h", "value": "h".repeat(100_000) })),
            )
            .await;
        assert!(matches!(huge, Ok((413, _))), "{huge:?}");
    }
    let big = "b".repeat(60_000);
    until_ok(
        &cluster,
        &mut 1,
        "kv/put",
        &json!({ "key": "big", "value": big }),
    )
    .await;
    writer
        .acked
        .lock()
        .unwrap()
        .push(Op::Put("big".into(), big));
    let client = tokio::spawn(write_loop(cluster.clone(), writer.clone()));
    wait_acks(&writer, 100, "before any kill").await;

    for round in 0..kills {
        let leader = cluster.read().await.wait_leader(None).await;
        cluster.write().await.kill(leader);
        let new = cluster.read().await.wait_leader(Some(leader)).await;
        wait_acks(
            &writer,
            50,
            &format!("after killing leader {leader} (round {round})"),
        )
        .await;
        cluster.write().await.start(leader);
        cluster.read().await.wait_caught_up(leader).await;
        eprintln!("round {round}: killed leader {leader}, node {new} leads, {leader} caught up");
    }

    // A follower.
    let leader = cluster.read().await.wait_leader(None).await;
    let follower = leader % 3 + 1;
    cluster.write().await.kill(follower);
    wait_acks(&writer, 50, "after killing a follower").await;
    cluster.write().await.start(follower);
    cluster.read().await.wait_caught_up(follower).await;
    eprintln!("killed follower {follower}; caught up");

    // A follower down until the leader has purged the log it would need.
    let leader = cluster.read().await.wait_leader(None).await;
    let far = leader % 3 + 1;
    let before = cluster.read().await.dump(far).await;
    let last_index = {
        let c = cluster.read().await;
        c.metrics(far).await.unwrap()["last_log_index"]
            .as_u64()
            .unwrap_or(0)
    };
    cluster.write().await.kill(far);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = cluster.read().await;
        let leader = c.wait_leader(Some(far)).await;
        let purged = c
            .metrics(leader)
            .await
            .and_then(|m| m["purged"]["index"].as_u64());
        if purged.is_some_and(|p| p > last_index + 10) {
            break;
        }
        drop(c);
        assert!(
            Instant::now() < deadline,
            "the leader never purged past {last_index}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.write().await.start(far);
    cluster.read().await.wait_caught_up(far).await;
    let after = cluster.read().await.dump(far).await;
    assert!(
        after["generation"].as_u64() > before["generation"].as_u64(),
        "node {far} caught up without installing a snapshot: {} -> {}",
        before["generation"],
        after["generation"]
    );
    eprintln!("follower {far} fell behind the purged log; installed a snapshot");

    writer.stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(60), client)
        .await
        .unwrap()
        .unwrap();
    let acked = writer.acked.lock().unwrap().clone();
    let want = model(&acked);

    // Every node converges on the state the acknowledged writes make.
    let c = cluster.read().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in 1..=3 {
        loop {
            let dump = c.dump(id).await;
            let got: BTreeMap<String, String> =
                serde_json::from_value(dump["pairs"].clone()).unwrap();
            if got == want {
                break;
            }
            if Instant::now() > deadline {
                let missing: Vec<_> = want
                    .keys()
                    .filter(|k| !got.contains_key(*k))
                    .take(5)
                    .collect();
                let extra: Vec<_> = got
                    .keys()
                    .filter(|k| !want.contains_key(*k))
                    .take(5)
                    .collect();
                panic!(
                    "node {id} differs from the acknowledged writes: {} keys, want {}; missing {missing:?}, extra {extra:?} (logs in {})",
                    got.len(),
                    want.len(),
                    root.keep().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!(
        "{} acknowledged writes, {} linearizable reads, {kills} leader kills + 2 follower kills: every node equals the acknowledged history",
        acked.len(),
        writer.reads.load(Ordering::Relaxed)
    );
}
