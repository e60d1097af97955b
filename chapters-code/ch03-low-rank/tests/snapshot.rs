//! The quick configuration's report, rounded, as an insta snapshot; and its outputs
//! on disk.

use ch03_low_rank::{RunConfig, compute, outputs};
use serde_json::Value;

/// The report without the numbers that sit at floating-point noise, which differ
/// between machines (SIMD width, summation order) even after rounding: SVD
/// condition numbers and determinants of near-singular matrices, ranks at the
/// machine-precision tolerances, and distances that have collapsed to about 1e-15.
/// `results.json` keeps all of them.
fn stable_view(report: &impl serde::Serialize) -> Value {
    let mut v = serde_json::to_value(report).unwrap();
    for masks in v["points"].as_object_mut().unwrap().values_mut() {
        for summary in masks.as_object_mut().unwrap().values_mut() {
            let m = summary.as_object_mut().unwrap();
            for key in ["log10_cond", "log10_abs_det_svd", "rank_eps", "rank_1e10"]
            {
                m.remove(key).unwrap();
            }
        }
    }
    for masks in v["collapse"]["series"].as_object_mut().unwrap().values_mut() {
        for series in masks.as_object_mut().unwrap().values_mut() {
            let s = series.as_object_mut().unwrap();
            for key in ["log10_std", "layer1", "layer2", "last"] {
                s.remove(key).unwrap();
            }
            for x in s["log10_mean"].as_array_mut().unwrap() {
                if x.as_f64().unwrap() < -12.0 {
                    *x = Value::String("below 1e-12".into());
                }
            }
        }
    }
    for model in v["trained"]["models"].as_object_mut().unwrap().values_mut() {
        for when in ["init", "trained"] {
            for head in model[when].as_array_mut().unwrap() {
                for part in ["full", "block"] {
                    if let Some(m) = head[part].as_object_mut() {
                        m.remove("log10_cond").unwrap();
                    }
                }
            }
        }
        for when in ["init_means", "trained_means"] {
            for part in ["full", "block"] {
                if let Some(m) = model[when][part].as_object_mut() {
                    m.remove("log10_cond").unwrap();
                }
            }
        }
    }
    v
}

#[test]
fn quick_report_matches_the_snapshot_and_writes_every_output() {
    let outcome = compute(&RunConfig::quick()).unwrap();
    let r = &outcome.report;
    assert!(r.checks.causal_det_positive);
    assert!(r.hadamard.all_within_bound);
    assert_eq!(r.checks.output_rank_max_excess, 0);
    // Every bidirectional matrix of a real forward pass obeys the logit bottleneck,
    // and every model learned something.
    let t = &r.trained;
    assert_eq!(t.models.len(), 3);
    for m in t.models.values() {
        assert!(m.heldout_loss_trained < m.heldout_loss_init, "{}", m.label);
        for h in m.init.iter().chain(&m.trained) {
            let bidirectional = if m.label.contains("prefix") {
                h.block.as_ref()
            } else {
                Some(&h.full)
            };
            if let Some(x) = bidirectional.and_then(|b| b.log_rank) {
                assert!(x <= t.log_rank_bound as f64, "{}: ln A rank {x}", m.label);
            }
        }
    }
    insta::assert_json_snapshot!("quick_report", stable_view(r));

    let out = outputs(&outcome).unwrap();
    let json = out.results();
    assert!(json.get("timings").is_none(), "timings stay out of results.json");
    assert!(
        json["points"]["n64_d16_b0p1"]["causal"]["effective_rank"]["mean"]
            .is_number()
    );
    for f in [
        "spectra.svg",
        "collapse.svg",
        "headline.md",
        "hadamard.md",
        "trained_models.md",
        "trained_block.md",
        "trained_full.md",
        "trained_block_effective_rank.svg",
    ] {
        assert!(out.files().contains_key(f), "{f}");
    }
}
