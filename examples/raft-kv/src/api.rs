//! The HTTP API of a node (JSON in, JSON out).
//!
//! | route | body | what |
//! |---|---|---|
//! | `POST /kv/put` | `{"key","value"}` | replicated write; `{"index"}` once applied on the leader |
//! | `POST /kv/delete` | `{"key"}` | replicated delete |
//! | `POST /kv/get` | `{"key"}` | linearizable read (the leader's read index), `{"value": string or null}` |
//! | `GET /kv/dump` | | this node's whole state, as applied here (not linearizable) |
//! | `POST /cluster/init` | `{"nodes": {"1": "127.0.0.1:21001", ...}}` | initialise a new cluster with these voters |
//! | `POST /cluster/add-learner` | `{"id", "addr"}` | add a non-voting node; returns once it has caught up |
//! | `POST /cluster/change-membership` | `{"members": [1, 2, 3]}` | set the voters |
//! | `GET /cluster/metrics` | | openraft's metrics of this node |
//! | `POST /cluster/snapshot` | | build a snapshot now |
//! | `POST /raft/append`, `/raft/vote`, `/raft/snapshot` | openraft's RPCs | between nodes |
//!
//! Client calls on a node that is not the leader answer `421` with
//! `{"error", "leader_id", "leader_addr"}`; a key or value over the limits
//! of `kevo_raft::Request::validate` (keys up to 64 KiB, values up to
//! 8 MiB) `400`, a body over 64 KiB `413` (see `CLIENT_BODY_BYTES_MAX`); other failures `503` with `{"error"}`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kevo_raft::{Request, StateMachine, TypeConfig};

use crate::memstore::MemStateMachine;
use openraft::error::{ForwardToLeader, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{BasicNode, Raft};
use serde::Deserialize;
use serde_json::json;

/// What every handler shares.
pub(crate) struct App {
    pub(crate) raft: Raft<TypeConfig>,
    pub(crate) state: Store,
}

/// A node's whole state: the pairs, the last applied index, the number of
/// snapshots it installed.
type Dump = (Vec<(Vec<u8>, Vec<u8>)>, Option<u64>, u64);

/// The state machine the node reads from: kevo's, or the in-memory one of
/// `--store memory` (benchmarks only).
pub(crate) enum Store {
    Kevo(StateMachine),
    Memory(MemStateMachine),
}

impl Store {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, kevo_raft::Error> {
        match self {
            Store::Kevo(sm) => sm.get(key),
            Store::Memory(sm) => Ok(sm.get(key)),
        }
    }

    /// Every pair, the last applied index, the snapshots installed.
    fn dump(&self) -> Result<Dump, kevo_raft::Error> {
        match self {
            Store::Kevo(sm) => {
                let applied = sm.applied()?.0.map(|id| id.index);
                Ok((sm.dump()?, applied, sm.generation()))
            }
            Store::Memory(sm) => Ok((sm.dump(), sm.applied().map(|id| id.index), sm.generation())),
        }
    }
}

type Shared = State<Arc<App>>;

/// The largest client body (a put's key and value as JSON strings).
/// openraft 0.9 cancels an AppendEntries RPC that takes longer than
/// `heartbeat_interval` and sends it again: entries must stay small enough
/// for up to `max_payload_entries` (300) of them to cross in that time.
pub(crate) const CLIENT_BODY_BYTES_MAX: usize = 64 << 10;

/// The largest body a Raft RPC may have: 300 entries of a largest client
/// body, whose bytes the log's JSON spells with up to four characters.
pub(crate) const RAFT_BODY_BYTES_MAX: usize = 128 << 20;

pub(crate) fn router(app: Arc<App>) -> Router {
    // Raft RPCs carry up to `max_payload_entries` entries, each a client
    // body spelled as JSON again: far larger than a client body.
    let raft = Router::new()
        .route("/raft/append", post(raft_append))
        .route("/raft/vote", post(raft_vote))
        .route("/raft/snapshot", post(raft_snapshot))
        .layer(DefaultBodyLimit::max(RAFT_BODY_BYTES_MAX));
    Router::new()
        .route("/kv/put", post(put))
        .route("/kv/delete", post(delete))
        .route("/kv/get", post(read))
        .route("/kv/dump", get(dump))
        .route("/cluster/init", post(init))
        .route("/cluster/add-learner", post(add_learner))
        .route("/cluster/change-membership", post(change_membership))
        .route("/cluster/metrics", get(metrics))
        .route("/cluster/snapshot", post(snapshot))
        .layer(DefaultBodyLimit::max(CLIENT_BODY_BYTES_MAX))
        .merge(raft)
        .with_state(app)
}

/// A failed client call: `421` naming the leader, else `503`.
fn failure<E>(error: RaftError<u64, E>) -> Response
where
    E: std::error::Error + openraft::TryAsRef<ForwardToLeader<u64, BasicNode>>,
{
    if let Some(forward) = error.forward_to_leader::<BasicNode>() {
        let body = json!({
            "error": "not the leader",
            "leader_id": forward.leader_id,
            "leader_addr": forward.leader_node.as_ref().map(|n| n.addr.clone()),
        });
        return (StatusCode::MISDIRECTED_REQUEST, Json(body)).into_response();
    }
    let body = json!({ "error": error.to_string() });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

fn unavailable(error: impl std::fmt::Display) -> Response {
    let body = json!({ "error": error.to_string() });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

#[derive(Deserialize)]
struct Put {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

async fn write(app: &App, request: Request) -> Response {
    // Refused before it enters the log: an entry the log cannot store would
    // stop Raft on every node.
    if let Err(e) = request.validate() {
        let body = json!({ "error": e.to_string() });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    match app.raft.client_write(request).await {
        Ok(reply) => Json(json!({ "index": reply.data.index })).into_response(),
        Err(e) => failure(e),
    }
}

async fn put(State(app): Shared, Json(body): Json<Put>) -> Response {
    let request = Request::Put {
        key: body.key.into_bytes(),
        value: body.value.into_bytes(),
    };
    write(&app, request).await
}

async fn delete(State(app): Shared, Json(body): Json<Key>) -> Response {
    let request = Request::Delete {
        key: body.key.into_bytes(),
    };
    write(&app, request).await
}

async fn read(State(app): Shared, Json(body): Json<Key>) -> Response {
    if let Err(e) = app.raft.ensure_linearizable().await {
        return failure(e);
    }
    match app.state.get(body.key.as_bytes()) {
        Ok(value) => {
            let value = value.map(|v| String::from_utf8_lossy(&v).into_owned());
            Json(json!({ "value": value })).into_response()
        }
        Err(e) => unavailable(e),
    }
}

async fn dump(State(app): Shared) -> Response {
    let (pairs, applied, generation) = match app.state.dump() {
        Ok(dump) => dump,
        Err(e) => return unavailable(e),
    };
    let map: BTreeMap<String, String> = pairs
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect();
    Json(json!({
        "applied": applied,
        "generation": generation,
        "pairs": map,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct Init {
    nodes: BTreeMap<u64, String>,
}

async fn init(State(app): Shared, Json(body): Json<Init>) -> Response {
    let nodes: BTreeMap<u64, BasicNode> = body
        .nodes
        .into_iter()
        .map(|(id, addr)| (id, BasicNode { addr }))
        .collect();
    match app.raft.initialize(nodes).await {
        Ok(()) => Json(json!({})).into_response(),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
struct Learner {
    id: u64,
    addr: String,
}

async fn add_learner(State(app): Shared, Json(body): Json<Learner>) -> Response {
    let node = BasicNode { addr: body.addr };
    match app.raft.add_learner(body.id, node, true).await {
        Ok(reply) => Json(json!({ "index": reply.log_id.index })).into_response(),
        Err(e) => failure(e),
    }
}

#[derive(Deserialize)]
struct Members {
    members: BTreeSet<u64>,
}

async fn change_membership(State(app): Shared, Json(body): Json<Members>) -> Response {
    match app.raft.change_membership(body.members, false).await {
        Ok(reply) => Json(json!({ "index": reply.log_id.index })).into_response(),
        Err(e) => failure(e),
    }
}

async fn metrics(State(app): Shared) -> Response {
    let metrics = app.raft.metrics().borrow().clone();
    Json(metrics).into_response()
}

async fn snapshot(State(app): Shared) -> Response {
    match app.raft.trigger().snapshot().await {
        Ok(()) => Json(json!({})).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn raft_append(
    State(app): Shared,
    Json(request): Json<AppendEntriesRequest<TypeConfig>>,
) -> Response {
    Json(app.raft.append_entries(request).await).into_response()
}

async fn raft_vote(State(app): Shared, Json(request): Json<VoteRequest<u64>>) -> Response {
    Json(app.raft.vote(request).await).into_response()
}

async fn raft_snapshot(
    State(app): Shared,
    Json(request): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    Json(app.raft.install_snapshot(request).await).into_response()
}
