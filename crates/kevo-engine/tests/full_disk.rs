//! A real full disk: a 4 MiB tmpfs mounted in a private mount namespace
//! (`unshare --user --map-root-user --mount`, so nothing is left mounted
//! whatever happens). The database fills it up, turns read-only, and once
//! a ballast file is deleted takes writes again by itself, with every
//! acknowledged write intact, also after a reopen.
//!
//! The test binary runs itself inside the namespace. Where the machine
//! allows no such mount (no `unshare`, no user namespaces), the test says
//! why and passes without running: the same behaviour is tested through
//! `FaultFs` in `tests/faults.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kevo_engine::{Db, Error, Options, SyncMode};

const CHILD_ENV: &str = "KEVO_FULL_DISK_MOUNT";
/// The child's exit code when the mount itself fails.
const NO_MOUNT: i32 = 77;

#[test]
fn a_real_full_disk_is_resumed_without_reopening() {
    if let Ok(mount) = std::env::var(CHILD_ENV) {
        run_on(Path::new(&mount));
        return;
    }
    let mount = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("test binary");
    let script = format!(
        "mount -t tmpfs -o size=4m kevo-full-disk '{dir}' || exit {NO_MOUNT}; exec '{exe}' --exact a_real_full_disk_is_resumed_without_reopening --nocapture --test-threads 1",
        dir = mount.path().display(),
        exe = exe.display(),
    );
    let output = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .env(CHILD_ENV, mount.path())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            println!("skipped: cannot run unshare to mount a small file system: {e}");
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match output.status.code() {
        Some(0) => println!("{text}"),
        Some(NO_MOUNT) => println!("skipped: this machine allows no tmpfs mount here:\n{text}"),
        Some(1) if text.contains("unshare failed") => {
            println!("skipped: no user and mount namespaces here:\n{text}");
        }
        _ => panic!("the full-disk run failed ({}):\n{text}", output.status),
    }
}

fn key(i: u32) -> String {
    format!("key{i:06}")
}

/// 1 KiB that LZ4 cannot shrink, different for every key.
fn value(i: u32) -> Vec<u8> {
    common::noise(u64::from(i), 1024)
}

/// Three ways to fill the disk: a flush (small memtables), a synced WAL
/// append and a gathered one (a memtable larger than the disk).
fn run_on(mount: &Path) {
    let small_memtables = Options::default()
        .memtable_bytes(64 * 1024)
        .wal_segment_bytes(64 * 1024)
        .target_file_bytes(64 * 1024)
        .base_level_bytes(256 * 1024)
        .sync_mode(SyncMode::Always);
    let large_memtable = Options::default()
        .memtable_bytes(16 << 20)
        .wal_segment_bytes(256 * 1024);
    for (name, options) in [
        ("flush", small_memtables),
        (
            "synced WAL",
            large_memtable.clone().sync_mode(SyncMode::Always),
        ),
        ("gathered WAL", large_memtable.sync_mode(SyncMode::None)),
    ] {
        println!("--- the disk fills up during a {name} write");
        fill_and_resume(mount, options);
    }
}

fn fill_and_resume(mount: &Path, options: Options) {
    let ballast = mount.join("ballast");
    std::fs::write(&ballast, value(u32::MAX).repeat(1024)).expect("ballast");
    let dir = mount.join("db");
    let db = Db::open_with(&dir, options.clone()).expect("open");
    let mut acknowledged = 0;
    let failed = loop {
        match db.put(key(acknowledged), value(acknowledged)) {
            Ok(()) => acknowledged += 1,
            Err(e) => break e,
        }
        assert!(acknowledged < 100_000, "4 MiB never filled up");
    };
    println!("the disk filled up after {acknowledged} writes: {failed}");
    assert!(
        matches!(failed, Error::ReadOnly { .. } | Error::Io { .. }),
        "{failed}"
    );
    assert!(db.stats().read_only_cause.is_some());
    for i in 0..acknowledged {
        assert_eq!(
            db.get(key(i)).expect("read while full"),
            Some(value(i).into())
        );
    }

    std::fs::remove_file(&ballast).expect("make room");
    let started = Instant::now();
    loop {
        match db.put(key(acknowledged), value(acknowledged)) {
            Ok(()) => break,
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "no write taken 20 s after making room: {e}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    acknowledged += 1;
    println!(
        "writes taken again {} ms after making room (resumes: {})",
        started.elapsed().as_millis(),
        db.stats().resumes
    );
    for _ in 0..50 {
        db.put(key(acknowledged), value(acknowledged))
            .expect("put after resume");
        acknowledged += 1;
    }
    db.close().expect("close");
    let db = Db::open_with(&dir, options).expect("reopen");
    for i in 0..acknowledged {
        assert_eq!(
            db.get(key(i)).expect("get"),
            Some(value(i).into()),
            "write {i}"
        );
    }
    db.close().expect("close");
    println!("all {acknowledged} acknowledged writes read back after a reopen");
    std::fs::remove_dir_all(&dir).expect("clean up");
}
