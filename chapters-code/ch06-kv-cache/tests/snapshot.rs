//! The quick configuration end to end: its clock-free report is snapshot-tested, and the CLI
//! writes every output and rejects bad values without panicking.

use std::process::Command;

#[test]
fn quick_report_snapshot() {
    let start = std::time::Instant::now();
    let outcome = ch06_kv_cache::compute(&ch06_kv_cache::Settings::quick()).unwrap();
    let r = &outcome.report;
    assert!(r.equality.all_tokens_identical && r.equality.all_within_1e4);
    assert!(r.reuse_replies_equal_recompute);
    assert!(r.dialogue.values().all(|d| d.matches_formula));
    insta::assert_json_snapshot!("quick_report", r);
    let dir = tempfile::tempdir().unwrap();
    ch06_kv_cache::write_outputs(&outcome, dir.path()).unwrap();
    for f in [
        "results.json",
        "decode_time.svg",
        "speedup.svg",
        "dialogue_flops.svg",
        "dialogue_time.svg",
        "invalidation.svg",
        "invalidation.md",
        "decode.md",
        "dialogue.md",
        "kv_heads.md",
        "memory.md",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    assert!(start.elapsed().as_secs() < 20, "quick configuration took {:?}", start.elapsed());
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ch06-kv-cache")).args(args).output().unwrap()
}

#[test]
fn the_cli_runs_quick_and_rejects_bad_values_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let ok = cli(&["--config", "quick", "--out", out, "--turns", "3"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(dir.path().join("results.json").is_file());
    for (args, needle) in [
        (vec!["--config", "huge"], "huge"),
        (vec!["--config", "quick", "--turns", "0"], "turns"),
        (vec!["--config", "quick", "--turns", "many"], "turns"),
        (vec!["--config", "quick", "--turns", "50"], "positions"),
        (vec!["--config", "quick", "--reply-tokens=-3"], "reply-tokens"),
    ] {
        let mut a = args.clone();
        a.extend(["--out", out]);
        let o = cli(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
