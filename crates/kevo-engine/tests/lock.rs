//! `LOCK`: a second opener of the same directory, in this process or in
//! another one, gets `Error::Busy`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::process::Command;

use kevo_engine::{Db, Error};

const CHILD_ENV: &str = "KEVO_LOCK_TEST_DIR";

/// The tests here run one at a time: while a test spawns its child process,
/// the child briefly holds copies of this process's descriptors (between
/// `fork` and `exec`), and with them any lock another test just released.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_second_open_in_this_process_is_busy() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open(dir.path()).expect("open");
    match Db::open(dir.path()) {
        Err(Error::Busy { path, .. }) => assert_eq!(path, dir.path()),
        other => panic!("expected Busy, got {other:?}"),
    }
    db.close().expect("close");
    // Released by close: a new open works.
    let db = Db::open(dir.path()).expect("reopen after close");
    drop(db);
    // Released by drop too.
    Db::open(dir.path()).expect("reopen after drop");
}

/// Run as a child process by the test below: tries to open the directory
/// named in the environment and reports what happened through its exit code.
#[test]
fn lock_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Not the child: nothing to do.
    };
    match Db::open(&dir) {
        Err(Error::Busy { .. }) => std::process::exit(42),
        Err(e) => {
            eprintln!("child: unexpected error {e}");
            std::process::exit(1)
        }
        Ok(_) => std::process::exit(0),
    }
}

#[test]
fn a_second_open_in_another_process_is_busy() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open(dir.path()).expect("open");
    db.put("k", "v").expect("put");
    let child = |dir: &std::path::Path| {
        Command::new(std::env::current_exe().expect("test binary"))
            .args(["lock_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .status()
            .expect("run the child")
    };
    assert_eq!(
        child(dir.path()).code(),
        Some(42),
        "the child must get Busy"
    );
    db.close().expect("close");
    // Once closed, the other process may open it.
    assert_eq!(child(dir.path()).code(), Some(0), "the child must open it");
}
