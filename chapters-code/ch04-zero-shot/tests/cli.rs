//! The command line keeps the harness's contract.

const BIN: &str = env!("CARGO_BIN_EXE_ch04-zero-shot");

#[test]
fn the_command_line_keeps_the_harness_contract() {
    transformer::chapter::check_cli(
        BIN,
        &["--steps", "--seeds", "--eval-instances"],
        &[
            "costs.md",
            "zero_shot.md",
            "kind_scores.md",
            "scene_scores.md",
            "pretrained_comparisons.md",
            "finetuned_comparisons.md",
            "kind_vs_chance.md",
            "scene_vs_chance.md",
            "adaptation.md",
            "adaptation_comparisons.md",
            "in_short.md",
            "per_family_pretrained.svg",
            "per_family_finetuned.svg",
            "accuracy_vs_tokens.svg",
            "finetuning_families.svg",
            "adaptation_loss.svg",
        ],
        &[
            (&["--steps", "3"], "--steps"),
            (&["--seeds", "0"], "--seeds"),
            (&["--seeds", "50"], "--seeds"),
            (&["--eval-instances", "1"], "--eval-instances"),
            (&["--steps", "-3"], "-3"),
            (&["--seeds", "many"], "many"),
            (&["--unknown-flag"], "--unknown-flag"),
        ],
    );
}
