//! A smoke run of `raft-bench` (ci's guard that the benchmark keeps
//! working): one short round per store on 3-node clusters; it must finish
//! and print its table. Figures come from `cargo xtask raft-bench`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

#[test]
fn raft_bench_runs_a_short_round() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_raft-bench"))
        .args(["--rounds", "1", "--seconds", "0.5", "--clients", "4"])
        .output()
        .expect("run raft-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "raft-bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    for row in ["| 4 | kevo |", "| 4 | memory |"] {
        assert!(stdout.contains(row), "no `{row}` row in:\n{stdout}");
    }
}
