//! The command line keeps the harness's contract: help, a quick run, clear errors
//! for bad values.

#[test]
fn the_command_line_keeps_the_harness_contract() {
    transformer::chapter::check_cli(
        env!("CARGO_BIN_EXE_ch01-four-masks"),
        &["--seq-len", "--prefix-len"],
        &[
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
        ],
        &[
            (&["--seq-len", "6", "--prefix-len", "9"], "--prefix-len"),
            (&["--seq-len", "6", "--prefix-len", "6"], "--prefix-len"),
            (&["--prefix-len", "0"], "--prefix-len"),
            (&["--seq-len", "0"], "--seq-len"),
            (&["--seq-len", "1000"], "max_len"),
            (&["--seq-len", "-3"], "-3"),
            (&["--seq-len", "ten"], "ten"),
        ],
    );
}

#[test]
fn there_is_no_large_configuration() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ch01-four-masks"))
        .args(["--config", "large", "--out", "/nonexistent/never-written"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no large configuration")
    );
}
