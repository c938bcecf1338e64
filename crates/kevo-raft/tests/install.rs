//! Durability of kevo-raft across restarts: the log and vote survive a
//! reopen; a snapshot install stopped after any of its steps (as a crash
//! there would) leaves either the old state or the new one, never a mix,
//! and the directory clean; a damaged archive changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeSet;
use std::path::Path;

use kevo_raft::{InstallStep, LogStore, Request, StateMachine, TypeConfig};
use openraft::storage::{
    RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine,
    Snapshot,
};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogId, Vote,
};

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn put(index: u64, key: &str, value: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(Request::Put {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
        }),
    }
}

fn membership(index: u64, nodes: &[u64]) -> Entry<TypeConfig> {
    let voters: BTreeSet<u64> = nodes.iter().copied().collect();
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Membership(Membership::<u64, BasicNode>::new(vec![voters], None)),
    }
}

fn open(dir: &Path) -> (LogStore, StateMachine) {
    kevo_raft::open(dir).expect("open")
}

fn dump(sm: &StateMachine) -> Vec<(String, String)> {
    sm.dump()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
        .collect()
}

/// Names in `dir` and `dir/snapshots`, for checking that nothing is left.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.extend(
        std::fs::read_dir(dir.join("snapshots"))
            .unwrap()
            .map(|e| format!("snapshots/{}", e.unwrap().file_name().to_string_lossy())),
    );
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_vote_and_purge_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _sm) = open(dir.path());
        log.save_vote(&Vote::new(3, 2)).await.unwrap();
        let entries: Vec<_> = (1..=20).map(|i| put(i, &format!("k{i}"), "v")).collect();
        log.blocking_append(entries).await.unwrap();
        log.truncate(log_id(1, 16)).await.unwrap();
        log.purge(log_id(1, 4)).await.unwrap();
        log.save_committed(Some(log_id(1, 12))).await.unwrap();
    }
    let (mut log, _sm) = open(dir.path());
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 4)));
    assert_eq!(state.last_log_id, Some(log_id(1, 15)));
    let entries = log.try_get_log_entries(0..100).await.unwrap();
    let indexes: Vec<u64> = entries.iter().map(|e| e.get_log_id().index).collect();
    assert_eq!(indexes, (5..=15).collect::<Vec<_>>());
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 12)));
}

/// A leader-side state at log index 10 and its snapshot.
async fn leader_snapshot(dir: &Path) -> (StateMachine, Snapshot<TypeConfig>) {
    let (_log, mut sm) = open(dir);
    let mut entries = vec![membership(1, &[1, 2, 3])];
    entries.extend((2..=10).map(|i| put(i, &format!("key{i:02}"), &format!("new{i}"))));
    sm.apply(entries).await.unwrap();
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 10)));
    (sm, snapshot)
}

/// A follower-side state at log index 3.
async fn follower(dir: &Path) -> StateMachine {
    let (_log, mut sm) = open(dir);
    sm.apply([
        membership(1, &[1, 2, 3]),
        put(2, "old", "x"),
        put(3, "key02", "old2"),
    ])
    .await
    .unwrap();
    sm
}

const OLD: &[(&str, &str)] = &[("key02", "old2"), ("old", "x")];

fn new_state() -> Vec<(String, String)> {
    (2..=10)
        .map(|i| (format!("key{i:02}"), format!("new{i}")))
        .collect()
}

async fn receive(sm: &mut StateMachine, archive: &Path) -> Box<tokio::fs::File> {
    let mut incoming = sm.begin_receiving_snapshot().await.unwrap();
    let bytes = std::fs::read(archive).unwrap();
    use tokio::io::AsyncWriteExt;
    incoming.write_all(&bytes).await.unwrap();
    incoming.flush().await.unwrap();
    incoming
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_stopped_after_any_step_leaves_the_old_state_or_the_new() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (_leader, snapshot) = leader_snapshot(leader_dir.path()).await;
    let archive = leader_dir.path().join("snapshots/current.snap");
    let meta = snapshot.meta.clone();
    let steps = [
        InstallStep::Unpacked,
        InstallStep::Renamed,
        InstallStep::Opened,
        InstallStep::Committed,
        InstallStep::Swapped,
        InstallStep::Kept,
    ];
    for step in steps {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut sm = follower(dir.path()).await;
            sm.set_install_fault(Some(step));
            let incoming = receive(&mut sm, &archive).await;
            let stopped = sm.install_snapshot(&meta, incoming).await;
            assert!(stopped.is_err(), "{step:?}: the install was to stop");
        }
        // "Restart": every handle dropped, the directory opened again.
        let (_log, mut sm) = open(dir.path());
        let (applied, _) = sm.applied_state().await.unwrap();
        if step < InstallStep::Committed {
            let old: Vec<_> = OLD
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(dump(&sm), old, "{step:?}: the old state");
            assert_eq!(applied, Some(log_id(1, 3)), "{step:?}");
            assert_eq!(sm.generation(), 0);
        } else {
            assert_eq!(dump(&sm), new_state(), "{step:?}: the new state");
            assert_eq!(applied, Some(log_id(1, 10)), "{step:?}");
            assert_eq!(sm.generation(), 1);
            let current = sm.get_current_snapshot().await.unwrap().expect("kept");
            assert_eq!(current.meta, meta, "{step:?}: the received archive is kept");
        }
        let generation = format!("sm-{}", sm.generation());
        let mut want = vec![
            "SM_CURRENT".to_string(),
            "log".into(),
            generation,
            "snapshots".into(),
        ];
        if step >= InstallStep::Committed {
            want.push("snapshots/current.snap".into());
        }
        want.sort();
        assert_eq!(listing(dir.path()), want, "{step:?}: leftovers");

        // The same snapshot installs in full afterwards.
        let incoming = receive(&mut sm, &archive).await;
        sm.install_snapshot(&meta, incoming).await.unwrap();
        assert_eq!(
            dump(&sm),
            new_state(),
            "{step:?}: installed after the restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_snapshot_survives_a_reopen_and_a_damaged_one_changes_nothing() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (_leader, snapshot) = leader_snapshot(leader_dir.path()).await;
    let archive = leader_dir.path().join("snapshots/current.snap");
    let dir = tempfile::tempdir().unwrap();

    // A damaged archive: one flipped byte in the middle (a table's data).
    let damaged = leader_dir.path().join("damaged.snap");
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&damaged, bytes).unwrap();
    {
        let mut sm = follower(dir.path()).await;
        let incoming = receive(&mut sm, &damaged).await;
        let err = sm
            .install_snapshot(&snapshot.meta, incoming)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("orruption"), "{err}");
        let old: Vec<_> = OLD
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(dump(&sm), old);
        // Metadata that does not match the archive is refused too.
        let mut other = snapshot.meta.clone();
        other.last_log_id = Some(log_id(1, 9));
        let incoming = receive(&mut sm, &archive).await;
        assert!(sm.install_snapshot(&other, incoming).await.is_err());
        assert_eq!(dump(&sm), old);

        let incoming = receive(&mut sm, &archive).await;
        sm.install_snapshot(&snapshot.meta, incoming).await.unwrap();
        // Applying goes on on top of the installed state.
        sm.apply([put(11, "key11", "after")]).await.unwrap();
    }
    let (_log, mut sm) = open(dir.path());
    let mut want = new_state();
    want.push(("key11".into(), "after".into()));
    assert_eq!(dump(&sm), want);
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 11)));
    assert_eq!(membership, snapshot.meta.last_membership);
    assert_eq!(
        sm.get_current_snapshot().await.unwrap().unwrap().meta,
        snapshot.meta
    );
    assert_eq!(
        listing(dir.path()),
        [
            "SM_CURRENT",
            "log",
            "sm-1",
            "snapshots",
            "snapshots/current.snap"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_missing_its_log_or_its_state_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    drop(follower(dir.path()).await);
    std::fs::write(dir.path().join("SM_CURRENT"), "x\n").unwrap();
    let err = kevo_raft::open(dir.path())
        .err()
        .expect("a damaged SM_CURRENT");
    assert!(matches!(err, kevo_raft::Error::Corruption { .. }), "{err}");
    std::fs::write(dir.path().join("SM_CURRENT"), "7\n").unwrap();
    let err = kevo_raft::open(dir.path())
        .err()
        .expect("a missing generation");
    assert!(err.to_string().contains("sm-7"), "{err}");
    std::fs::write(dir.path().join("SM_CURRENT"), "0\n").unwrap();
    std::fs::remove_dir_all(dir.path().join("log")).unwrap();
    let err = kevo_raft::open(dir.path()).err().expect("a missing log");
    assert!(err.to_string().contains("log of a node"), "{err}");
    // Nothing was created by the refusals.
    assert!(!dir.path().join("log").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_limits_are_skipped_alike_and_large_applies_are_split() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = open(dir.path());
    let too_long = Request::Put {
        key: vec![b'k'; kevo_raft::REQUEST_KEY_BYTES_MAX + 1],
        value: b"v".to_vec(),
    };
    assert!(too_long.validate().is_err());
    let entry = Entry {
        log_id: log_id(1, 1),
        payload: EntryPayload::Normal(too_long),
    };
    let replies = sm.apply([entry, put(2, "ok", "yes")]).await.unwrap();
    assert!(
        replies[0]
            .rejected
            .as_deref()
            .unwrap_or("")
            .contains("key of"),
        "{replies:?}"
    );
    assert_eq!(replies[1].rejected, None);
    assert_eq!(dump(&sm), [("ok".to_string(), "yes".to_string())]);

    // Six values of 7 MiB: one apply of 42 MiB, written in parts under
    // kevo's batch limit, all of it applied.
    let big = "x".repeat(7 << 20);
    let entries: Vec<_> = (3..9).map(|i| put(i, &format!("big{i}"), &big)).collect();
    sm.apply(entries).await.unwrap();
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 8)));
    assert_eq!(sm.get("big8").unwrap().map(|v| v.len()), Some(7 << 20));
    assert_eq!(sm.dump().unwrap().len(), 7);
}
