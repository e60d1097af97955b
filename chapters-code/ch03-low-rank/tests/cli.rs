//! The command lines: the chapter keeps the harness's contract; the probe prints
//! the measures; bad values give a message and a non-zero exit.

use std::process::{Command, Output};

#[test]
fn the_chapter_keeps_the_harness_contract() {
    transformer::chapter::check_cli::<ch03_low_rank::RunConfig>(
        env!("CARGO_BIN_EXE_ch03-low-rank"),
        "",
    );
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_probe"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn fails_with(args: &[&str], needle: &str) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
}

#[test]
fn a_probe_prints_every_measure() {
    let out = run(&[
        "--n", "32", "--d", "4", "--beta", "0.5", "--seed", "1", "--mask", "causal",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "causal attention, n = 32, d = 4",
        "effective rank",
        "stable rank",
        "condition",
        "det A",
        "1e-3",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in {stdout}");
    }
    let both = run(&["--n", "10", "--d", "20"]);
    assert!(both.status.success(), "d > n is fine");
    let stdout = String::from_utf8_lossy(&both.stdout);
    assert!(
        stdout.contains("bidirectional attention")
            && stdout.contains("causal attention")
    );
}

#[test]
fn bad_values_are_refused_with_a_message() {
    fails_with(&["--n", "16", "--d", "0"], "d (head dimension) must be at least 1");
    fails_with(&["--n", "0"], "n (sequence length) must be at least 1");
    fails_with(&["--n", "16", "--beta", "0"], "beta");
    fails_with(&["--n", "16", "--beta", "-2"], "beta");
    fails_with(&["--n", "16", "--beta", "nan"], "beta");
    fails_with(&["--n", "16", "--beta", "inf"], "beta");
    fails_with(&["--n", "16", "--beta", "abc"], "beta");
    fails_with(&["--n", "-3"], "-3");
    fails_with(&["--n", "100000"], "limited to 4096");
    fails_with(&["--mask", "sideways"], "sideways");
}
