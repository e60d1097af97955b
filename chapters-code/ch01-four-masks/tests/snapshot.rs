//! The quick configuration's report, snapshotted (numbers rounded in the report
//! itself).
//!
//! The binary's command-line contract is checked here too, so that it runs beside
//! the snapshot test.

use ch01_four_masks::{Args, Chapter, Settings, compute};
use transformer::chapter::{Preset, quick};

#[test]
fn quick_report_matches_the_snapshot() {
    let out = quick::<Settings>().unwrap();
    insta::assert_json_snapshot!("quick_report", out.results());
    for file in ["families.md", "t5_accounting.md"] {
        insta::assert_snapshot!(
            format!("quick_{}", file.trim_end_matches(".md")),
            out.text(file).unwrap()
        );
    }
}

#[test]
fn every_count_matches_the_closed_form_formulas() {
    for preset in [Preset::Quick, Preset::Default] {
        let settings = Settings::new(preset, &Args::default()).unwrap();
        let chapter = compute(&settings).unwrap();
        for f in &chapter.report.families {
            assert!(f.cost.matches_formulas, "{preset:?} {}: {:?}", f.name, f.cost);
        }
        let sharing = &chapter.report.sharing;
        assert!(sharing.reach_equals_mask);
        assert_eq!(sharing.same_rows_max_diff_layer1, 0.0);
        // The first k − 1 rows differ between the masks; exactly those move in
        // layer 1.
        assert_eq!(sharing.changed_after_layer1, settings.prefix_len - 1);
        assert_eq!(sharing.changed_in_logits, settings.seq_len);
    }
}

#[test]
fn t5_accounting_holds_with_our_numbers() {
    let chapter =
        compute(&Settings::new(Preset::Default, &Args::default()).unwrap())
            .unwrap();
    let t5 = &chapter.report.t5;
    assert!((1.0..1.25).contains(&t5.params_ratio_ed_to_2l), "{t5:?}");
    assert!((0.9..1.2).contains(&t5.flops_ratio_ed_to_l), "{t5:?}");
    assert!((0.45..0.7).contains(&t5.flops_ratio_ed_to_2l), "{t5:?}");
}

/// The binary keeps the harness's command-line contract.
#[test]
fn the_command_line_keeps_the_harness_contract() {
    transformer::chapter::check_cli::<Settings>(
        env!("CARGO_BIN_EXE_ch01-four-masks"),
        "--seq-len=6,--prefix-len=9 --seq-len=6,--prefix-len=6 --prefix-len=0 --seq-len=0 --seq-len=1000:max_len",
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
