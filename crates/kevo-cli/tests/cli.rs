//! Every `kevo` command run as a process against real databases in temp
//! directories, its output parsed (JSON where the command has it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kevo_core::{OsFs, RangeTombstone, ValueKind, encode_internal_key};
use kevo_engine::{Db, Options, SyncMode};
use kevo_sstable::{TableOptions, TableWriter};
use serde_json::Value;

fn kevo(args: &[&str]) -> Output {
    kevo_with_stdin(args, "")
}

fn kevo_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kevo"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kevo");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exit code")
}

/// Runs `args`, expects exit 0, returns stdout.
fn ok(args: &[&str]) -> String {
    let output = kevo(args);
    assert_eq!(code(&output), 0, "{args:?}: {}", stderr(&output));
    stdout(&output)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A database of `n` keys `key00000..` with values `value-i`, in tables
/// and, for the last tenth, in the WAL only.
fn database(dir: &Path, n: u32) {
    let db = Db::open_with(dir, Options::default()).expect("open");
    for i in 0..n {
        db.put(format!("key{i:05}"), format!("value-{i}"))
            .expect("put");
        if i == n * 9 / 10 {
            db.flush().expect("flush");
        }
    }
    db.close().expect("close");
}

/// Opens `dir` for writing, waiting out a `LOCK` held for a moment by a
/// child process another test is starting: a child shares the parent's
/// open files, and so its `flock`s, from `fork` until its `exec` closes
/// them.
fn open_for_writing(dir: &Path) -> Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Db::open(dir) {
            Ok(db) => return db,
            Err(kevo_engine::Error::Busy { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("open: {e:?}"),
        }
    }
}

/// Names, sizes and contents of every file under `dir`.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| {
            let path = e.expect("entry").path();
            let bytes = std::fs::read(&path).unwrap_or_default();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn put_get_delete_round_trip_text_and_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    ok(&["put", "--create", s(&db), "greeting", "hello"]);
    ok(&["put", s(&db), "0x00ff", "\"line\\nnext\\x1b\""]);
    assert_eq!(ok(&["get", s(&db), "greeting"]), "hello\n");
    // Binary output is escaped for the terminal...
    assert_eq!(ok(&["get", s(&db), "0x00ff"]), "line\\x0anext\\x1b\n");
    // ... and exact in JSON.
    let got = json(&ok(&["--json", "get", s(&db), "0x00ff"]));
    assert_eq!(got["key_hex"], "00ff");
    assert_eq!(got["value"], "line\nnext\u{1b}");
    ok(&["delete", s(&db), "greeting"]);
    let missing = json(&ok(&["--json", "get", s(&db), "greeting"]));
    assert_eq!(missing["value"], Value::Null);
    let output = kevo(&["get", s(&db), "greeting"]);
    assert_eq!(code(&output), 0);
    assert!(stderr(&output).contains("not found"));
}

#[test]
fn a_path_that_is_not_a_database_is_an_error_that_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nothing-here");
    for args in [
        vec!["get", s(&missing), "k"],
        vec!["put", s(&missing), "k", "v"],
        vec!["delete", s(&missing), "k"],
        vec!["scan", s(&missing)],
        vec!["stats", s(&missing)],
        vec!["lsm", s(&missing)],
        vec!["check", s(&missing)],
        vec!["compact", s(&missing)],
        vec!["export", s(&missing)],
        vec!["repair", s(&missing)],
        vec!["shell", s(&missing)],
        vec!["load", s(&missing), "/dev/null"],
    ] {
        let output = kevo(&args);
        assert_eq!(code(&output), 2, "{args:?}");
        assert!(!stderr(&output).is_empty(), "{args:?}");
        assert!(!missing.exists(), "{args:?} created the directory");
    }
    // An existing empty directory is not a database either, and stays empty.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    assert_eq!(code(&kevo(&["get", s(&empty), "k"])), 2);
    assert_eq!(code(&kevo(&["put", s(&empty), "k", "v"])), 2);
    assert_eq!(code(&kevo(&["repair", s(&empty)])), 2);
    assert_eq!(code(&kevo(&["check", s(&empty)])), 2);
    assert_eq!(code(&kevo(&["shell", s(&empty)])), 2);
    assert_eq!(std::fs::read_dir(&empty).expect("list").count(), 0);
}

#[test]
fn usage_errors_exit_2_and_help_shows_examples() {
    assert_eq!(code(&kevo(&["frobnicate"])), 2);
    assert_eq!(code(&kevo(&["get"])), 2);
    assert_eq!(code(&kevo(&["put", "/tmp/x", "0xabc", "v"])), 2, "odd hex");
    for command in [
        vec!["--help"],
        vec!["shell", "--help"],
        vec!["get", "--help"],
        vec!["put", "--help"],
        vec!["delete", "--help"],
        vec!["scan", "--help"],
        vec!["load", "--help"],
        vec!["export", "--help"],
        vec!["stats", "--help"],
        vec!["lsm", "--help"],
        vec!["check", "--help"],
        vec!["repair", "--help"],
        vec!["compact", "--help"],
        vec!["sst", "dump", "--help"],
        vec!["sst", "scan", "--help"],
        vec!["sst", "verify", "--help"],
        vec!["sst", "props", "--help"],
        vec!["sst", "layout", "--help"],
        vec!["wal", "dump", "--help"],
        vec!["wal", "verify", "--help"],
        vec!["manifest", "dump", "--help"],
    ] {
        let help = ok(&command);
        assert!(help.contains("Examples"), "{command:?}: {help}");
    }
}

#[test]
fn scan_honours_bounds_prefix_limit_direction_and_keys_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    database(dir.path(), 200);
    let d = s(dir.path());
    let all = json_lines(&ok(&["--json", "scan", d]));
    assert_eq!(all.len(), 200);
    assert_eq!(all[0]["key"], "key00000");
    assert_eq!(all[0]["value"], "value-0");
    assert_eq!(all[199]["key"], "key00199");

    let some = json_lines(&ok(&[
        "--json", "scan", d, "--start", "key00010", "--end", "key00020",
    ]));
    let keys: Vec<&str> = some
        .iter()
        .map(|v| v["key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys.len(), 10);
    assert_eq!((keys[0], keys[9]), ("key00010", "key00019"));

    let back = json_lines(&ok(&[
        "--json",
        "scan",
        d,
        "--prefix",
        "key001",
        "--reverse",
        "--limit",
        "3",
        "--keys-only",
    ]));
    let keys: Vec<&str> = back
        .iter()
        .map(|v| v["key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys, ["key00199", "key00198", "key00197"]);
    assert!(back.iter().all(|v| v.get("value").is_none()));

    let text = ok(&["scan", d, "--prefix", "key0000", "--limit", "2"]);
    assert_eq!(text, "key00000 = value-0\nkey00001 = value-1\n");
}

#[test]
fn export_and_load_round_trip_every_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a");
    {
        let db = Db::open(&a).expect("open");
        db.put([0u8, 255, 10], [1u8, 2, 0xfe]).expect("put");
        db.put("plain", "text with\ttab").expect("put");
        db.put("ünïcödé", "✓").expect("put");
        for i in 0..3000 {
            db.put(format!("k{i:04}"), format!("v{i}")).expect("put");
        }
        db.close().expect("close");
    }
    let exported = ok(&["export", s(&a)]);
    let lines = json_lines(&exported);
    assert_eq!(lines.len(), 3003);
    assert!(
        lines
            .iter()
            .any(|l| l["key_hex"] == "00ff0a" && l["value_hex"] == "0102fe")
    );
    let file = dir.path().join("a.jsonl");
    std::fs::write(&file, &exported).expect("write");
    let b = dir.path().join("b");
    let loaded = json(&ok(&["--json", "load", "--create", s(&b), s(&file)]));
    assert_eq!(loaded["loaded"], 3003);
    assert_eq!(ok(&["export", s(&b)]), exported);

    // Tab-separated pairs, each field as `put` reads it.
    let tsv = dir.path().join("pairs.tsv");
    std::fs::write(&tsv, "x\t1\n0x00\t\"zero\\n\"\n\n").expect("write");
    ok(&["load", "--create", s(&dir.path().join("c")), s(&tsv)]);
    let c = json_lines(&ok(&["--json", "scan", s(&dir.path().join("c"))]));
    assert_eq!(c.len(), 2);
    assert_eq!(c[0]["key"], "\u{0}");
    assert_eq!(c[0]["value"], "zero\n");

    // A bad line names itself; a file that is wrong from its first line
    // creates nothing.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"key\":\"a\",\"value\":\"1\"}\nnot json\n").expect("write");
    let output = kevo(&["load", "--create", s(&dir.path().join("d")), s(&bad)]);
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains(":2:"), "{}", stderr(&output));
    let worse = dir.path().join("worse.jsonl");
    std::fs::write(&worse, "nope\n").expect("write");
    assert_eq!(
        code(&kevo(&[
            "load",
            "--create",
            s(&dir.path().join("e")),
            s(&worse)
        ])),
        2
    );
    assert!(!dir.path().join("e").exists());
}

#[test]
fn the_shell_deletes_ranges_and_prefixes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("db");
    let script = "\
put a1 1
put a2 2
put b1 3
put b2 4
put c1 5
delete-range a2 b2
count
delete-prefix c
count
begin
delete-range
count
rollback
count
flush
count
";
    let output = kevo_with_stdin(&["--json", "shell", "--create", s(&d)], script);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let out = json_lines(&stdout(&output));
    assert_eq!(out[6]["count"], 3, "a1, b2, c1");
    assert_eq!(out[8]["count"], 2, "a1, b2");
    assert_eq!(out[11]["count"], 0, "the transaction deleted everything");
    assert_eq!(out[13]["count"], 2, "rolled back");
    assert_eq!(out[15]["count"], 2, "after a flush");
    assert_eq!(ok(&["get", s(&d), "b2"]), "4\n");
    assert_eq!(ok(&["get", s(&d), "b1"]), "");
}

#[test]
fn the_shell_runs_a_script_from_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("db");
    let script = "\
put a 1
put \"b b\" 0x00ff
begin
put c 3
get c
count
rollback
get c
snapshot
put d 4
get d
release
get d
scan --limit 2
prefix \"b \" --keys-only
delete a
count
flush
compact
stats
exit
put never 1
";
    let output = kevo_with_stdin(&["--json", "shell", "--create", s(&d)], script);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let out = json_lines(&stdout(&output));
    // put, put, begin, put
    assert!(out[..4].iter().all(|v| v["ok"] == true));
    assert_eq!(out[4]["value"], "3", "the transaction reads its own write");
    assert_eq!(out[5]["count"], 3);
    assert_eq!(out[6]["ok"], true);
    assert_eq!(out[7]["value"], Value::Null, "rolled back");
    assert!(out[8]["snapshot"].as_u64().is_some());
    assert_eq!(out[9]["ok"], true);
    assert_eq!(out[10]["value"], Value::Null, "the snapshot does not see d");
    assert_eq!(out[11]["ok"], true);
    assert_eq!(out[12]["value"], "4");
    assert_eq!(
        (&out[13]["key"], &out[13]["value"]),
        (&Value::from("a"), &Value::from("1"))
    );
    assert_eq!(out[14]["key"], "b b");
    assert_eq!(out[14]["value_hex"], "00ff");
    assert_eq!(out[15]["key"], "b b");
    assert!(out[15].get("value").is_none());
    assert_eq!(out[16]["ok"], true);
    assert_eq!(out[17]["count"], 2);
    assert!(out[20]["levels"].is_array(), "stats");
    assert_eq!(out.len(), 21, "nothing after exit");
    assert_eq!(ok(&["get", s(&d), "never"]), "");

    // A failing line is reported with its number; the script goes on and
    // the exit code says it failed.
    let output = kevo_with_stdin(&["shell", s(&d)], "get \"b b\"\nbogus\ncommit\nget d\n");
    assert_eq!(code(&output), 2);
    assert_eq!(stdout(&output), "\\x00\\xff\n4\n");
    let errors = stderr(&output);
    assert!(
        errors.contains("line 2") && errors.contains("line 3"),
        "{errors}"
    );
}

#[test]
fn stats_and_lsm_describe_the_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    database(dir.path(), 2000);
    let d = s(dir.path());
    let stats = json(&ok(&["--json", "stats", d]));
    assert_eq!(stats["table_count"], 1);
    assert!(stats["last_seqno"].as_u64().expect("seqno") >= 2000);
    assert!(ok(&["stats", d]).contains("level"));

    let lsm = json(&ok(&["--json", "lsm", d]));
    let l0 = &lsm["levels"][0];
    assert_eq!(l0["level"], 0);
    let tables = l0["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0]["smallest_key"], "key00000");
    assert_eq!(tables[0]["largest_key"], "key01800");
    let human = ok(&["lsm", d]);
    assert!(human.contains("L0") && human.contains(".sst"), "{human}");

    let html = dir
        .path()
        .join("..")
        .join(format!("lsm-{}.html", std::process::id()));
    ok(&["lsm", d, "--html", s(&html)]);
    let page = std::fs::read_to_string(&html).expect("html");
    std::fs::remove_file(&html).expect("rm");
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<svg") && page.contains("key00000"));
    assert!(
        !page.contains("http://") || !page.contains("<script src"),
        "self-contained"
    );
}

#[test]
fn reading_commands_change_nothing_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    database(dir.path(), 500);
    let d = s(dir.path());
    let before = snapshot(dir.path());
    for args in [
        vec!["get", d, "key00001"],
        vec!["scan", d],
        vec!["export", d],
        vec!["stats", d],
        vec!["lsm", d],
        vec!["check", d],
    ] {
        ok(&args);
        assert!(
            snapshot(dir.path()) == before,
            "{args:?} changed the directory"
        );
    }
    let output = kevo_with_stdin(&["shell", "--read-only", d], "get key00002\nput x 1\n");
    assert_eq!(stdout(&output), "value-2\n");
    assert_eq!(code(&output), 2, "a write in a read-only shell fails");
    assert!(
        snapshot(dir.path()) == before,
        "read-only shell changed the directory"
    );
}

#[test]
fn a_database_open_for_writing_is_busy_for_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    database(dir.path(), 10);
    let db = open_for_writing(dir.path());
    let d = s(dir.path());
    for args in [
        vec!["get", d, "key00001"],
        vec!["put", d, "k", "v"],
        vec!["check", d],
    ] {
        let output = kevo(&args);
        assert_eq!(code(&output), 2, "{args:?}");
        let message = stderr(&output);
        assert!(
            message.contains("in use") || message.contains("open for writing"),
            "{args:?}: {message}"
        );
    }
    db.close().expect("close");
}

#[test]
fn compact_and_repair_report_what_they_did() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = s(dir.path());
    {
        let db = open_for_writing(dir.path());
        // Three tables: one short of the L0 compaction trigger.
        for round in 0..3 {
            for i in 0..500 {
                db.put(format!("key{i:05}"), format!("v{round}"))
                    .expect("put");
            }
            db.flush().expect("flush");
        }
        db.close().expect("close");
    }
    let compacted = json(&ok(&["--json", "compact", d]));
    assert_eq!(compacted["tables_before"], 3);
    assert_eq!(compacted["tables_after"], 1);
    let repaired = json(&ok(&["--json", "repair", d]));
    assert_eq!(repaired["tables"], 1);
    assert_eq!(repaired["entries"], 500);
    assert_eq!(ok(&["get", d, "key00007"]), "v2\n");
}

/// Keys [`damageable`] leaves in the WAL only.
const WAL_ONLY_KEYS: usize = 6000;

/// A database with several live, sealed WAL segments and a few tables.
fn damageable(dir: &Path) {
    let options = Options::default()
        .memtable_bytes(64 << 20)
        .wal_segment_bytes(64 * 1024)
        .sync_mode(SyncMode::Always);
    let db = Db::open_with(dir, options).expect("open");
    for table in 0..3 {
        for i in 0..300 {
            db.put(format!("t{table}-{i:04}"), "x".repeat(40))
                .expect("put");
        }
        db.flush().expect("flush");
    }
    for i in 0..WAL_ONLY_KEYS {
        db.put(format!("wal-{i:05}"), "y".repeat(40)).expect("put");
    }
    db.close().expect("close");
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .filter(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .collect();
    files.sort();
    files
}

#[test]
fn check_names_a_flipped_byte_a_truncated_wal_and_a_missing_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    damageable(dir.path());
    let d = s(dir.path());
    let healthy = json(&ok(&["--json", "check", d]));
    assert_eq!(healthy["ok"], true, "{healthy}");
    assert_eq!(healthy["tables"], 3);
    assert_eq!(healthy["tables_ok"], 3);

    let tables = files_ending(dir.path(), ".sst");
    assert_eq!(tables.len(), 3);
    // A flipped byte in the first data block of one table.
    let mut bytes = std::fs::read(&tables[0]).expect("read");
    bytes[100] ^= 0x40;
    std::fs::write(&tables[0], &bytes).expect("write");
    // Another table gone.
    std::fs::remove_file(&tables[1]).expect("rm");
    // A sealed WAL segment cut short.
    let segments = files_ending(dir.path(), ".wal");
    assert!(segments.len() >= 3, "{segments:?}");
    let cut = &segments[segments.len() / 2];
    let len = std::fs::metadata(cut).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(cut)
        .expect("open")
        .set_len(len / 2)
        .expect("truncate");

    let output = kevo(&["--json", "check", d]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let report = json(&stdout(&output));
    assert_eq!(report["ok"], false);
    let damage = report["damage"].as_array().expect("damage");
    let named = |path: &Path| {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        damage.iter().find(|f| f["file"] == name.as_str()).cloned()
    };
    let flipped = named(&tables[0]).expect("the flipped table is named");
    assert_eq!(flipped["offset"], 0, "{flipped}");
    let missing = named(&tables[1]).expect("the missing table is named");
    assert!(
        missing["problem"]
            .as_str()
            .expect("problem")
            .contains("missing")
    );
    assert!(
        named(cut).is_some(),
        "the truncated segment is named: {damage:?}"
    );
    assert_eq!(damage.len(), 3, "{damage:?}");

    // The human form names them too, with offsets.
    let text = stdout(&kevo(&["check", d]));
    for path in [&tables[0], &tables[1], cut] {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(text.contains(&name), "{text}");
    }
}

#[test]
fn sst_commands_read_a_table_written_by_kevo_sstable_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("000001.sst");
    let mut writer =
        TableWriter::create(&OsFs::new(), &path, TableOptions::default()).expect("create");
    let mut key = Vec::new();
    for i in 0..1000u64 {
        let user_key = format!("user{i:04}");
        // Two versions of every tenth key: a newer tombstone over a value.
        if i % 10 == 0 {
            key.clear();
            encode_internal_key(
                &mut key,
                user_key.as_bytes(),
                5000 + i,
                ValueKind::Delete as u8,
            );
            writer.add(&key, b"").expect("add");
        }
        key.clear();
        encode_internal_key(&mut key, user_key.as_bytes(), i + 1, ValueKind::Put as u8);
        writer
            .add(&key, format!("value{i}").as_bytes())
            .expect("add");
    }
    let meta = writer.finish().expect("finish");
    let p = s(&path);

    let dump = json_lines(&ok(&["--json", "sst", "dump", p]));
    assert_eq!(dump.len(), 1100);
    assert_eq!(dump[0]["key"], "user0000");
    assert_eq!(dump[0]["kind"], "delete");
    assert_eq!(dump[0]["seqno"], 5000);
    assert_eq!(dump[1]["kind"], "put");
    assert_eq!(dump[1]["value"], "value0");
    let scan = json_lines(&ok(&["--json", "sst", "scan", p]));
    assert_eq!(scan.len(), 900, "deleted keys are not visible");
    assert_eq!(scan[0]["key"], "user0001");

    let props = json(&ok(&["--json", "sst", "props", p]));
    assert_eq!(props["entries"], 1100);
    assert_eq!(props["tombstones"], 100);
    assert_eq!(props["file_size"], meta.file_size);
    let layout = json_lines(&ok(&["--json", "sst", "layout", p]));
    assert!(layout.iter().all(|b| b["checksum_ok"] == true));
    let kinds: Vec<&str> = layout
        .iter()
        .map(|b| b["kind"].as_str().expect("kind"))
        .collect();
    assert!(
        kinds.ends_with(&["filter", "properties", "index"]),
        "{kinds:?}"
    );
    let verified = json_lines(&ok(&["--json", "sst", "verify", p]));
    assert_eq!(verified[0]["result"], "ok");
    assert_eq!(verified[0]["entries"], 1100);

    // A flipped byte in the second data block.
    let second = layout[1]["offset"].as_u64().expect("offset");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[second as usize + 3] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    let output = kevo(&["--json", "sst", "verify", p]);
    assert_eq!(code(&output), 1);
    let verified = json_lines(&stdout(&output));
    assert_eq!(verified[0]["result"], "damaged");
    assert!(
        verified[0]["error"]
            .as_str()
            .expect("error")
            .contains(&format!("offset {second}"))
    );
    let output = kevo(&["--json", "sst", "layout", p]);
    assert_eq!(code(&output), 1);
    let layout = json_lines(&stdout(&output));
    assert_eq!(layout[1]["checksum_ok"], false);
    assert_eq!(
        code(&kevo(&["sst", "dump", s(&dir.path().join("nope.sst"))])),
        2
    );
}

#[test]
fn sst_commands_show_a_tables_range_tombstones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("000002.sst");
    let mut writer =
        TableWriter::create(&OsFs::new(), &path, TableOptions::default()).expect("create");
    let mut key = Vec::new();
    for (user_key, seqno) in [("a", 1), ("c", 2), ("e", 9)] {
        key.clear();
        encode_internal_key(&mut key, user_key.as_bytes(), seqno, ValueKind::Put as u8);
        writer.add(&key, b"v").expect("add");
    }
    // Deletes c@2 (not e@9, newer than the tombstone).
    writer
        .add_range_tombstone(&RangeTombstone::new(b"b".to_vec(), b"f".to_vec(), 5))
        .expect("add_range_tombstone");
    writer.finish().expect("finish");
    let p = s(&path);

    let dump = json_lines(&ok(&["--json", "sst", "dump", p]));
    let kinds: Vec<&str> = dump
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["put", "delete_range", "put", "put"], "{dump:?}");
    assert_eq!(dump[1]["key"], "b");
    assert_eq!(dump[1]["end"], "f");
    assert_eq!(dump[1]["seqno"], 5);
    let text = stdout(&kevo(&["sst", "dump", p]));
    assert!(text.contains("[b, f) @5 delete_range"), "{text}");
    let scan = json_lines(&ok(&["--json", "sst", "scan", p]));
    let keys: Vec<&str> = scan
        .iter()
        .map(|e| e["key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys, ["a", "e"], "c is deleted by the range tombstone");
    let props = json(&ok(&["--json", "sst", "props", p]));
    // Version 3: the engine writes the cache-local filter.
    assert_eq!(props["format_version"], 3);
    assert_eq!(props["filter_type"], "LocalBloom");
    assert_eq!(props["range_tombstones"], 1);
    let layout = json_lines(&ok(&["--json", "sst", "layout", p]));
    let kinds: Vec<&str> = layout
        .iter()
        .map(|b| b["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        ["data", "range_tombstones", "filter", "properties", "index"]
    );
    let verified = json_lines(&ok(&["--json", "sst", "verify", p]));
    assert_eq!(verified[0]["result"], "ok");
    assert_eq!(verified[0]["range_tombstones"], 1);
}

#[test]
fn wal_and_manifest_dumps_show_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    damageable(dir.path());
    let segments = files_ending(dir.path(), ".wal");
    let mut entries = 0;
    for segment in &segments {
        for batch in json_lines(&ok(&["--json", "wal", "dump", s(segment)])) {
            if let Some(items) = batch["entries"].as_array() {
                entries += items.len();
                assert!(items.iter().all(|e| e["kind"] == "put"));
            }
        }
    }
    assert_eq!(
        entries, WAL_ONLY_KEYS,
        "every WAL-only write is in a segment"
    );
    let verified: Vec<Value> = segments
        .iter()
        .flat_map(|p| json_lines(&ok(&["--json", "wal", "verify", s(p)])))
        .collect();
    assert!(
        verified
            .iter()
            .all(|v| v["damage"].as_array().is_some_and(Vec::is_empty))
    );
    // A segment started by a rotation names the one before it and its
    // final length.
    let follows: Vec<&Value> = verified
        .iter()
        .filter(|v| !v["follows"].is_null())
        .collect();
    assert!(!follows.is_empty(), "{verified:?}");
    for v in follows {
        let previous = v["follows"]["segment"].as_u64().expect("segment");
        assert_eq!(previous + 1, v["segment"].as_u64().expect("segment"));
        assert!(v["follows"]["len"].as_u64().expect("len") >= 24);
    }

    let manifest = files_ending(dir.path(), "")
        .into_iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("MANIFEST-"))
        })
        .expect("manifest");
    let edits = json_lines(&ok(&["--json", "manifest", "dump", s(&manifest)]));
    let added: usize = edits
        .iter()
        .map(|e| e["added"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(added >= 3, "{edits:?}");
    assert!(edits.iter().all(|e| e["offset"].is_u64()));
    assert!(ok(&["manifest", "dump", s(&manifest)]).contains("+L0"));

    // Damage in the middle of a segment is reported with its offset.
    let first = &segments[0];
    let mut bytes = std::fs::read(first).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(first, &bytes).expect("write");
    let output = kevo(&["--json", "wal", "verify", s(first)]);
    assert_eq!(code(&output), 1, "{}", stdout(&output));
    let report = json_lines(&stdout(&output));
    assert!(!report[0]["damage"].as_array().expect("damage").is_empty());
}

#[test]
fn checkpoint_and_backups_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    database(&db, 2000);
    let cp = dir.path().join("cp");
    let made = json(&ok(&["--json", "checkpoint", s(&db), s(&cp)]));
    assert!(made["tables"].as_u64().unwrap_or(0) > 0, "{made}");
    assert_eq!(made["tables"], made["tables_linked"]);
    assert!(ok(&["get", s(&cp), "key01999"]).contains("value-1999"));
    // The target exists now: refused, exit 2.
    let again = kevo(&["checkpoint", s(&db), s(&cp)]);
    assert_eq!(code(&again), 2, "{}", stderr(&again));

    let backups = dir.path().join("backups");
    let first = json(&ok(&["--json", "backup", "create", s(&db), s(&backups)]));
    assert_eq!(first["id"], 1);
    ok(&["put", s(&db), "key00001", "changed"]);
    let second = json(&ok(&["--json", "backup", "create", s(&db), s(&backups)]));
    assert_eq!(second["id"], 2);
    assert!(second["bytes_reused"].as_u64().unwrap_or(0) > 0, "{second}");
    let list = json_lines(&ok(&["--json", "backup", "list", s(&backups)]));
    assert_eq!(list.len(), 2);
    ok(&["backup", "verify", s(&backups), "2"]);
    let restored = dir.path().join("restored");
    ok(&["backup", "restore", s(&backups), "1", s(&restored)]);
    assert!(ok(&["get", s(&restored), "key00001"]).contains("value-1"));
    let purged = json(&ok(&[
        "--json",
        "backup",
        "purge",
        s(&backups),
        "--keep",
        "1",
    ]));
    assert_eq!(purged["deleted"], serde_json::json!([1]));
    // A damaged file: verify exits 1.
    let tables = backups.join("tables");
    let table = std::fs::read_dir(&tables)
        .expect("tables")
        .next()
        .expect("a table")
        .expect("entry")
        .path();
    let mut bytes = std::fs::read(&table).expect("read");
    bytes[100] ^= 0xff;
    std::fs::write(&table, bytes).expect("write");
    let verify = kevo(&["backup", "verify", s(&backups), "2"]);
    assert_eq!(code(&verify), 1, "{}", stderr(&verify));
    let missing = kevo(&["backup", "delete", s(&backups), "7"]);
    assert_eq!(code(&missing), 2);
}
