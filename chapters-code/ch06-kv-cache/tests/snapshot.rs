//! The quick configuration end to end: its clock-free report is snapshot-tested,
//! and the CLI keeps the harness's contract.

#[test]
fn quick_report_snapshot() {
    let start = std::time::Instant::now();
    let outcome =
        ch06_kv_cache::compute(&ch06_kv_cache::Settings::quick()).unwrap();
    let r = &outcome.report;
    assert!(r.equality.all_tokens_identical && r.equality.all_within_1e4);
    assert!(r.reuse_replies_equal_recompute);
    assert!(r.dialogue.values().all(|d| d.matches_formula));
    insta::assert_json_snapshot!("quick_report", r);
    let out = ch06_kv_cache::outputs(&outcome).unwrap();
    assert_eq!(
        out.results(),
        &serde_json::to_value(r).unwrap(),
        "results.json is the report"
    );
    // The two-turn diagram draws what the invalidation experiment measured: every
    // history row kept (causal decoder, frozen prefix), only layer 0 kept (prefix
    // LM, encoder), none (cross K/V).
    let two_turns =
        String::from_utf8(out.files()["two_turns.svg"].clone()).unwrap();
    let (h, l) = (r.settings.history_tokens, r.settings.model.n_layers);
    for (kept, redo) in [(h * l, 0), (h, h * (l - 1)), (0, h * l)] {
        let counts = format!("turn-1 rows: {kept} kept, {redo} recomputed");
        assert!(two_turns.contains(&counts), "{counts} missing from two_turns.svg");
    }
    let growth =
        String::from_utf8(out.files()["kv_cache_growth.svg"].clone()).unwrap();
    assert!(
        growth
            .contains(&format!("{} prompt tokens at once", r.settings.contexts[0]))
    );
    assert!(
        start.elapsed().as_secs() < 20,
        "quick configuration took {:?}",
        start.elapsed()
    );
}

#[test]
fn the_command_line_keeps_the_harness_contract() {
    transformer::chapter::check_cli::<ch06_kv_cache::Settings>(
        env!("CARGO_BIN_EXE_ch06-kv-cache"),
        "--turns=0 --turns=50:positions",
    );
}
