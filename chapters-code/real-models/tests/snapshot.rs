//! The quick configuration end to end, on tiny random models of the real formats:
//! its clock-free report is snapshot-tested, its claims hold, and the CLI keeps the
//! harness's contract.

use real_models::{Chapter, Settings, compute, outputs::outputs};
use transformer::chapter::Preset;

#[test]
fn quick_report_snapshot() {
    let start = std::time::Instant::now();
    let settings = Settings::new(Preset::Quick, &Default::default()).unwrap();
    let outcome = compute(&settings).unwrap();
    let r = &outcome.report;
    assert_eq!(r.run.models, "tiny");
    // Loading and counting agree on the tiny files as on the real ones.
    for c in [&r.encoder_params, &r.decoder_params] {
        assert_eq!(c.predicted, c.in_file, "{}", c.model);
    }
    assert!(r.chat.kept_equals_recomputed && r.chat.uncached_equals_cached);
    assert_eq!(r.chat.kv.bytes_per_token_measured, r.chat.kv.bytes_per_token);
    assert_eq!(r.chat.decoder_drift.max, 0.0);
    assert_eq!(r.chat.encoder_drift.per_layer[0], 0.0);
    // Drifts below f32 rounding are recorded as 0, so the report holds across
    // machines as it is.
    insta::assert_json_snapshot!("quick_report", r);
    let out = outputs(&outcome).unwrap();
    for name in
        ["params.md", "ranks.md", "chat.md", "drift.md", "ranks_by_depth.svg"]
    {
        assert!(out.files().contains_key(name), "{name} missing");
    }
    assert!(start.elapsed().as_secs() < 20, "quick run took {:?}", start.elapsed());
}

#[test]
fn the_command_line_keeps_the_harness_contract() {
    transformer::chapter::check_cli::<Settings>(
        env!("CARGO_BIN_EXE_real-models"),
        "--tokens=2 --reply-tokens=0 --models=/nonexistent:quick",
    );
}

#[test]
fn the_default_run_without_models_says_how_to_fetch_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_real-models"))
        .args(["--models"])
        .arg(dir.path().join("nothing-here"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cargo xtask models"), "{err}");
    assert!(!dir.path().join("out").exists(), "a failed run wrote outputs");
}
