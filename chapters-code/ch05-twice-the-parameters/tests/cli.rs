//! The command line keeps the harness's contract.

const BIN: &str = env!("CARGO_BIN_EXE_ch05-twice-the-parameters");

#[test]
fn the_command_line_keeps_the_harness_contract() {
    transformer::chapter::check_cli(
        BIN,
        &["--steps", "--seeds"],
        &[
            "costs.md",
            "t5_table.md",
            "results.md",
            "matchups.md",
            "su.md",
            "in_short.md",
            "loss_vs_tokens.svg",
            "loss_vs_flops.svg",
            "matchups.svg",
            "su_loss.svg",
        ],
        &[
            (&["--steps", "3"], "--steps"),
            (&["--seeds", "0"], "--seeds"),
            (&["--seeds", "50"], "--seeds"),
            (&["--steps", "-3"], "-3"),
            (&["--seeds", "many"], "many"),
            (&["--unknown-flag"], "--unknown-flag"),
        ],
    );
}
