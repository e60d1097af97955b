//! The quick configuration's report, snapshotted (numbers are rounded in the report
//! itself).
//!
//! The binary's command-line contract is checked here too, so that it runs beside
//! the snapshot test.

use ch02_what_tokens_teach::{Args, Chapter, Settings, compute};
use transformer::chapter::Preset;

#[test]
fn quick_report_matches_the_snapshot() {
    let chapter =
        compute(&Settings::new(Preset::Quick, &Args::default()).unwrap()).unwrap();
    let r = &chapter.report;
    // The claims the page makes, checked on the quick run too.
    assert!(r.corpus.round_trip_exact);
    assert_eq!(r.density.full_lm.measured, 1.0);
    assert!((r.density.masked_lm.measured - 0.15).abs() < 0.01);
    assert!(
        (r.density.prefix_lm.measured - r.density.prefix_lm.theory).abs() < 0.03
    );
    let t = &r.training;
    assert_eq!(t.full_lm.tokens_seen, t.prefix_lm.tokens_seen);
    assert_eq!(t.full_lm.tokens_seen, t.masked_lm.tokens_seen);
    assert!(t.full_lm.tokens_supervised > t.prefix_lm.tokens_supervised);
    assert!(t.prefix_lm.tokens_supervised > t.masked_lm.tokens_supervised);
    insta::assert_json_snapshot!("quick_report", r);
    for (file, text) in &chapter.tables {
        insta::assert_snapshot!(
            format!("quick_{}", file.trim_end_matches(".md")),
            text
        );
    }
}

/// The binary keeps the harness's command-line contract.
#[test]
fn the_command_line_keeps_the_harness_contract() {
    let quick = transformer::chapter::check_cli::<Settings>(
        env!("CARGO_BIN_EXE_ch02-what-tokens-teach"),
        "--steps=0 --vocab-size=100 --vocab-size=100000 --documents=3",
    );
    // The tokenizer a quick run writes loads, with the chapter's sentinels.
    let tok = transformer::tokenizer::BpeTokenizer::load(
        &quick.path.join("tokenizer.json"),
    )
    .unwrap();
    assert_eq!(tok.specials.n_sentinels, ch02_what_tokens_teach::SENTINELS);
}
