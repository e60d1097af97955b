//! The command line keeps the harness's contract, and a quick run writes a loadable
//! tokenizer.

const BIN: &str = env!("CARGO_BIN_EXE_ch02-what-tokens-teach");

#[test]
fn the_command_line_keeps_the_harness_contract() {
    transformer::chapter::check_cli(
        BIN,
        &["--steps", "--vocab-size", "--documents"],
        &[
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
        ],
        &[
            (&["--steps", "0"], "--steps"),
            (&["--vocab-size", "100"], "--vocab-size"),
            (&["--vocab-size", "100000"], "--vocab-size"),
            (&["--documents", "3"], "--documents"),
            (&["--steps", "-3"], "-3"),
            (&["--steps", "many"], "many"),
            (&["--unknown-flag"], "--unknown-flag"),
        ],
    );
}

#[test]
fn a_quick_run_writes_a_loadable_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "--config",
            "quick",
            "--steps",
            "4",
            "--out",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tok = transformer::tokenizer::BpeTokenizer::load(
        &dir.path().join("tokenizer.json"),
    )
    .unwrap();
    assert_eq!(tok.specials.n_sentinels, ch02_what_tokens_teach::SENTINELS);
}
