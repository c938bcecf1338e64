//! The Raft types of the service ([`TypeConfig`], [`Request`],
//! [`Response`]) and opening a node's storage ([`open`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::log_store::LogStore;
use crate::state_machine::{self, StateMachine};

openraft::declare_raft_types!(
    /// The Raft types of a kevo-backed key-value service: [`Request`]s in
    /// the log, [`Response`]s from applying them, `u64` node ids, snapshots
    /// streamed from files.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A change to the replicated key-value state: the application data of one
/// Raft log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key` (a no-op if absent).
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

/// The longest key a [`Request`] may carry: kevo's own key limit.
pub const REQUEST_KEY_BYTES_MAX: usize = kevo_engine::KEY_BYTES_MAX;

/// The longest value a [`Request`] may carry: 8 MiB, well inside kevo's
/// 64 MiB value limit once the log entry's JSON has spelled each byte as up
/// to four characters.
pub const REQUEST_VALUE_BYTES_MAX: usize = 8 << 20;

impl Request {
    /// Checks the request against [`REQUEST_KEY_BYTES_MAX`] and
    /// [`REQUEST_VALUE_BYTES_MAX`]. Call it before `Raft::client_write`: an
    /// entry the log cannot store fails the append, which openraft treats
    /// as fatal. (An entry over the limits that reaches the state machine
    /// anyway is not applied, on every node alike: see [`Response`].)
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the limit.
    pub fn validate(&self) -> Result<()> {
        let (key, value) = match self {
            Request::Put { key, value } => (key, value.len()),
            Request::Delete { key } => (key, 0),
        };
        if key.len() > REQUEST_KEY_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "a key of {} bytes (at most {REQUEST_KEY_BYTES_MAX})",
                key.len()
            )));
        }
        if value > REQUEST_VALUE_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "a value of {value} bytes (at most {REQUEST_VALUE_BYTES_MAX})"
            )));
        }
        Ok(())
    }
}

/// The result of applying one log entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The log index the entry was applied at: the write's position in the
    /// replicated history (a version a client can compare).
    pub index: u64,
    /// Why the entry was not applied, if it was not: a request that fails
    /// [`Request::validate`] is skipped by every node alike (applying it
    /// would fail, and a failed apply stops openraft).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

/// Opens (creating if needed) the log store and the state machine of the
/// node whose directory is `dir`, with default kevo options.
///
/// # Errors
/// [`Error::Kevo`] if a database cannot be opened (for example another
/// process holds it); [`Error::Io`] for the directory's own files;
/// [`Error::Corruption`] for a damaged `SM_CURRENT`.
pub fn open(dir: impl AsRef<Path>) -> Result<(LogStore, StateMachine)> {
    open_with(dir, kevo_engine::Options::default())
}

/// [`open`] with kevo `options` for both databases.
///
/// # Errors
/// As [`open`].
pub fn open_with(
    dir: impl AsRef<Path>,
    options: kevo_engine::Options,
) -> Result<(LogStore, StateMachine)> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // A node that has run before must still have its log: an empty one
    // would forget the node's vote, and Raft's safety with it.
    let log_dir = dir.join("log");
    if dir.join(state_machine::SM_CURRENT).exists() && !log_dir.exists() {
        return Err(Error::corruption(
            log_dir.display().to_string(),
            0,
            "the log of a node that has run before is missing; refusing to start with an empty one",
        ));
    }
    let log = LogStore::open(&log_dir, options.clone())?;
    let sm = StateMachine::open(dir, options)?;
    Ok((log, sm))
}
