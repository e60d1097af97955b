//! The quick configuration end to end: its clock-free report is snapshot-tested, and the CLI
//! keeps the harness's contract.

#[test]
fn quick_report_snapshot() {
    let start = std::time::Instant::now();
    let outcome = ch06_kv_cache::compute(&ch06_kv_cache::Settings::quick()).unwrap();
    let r = &outcome.report;
    assert!(r.equality.all_tokens_identical && r.equality.all_within_1e4);
    assert!(r.reuse_replies_equal_recompute);
    assert!(r.dialogue.values().all(|d| d.matches_formula));
    insta::assert_json_snapshot!("quick_report", r);
    let out = ch06_kv_cache::outputs(&outcome).unwrap();
    assert_eq!(out.results(), &serde_json::to_value(r).unwrap(), "results.json is the report");
    assert!(start.elapsed().as_secs() < 20, "quick configuration took {:?}", start.elapsed());
}

#[test]
fn the_command_line_keeps_the_harness_contract() {
    transformer::chapter::check_cli(
        env!("CARGO_BIN_EXE_ch06-kv-cache"),
        &["--turns", "--user-tokens", "--reply-tokens", "--seed"],
        &[
            "timings.json",
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
        ],
        &[
            (&["--turns", "0"], "turns"),
            (&["--turns", "many"], "turns"),
            (&["--turns", "50"], "positions"),
            (&["--reply-tokens=-3"], "reply-tokens"),
        ],
    );
}
