//! The quick configuration's report, snapshotted (losses and percentages are
//! rounded in the report itself).
//!
//! The binary's command-line contract is checked here too, so that it runs beside
//! the snapshot test.

use ch05_twice_the_parameters::{CONTENDERS, Chapter, Settings, compute};
use transformer::chapter::Preset;

/// The binary keeps the harness's command-line contract.
#[test]
fn the_command_line_keeps_the_harness_contract() {
    transformer::chapter::check_cli::<Settings>(
        env!("CARGO_BIN_EXE_ch05-twice-the-parameters"),
        "--steps=3 --seeds=0 --seeds=50",
    );
}

#[test]
fn quick_report_matches_the_snapshot() {
    let s = Settings::new(Preset::Quick, &Default::default()).unwrap();
    let r = compute(&s).unwrap();
    assert_eq!(r.contenders.len(), CONTENDERS.len());
    // Every contender saw the same tokens at the same evaluations.
    let seen = |i: usize| {
        r.contenders[i].curve.iter().map(|p| p.tokens_seen).collect::<Vec<_>>()
    };
    for i in 0..r.contenders.len() {
        assert_eq!(seen(i), seen(0));
    }
    insta::assert_json_snapshot!("quick_report", r);
}
