//! The command line: help, a quick run, and clear errors (never a panic) for bad values.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ch02-what-tokens-teach")).args(args).output().unwrap()
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
    for flag in ["--config", "--out", "--steps", "--vocab-size", "--documents"] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn a_quick_run_writes_every_output_and_a_loadable_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["--config", "quick", "--steps", "4", "--out", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in [
        "results.json",
        "tokenizer.json",
        "encodings.md",
        "objectives.md",
        "density.md",
        "span_lengths.md",
        "training.md",
        "tasks.md",
        "sample_document.md",
        "loss_vs_seen.svg",
        "loss_vs_supervised.svg",
        "second_half_loss.svg",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} was not written");
    }
    let tok = transformer::tokenizer::BpeTokenizer::load(&dir.path().join("tokenizer.json")).unwrap();
    assert_eq!(tok.specials.n_sentinels, ch02_what_tokens_teach::SENTINELS);
}

#[test]
fn bad_values_get_a_clear_message_and_a_non_zero_exit() {
    assert_clear_error(&["--config", "quick", "--steps", "0"], "--steps");
    assert_clear_error(&["--config", "quick", "--vocab-size", "100"], "--vocab-size");
    assert_clear_error(&["--config", "quick", "--vocab-size", "100000"], "--vocab-size");
    assert_clear_error(&["--config", "quick", "--documents", "3"], "--documents");
    assert_clear_error(&["--config", "huge"], "huge");
    assert_clear_error(&["--steps", "-3"], "-3");
    assert_clear_error(&["--steps", "many"], "many");
    assert_clear_error(&["--unknown-flag"], "--unknown-flag");
}

#[test]
fn an_unwritable_output_folder_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    assert_clear_error(&["--config", "quick", "--steps", "2", "--out", blocker.to_str().unwrap()], "error");
}
