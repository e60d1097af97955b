//! The worked example: every number the page shows, snapshotted; and the
//! hand-written head agrees with the library's attention, the one every chapter's
//! models run.

use ch00_attention::example::library_attention;
use ch00_attention::{Example, Settings, work};
use transformer::MaskKind;

#[test]
fn the_worked_example_matches_the_snapshot() {
    let out = transformer::chapter::quick::<Settings>().unwrap();
    insta::assert_json_snapshot!("example", out.results());
    for (name, claim) in out.claim_set().unwrap().iter() {
        assert!(claim.holds, "{name}: {}", claim.text);
    }
}

#[test]
fn the_hand_written_head_equals_the_library_attention() {
    let w = work(&Example::book()).unwrap();
    for (mask, pass) in
        [(MaskKind::Bidirectional, &w.bidirectional), (MaskKind::Causal, &w.causal)]
    {
        let lib = library_attention(&w, &mask).unwrap();
        for (a, b) in pass.output.iter().flatten().zip(lib.iter().flatten()) {
            assert!((a - b).abs() < 1e-5, "{mask:?}: {a} vs {b}");
        }
    }
}

#[test]
fn the_command_line_keeps_the_harness_contract() {
    transformer::chapter::check_cli::<ch00_attention::Settings>(
        env!("CARGO_BIN_EXE_ch00-attention"),
        "",
    );
}
