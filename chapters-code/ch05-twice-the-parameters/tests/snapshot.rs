//! The quick configuration's report, snapshotted (losses and percentages are
//! rounded in the report itself).

use ch05_twice_the_parameters::{CONTENDERS, Settings, compute};
use transformer::chapter::Preset;

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
