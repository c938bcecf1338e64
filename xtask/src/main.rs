//! `cargo xtask`: every piece of project automation, in Rust.
//!
//! ```text
//! cargo xtask ci                      the test gate: fmt, clippy, structure, tests, docs, smoke
//!                                     runs (bench, and each fuzz target for 10 s if cargo-fuzz
//!                                     is here)
//! cargo xtask structure               the crate graph against docs/architecture.md, and no
//!                                     module circles in kevo-engine, -compaction, -sstable
//! cargo xtask bench [ARGS]            the db_bench-style workloads on the engine (benches/,
//!                                     `--num N --threads T --only a,b --rounds R`; see
//!                                     benches/README.md); `--compare fjall,sled,redb[,rocksdb]`
//!                                     also runs them on those peers (builds their features);
//!                                     `--chart FILE.svg` draws the medians (and writes them
//!                                     to FILE.json), `--chart-from FILE.json` only draws
//! cargo xtask bench-wal [--seconds S] the write-ahead log's own throughput table
//! cargo xtask crash [--cases N] [--kills K]
//!                                     the long crash runs: the WAL's and the engine model's
//!                                     property tests (N cases, N/10), and K (100) kill -9 crashes
//!                                     of a child process checked against an oracle
//! cargo xtask metamorphic [--scripts N] [--ops N] [--seed S]
//!                                     one random script under 25 option sets, N (100) times:
//!                                     every read identical across them and to a model
//! cargo xtask fuzz <target> <secs>    one cargo-fuzz target for a while (nightly)
//! cargo xtask raft-kill [--kills K]   three raft-kv processes under a writing client: K (10)
//!                                     leaders, a follower and a far-behind follower (snapshot
//!                                     install) killed with SIGKILL; no acknowledged write lost
//! cargo xtask raft-bench [ARGS]       replicated puts/s and latency through 3-node raft-kv
//!                                     clusters per store: kevo, memory, rocksdb[-synced]
//!                                     (`--stores`, `--rounds`, `--seconds`, `--clients 1,32`)
//! ```

mod structure;
mod wal_bench;

use std::env;
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("structure") => structure::check(&workspace_root()),
        Some("bench") => bench(&args[1..]),
        Some("bench-wal") => wal_bench::run(&args[1..]),
        Some("crash") => crash(&args[1..]),
        Some("metamorphic") => metamorphic(&args[1..]),
        Some("fuzz") => fuzz(&args[1..], Build::Release),
        Some("raft-kill") => raft_kill(&args[1..]),
        Some("raft-bench") => raft_bench(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | structure | bench [--compare fjall,sled,redb,rocksdb] [--chart FILE.svg] [ARGS] | bench-wal [--seconds S] | crash [--cases N] [--kills K] | metamorphic [--scripts N] | fuzz <target> <seconds> | raft-kill [--kills K] | raft-bench [ARGS]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one step, printing its name and time, failing on a non-zero exit.
fn step(name: &str, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    println!("==> {name}: {program} {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .map_err(|e| format!("{name}: could not start {program}: {e}"))?;
    println!(
        "<== {name}: {} in {:.1}s",
        if status.success() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("step `{name}` failed ({status})"))
    }
}

/// The workspace root (the folder above `xtask/`).
fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn ci() -> Result<(), String> {
    let cargo = cargo();
    let started = Instant::now();
    step("fmt", &cargo, &["fmt", "--all", "--check"], &[])?;
    step(
        "clippy",
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    // kevo-raft without its `raft` feature is what the fuzz target builds:
    // keep it compiling where cargo-fuzz is not installed.
    step(
        "clippy kevo-raft (archive only)",
        &cargo,
        &[
            "clippy",
            "-p",
            "kevo-raft",
            "--no-default-features",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    println!("==> structure");
    structure::check(&workspace_root())?;
    // Property tests read PROPTEST_CASES only where a test does not set its
    // own count; the crash and model tests set theirs (>= 256, >= 1000).
    step("test", &cargo, &["test", "--workspace"], &[])?;
    step(
        "doc",
        &cargo,
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    for example in ["basic", "batch", "snapshot", "transaction"] {
        step(
            &format!("example {example}"),
            &cargo,
            &["run", "--quiet", "-p", "kevo-engine", "--example", example],
            &[],
        )?;
    }
    // Smoke runs of the long jobs, so that they cannot rot.
    step(
        "bench smoke",
        &cargo,
        &["xtask", "bench", "--num", "20000"],
        &[],
    )?;
    step(
        "bench-wal smoke",
        &cargo,
        &["xtask", "bench-wal", "--seconds", "0.1"],
        &[],
    )?;
    fuzz_smoke()?;
    println!(
        "ci: all steps passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Parses `--name N` pairs into `flags` (name, value, default given), every
/// value a number; `usage` is the error for anything else.
fn numeric_flags(args: &[String], flags: &mut [(&str, String)], usage: &str) -> Result<(), String> {
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().filter(|v| v.parse::<u64>().is_ok());
        let slot = flags
            .iter_mut()
            .find(|(name, _)| flag.strip_prefix("--") == Some(*name));
        match (slot, value) {
            (Some((_, slot)), Some(value)) => *slot = value.clone(),
            _ => return Err(format!("usage: {usage}")),
        }
    }
    Ok(())
}

/// Builds raft-kv optimised and runs its `raft-bench` with `args` (ci's
/// smoke run of it is the test `examples/raft-kv/tests/bench_smoke.rs`).
fn raft_bench(args: &[String]) -> Result<(), String> {
    let mut build = vec!["build", "--release", "-p", "raft-kv", "--bins"];
    // A RocksDB store asked for: build the peer (C++, ~18 minutes once).
    if args.iter().any(|a| a.contains("rocksdb")) {
        build.extend(["--features", "rocksdb"]);
    }
    step("build raft-kv", &cargo(), &build, &[])?;
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let bin = target.join("release").join("raft-bench");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    step("raft-bench", &bin.to_string_lossy(), &args, &[])
}

fn raft_kill(args: &[String]) -> Result<(), String> {
    let mut flags = [("kills", "10".to_string())];
    numeric_flags(args, &mut flags, "cargo xtask raft-kill [--kills N]")?;
    let [(_, kills)] = flags;
    release_test(
        "raft kill",
        "raft-kv",
        "kill",
        &[("KEVO_RAFT_KILLS", &kills)],
    )
}

fn crash(args: &[String]) -> Result<(), String> {
    let mut flags = [("cases", "20000".to_string()), ("kills", "100".to_string())];
    numeric_flags(
        args,
        &mut flags,
        "cargo xtask crash [--cases N] [--kills N]",
    )?;
    let [(_, cases), (_, kills)] = flags;
    release_test(
        "crash",
        "kevo-wal",
        "crash",
        &[("KEVO_CRASH_CASES", &cases)],
    )?;
    // The engine's model test crashes in most of its cases; a tenth as many.
    let model_cases = (cases.parse::<u64>().unwrap_or(20_000) / 10)
        .max(1)
        .to_string();
    release_test(
        "engine model",
        "kevo-engine",
        "model",
        &[("KEVO_MODEL_CASES", &model_cases)],
    )?;
    // The real thing: a child process killed with SIGKILL, reopened, checked.
    release_test(
        "kill -9 crash loop",
        "kevo-engine",
        "crash_loop",
        &[("KEVO_CRASH_KILLS", &kills)],
    )
}

/// Runs one integration test of `package` in release mode, its output shown.
fn release_test(
    name: &str,
    package: &str,
    test: &str,
    envs: &[(&str, &str)],
) -> Result<(), String> {
    step(
        name,
        &cargo(),
        &[
            "test",
            "--release",
            "-p",
            package,
            "--test",
            test,
            "--",
            "--nocapture",
        ],
        envs,
    )
}

/// `cargo xtask metamorphic [--scripts N] [--ops N] [--seed S]`: the
/// metamorphic test at length (one script under 25 option sets, every read
/// compared), in release mode. A new seed each run unless given.
fn metamorphic(args: &[String]) -> Result<(), String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let mut flags = [
        ("scripts", "100".to_string()),
        ("ops", "2000".to_string()),
        ("seed", now.to_string()),
    ];
    numeric_flags(
        args,
        &mut flags,
        "cargo xtask metamorphic [--scripts N] [--ops N] [--seed S]",
    )?;
    let [(_, scripts), (_, ops), (_, seed)] = flags;
    println!("metamorphic: seed {seed} (--seed {seed} replays it)");
    release_test(
        "metamorphic",
        "kevo-engine",
        "metamorphic",
        &[
            ("KEVO_METAMORPHIC_SCRIPTS", &scripts),
            ("KEVO_METAMORPHIC_OPS", &ops),
            ("KEVO_METAMORPHIC_SEED", &seed),
        ],
    )
}

/// Peer engines of `cargo xtask bench --compare`, each a kevo-bench feature.
const BENCH_PEERS: [&str; 4] = ["fjall", "sled", "redb", "rocksdb"];

/// `cargo xtask bench ARGS`: the engine workloads, built with optimisations.
/// `--compare a,b` also turns on kevo-bench's features `a` and `b`, so that
/// the peers are built (and only then). Every other argument (`--chart
/// FILE.svg`, `--chart-from FILE.json`, ...) goes to kevo-bench as it is;
/// kevo-bench runs in the current directory, so a relative `FILE` is
/// relative to it.
fn bench(args: &[String]) -> Result<(), String> {
    let mut features: Vec<&str> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let list = match arg.strip_prefix("--compare") {
            Some("") => iter.next().map(String::as_str).unwrap_or(""),
            Some(rest) => rest.strip_prefix('=').unwrap_or(""),
            None => continue,
        };
        if list.is_empty() {
            return Err(format!(
                "--compare needs a list of engines: {}",
                BENCH_PEERS.join(",")
            ));
        }
        for name in list.split(',').filter(|n| !n.is_empty() && *n != "kevo") {
            if !BENCH_PEERS.contains(&name) {
                return Err(format!(
                    "unknown engine `{name}` in --compare; known: {}",
                    BENCH_PEERS.join(",")
                ));
            }
            if !features.contains(&name) {
                features.push(name);
            }
        }
    }
    if features.contains(&"rocksdb") {
        println!(
            "note: --compare rocksdb builds RocksDB from C++ source (about 18 minutes on two \
             cores the first time; needs clang and libclang-dev)"
        );
    }
    let features = features.join(",");
    let mut cargo_args = vec!["run", "--release", "--quiet", "-p", "kevo-bench"];
    if !features.is_empty() {
        cargo_args.extend(["--features", &features]);
    }
    cargo_args.push("--");
    // kevo-bench reads `--compare a,b`; hand it the spaced form.
    let mut rest: Vec<String> = Vec::new();
    for arg in args {
        match arg.strip_prefix("--compare=") {
            Some(list) => rest.extend(["--compare".to_string(), list.to_string()]),
            None => rest.push(arg.clone()),
        }
    }
    cargo_args.extend(rest.iter().map(String::as_str));
    step("bench", &cargo(), &cargo_args, &[])
}

/// Whether `cargo +nightly fuzz` works here.
fn have_cargo_fuzz() -> bool {
    // `+nightly` is understood by the rustup proxy, not by the pinned
    // toolchain's cargo that `$CARGO` names: call plain `cargo`.
    Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The fuzz targets: the files in `fuzz/fuzz_targets/`.
fn fuzz_targets() -> Result<Vec<String>, String> {
    let dir = std::fs::read_dir("fuzz/fuzz_targets")
        .map_err(|e| format!("listing fuzz/fuzz_targets: {e}"))?;
    let mut targets: Vec<String> = dir
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".rs").map(str::to_string))
        .collect();
    targets.sort();
    Ok(targets)
}

/// Every fuzz target for a few seconds, where cargo-fuzz is installed. The
/// stable test suite already feeds arbitrary bytes to every decoder
/// (`tests/arbitrary_bytes.rs`); this keeps the fuzz targets building and
/// honest.
fn fuzz_smoke() -> Result<(), String> {
    if !have_cargo_fuzz() {
        println!(
            "==> fuzz smoke: skipped, cargo-fuzz is not installed (`cargo install cargo-fuzz`)"
        );
        return Ok(());
    }
    for target in fuzz_targets()? {
        fuzz(&[target, "3".to_string()], Build::Dev)?;
    }
    Ok(())
}

/// How a fuzz target is built.
#[derive(Clone, Copy, PartialEq)]
enum Build {
    /// cargo-fuzz's default: optimised, one codegen unit per crate (about
    /// 3.5 minutes here for the first target): for real runs.
    Release,
    /// Unoptimised (about 2 minutes for all of them): ci's smoke, which
    /// only has to show every target builds and runs its seeds.
    Dev,
}

fn fuzz(args: &[String], build: Build) -> Result<(), String> {
    let [target, seconds] = args else {
        return Err(format!(
            "usage: cargo xtask fuzz <target> <seconds>   (targets: {})",
            fuzz_targets()?.join(", ")
        ));
    };
    if !have_cargo_fuzz() {
        return Err(
            "cargo-fuzz is missing: install it with `cargo install cargo-fuzz` (it needs the nightly toolchain)"
                .to_string(),
        );
    }
    let max_time = format!("-max_total_time={seconds}");
    let corpus = format!("fuzz/corpus/{target}");
    std::fs::create_dir_all(&corpus).map_err(|e| format!("creating {corpus}: {e}"))?;
    let seeds = format!("fuzz/seeds/{target}");
    let mut args = vec!["+nightly", "fuzz", "run"];
    if build == Build::Dev {
        args.push("--dev");
    }
    args.extend([target.as_str(), &corpus]);
    if std::path::Path::new(&seeds).is_dir() {
        // Read-only seeds: new inputs go to the first corpus directory.
        args.push(&seeds);
    }
    args.extend(["--", &max_time]);
    step(&format!("fuzz {target}"), "cargo", &args, &[])
}
