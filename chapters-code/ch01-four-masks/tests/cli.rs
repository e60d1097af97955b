//! The command line: help, a quick run, and clear errors (never a panic) for bad values.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ch01-four-masks")).args(args).output().unwrap()
}

fn assert_clear_error(args: &[&str], needle: &str) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(stderr.contains(needle), "{args:?}: expected {needle:?} in {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
}

#[test]
fn help_describes_the_flags() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--seq-len", "--prefix-len", "--out", "--config"] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn a_quick_run_writes_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["--config", "quick", "--out", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in [
        "results.json",
        "families.md",
        "t5_accounting.md",
        "sharing.md",
        "encoder_only.svg",
        "causal.svg",
        "prefix_lm.svg",
        "ed_encoder.svg",
        "ed_decoder.svg",
        "ed_cross.svg",
        "reach_causal.svg",
        "reach_prefix.svg",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} was not written");
    }
}

#[test]
fn bad_values_get_a_clear_message_and_a_non_zero_exit() {
    assert_clear_error(&["--config", "quick", "--seq-len", "6", "--prefix-len", "9"], "--prefix-len");
    assert_clear_error(&["--config", "quick", "--seq-len", "6", "--prefix-len", "6"], "--prefix-len");
    assert_clear_error(&["--config", "quick", "--prefix-len", "0"], "--prefix-len");
    assert_clear_error(&["--config", "quick", "--seq-len", "0"], "--seq-len");
    assert_clear_error(&["--config", "quick", "--seq-len", "1000"], "max_len");
    assert_clear_error(&["--config", "huge"], "huge");
    assert_clear_error(&["--seq-len", "-3"], "-3");
    assert_clear_error(&["--seq-len", "ten"], "ten");
}

#[test]
fn an_unwritable_output_folder_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    assert_clear_error(&["--config", "quick", "--out", blocker.to_str().unwrap()], "error");
}
