//! The quick configuration's report, snapshotted (accuracies are exact fractions,
//! losses are rounded in the report itself).
//!
//! The binary's command-line contract is checked here too, so that it runs beside
//! the snapshot test.

use ch04_zero_shot::{Args, Chapter, Settings, compute};
use transformer::chapter::Preset;

#[test]
fn quick_report_matches_the_snapshot() {
    let s = Settings::new(Preset::Quick, &Args::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = compute(&s, dir.path()).unwrap();
    // Every cell ran every seed, and saw the same tokens.
    assert_eq!(r.cells.len(), 6);
    for c in &r.cells {
        assert_eq!(c.seeds.len(), s.seeds);
        let seen: Vec<usize> =
            c.seeds[0].pretraining.iter().map(|p| p.tokens_seen).collect();
        assert_eq!(
            seen,
            r.cells[0].seeds[0]
                .pretraining
                .iter()
                .map(|p| p.tokens_seen)
                .collect::<Vec<_>>()
        );
    }
    // The checkpoints phase 3 starts from are on disk, one per cell and seed.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 6 * s.seeds);
    insta::assert_json_snapshot!("quick_report", r);
}

/// The binary keeps the harness's command-line contract.
#[test]
fn the_command_line_keeps_the_harness_contract() {
    transformer::chapter::check_cli::<Settings>(
        env!("CARGO_BIN_EXE_ch04-zero-shot"),
        "--steps=3 --seeds=0 --seeds=50 --eval-instances=1",
    );
}
