//! The quick configuration's report, snapshotted (numbers rounded in the report itself).

use ch01_four_masks::{Preset, Settings, results_json, run};

#[test]
fn quick_report_matches_the_snapshot() {
    let settings = Settings::new(Preset::Quick, None, None).unwrap();
    let chapter = run(&settings).unwrap();
    insta::assert_json_snapshot!("quick_report", results_json(&chapter.report));
    let tables: Vec<_> = chapter.tables.iter().filter(|(f, _)| *f != "sharing.md").collect();
    for (file, text) in tables {
        insta::assert_snapshot!(format!("quick_{}", file.trim_end_matches(".md")), text);
    }
}

#[test]
fn every_count_matches_the_closed_form_formulas() {
    for preset in [Preset::Quick, Preset::Default] {
        let settings = Settings::new(preset, None, None).unwrap();
        let chapter = run(&settings).unwrap();
        for f in &chapter.report.families {
            assert!(f.cost.matches_formulas, "{preset:?} {}: {:?}", f.name, f.cost);
        }
        let sharing = &chapter.report.sharing;
        assert!(sharing.reach_equals_mask);
        assert_eq!(sharing.same_rows_max_diff_layer1, 0.0);
        // The first k − 1 rows differ between the masks; exactly those move in layer 1.
        assert_eq!(sharing.changed_after_layer1, settings.prefix_len - 1);
        assert_eq!(sharing.changed_in_logits, settings.seq_len);
    }
}

#[test]
fn t5_accounting_holds_with_our_numbers() {
    let chapter = run(&Settings::new(Preset::Default, None, None).unwrap()).unwrap();
    let t5 = &chapter.report.t5;
    assert!((1.0..1.25).contains(&t5.params_ratio_ed_to_2l), "{t5:?}");
    assert!((0.9..1.2).contains(&t5.flops_ratio_ed_to_l), "{t5:?}");
    assert!((0.45..0.7).contains(&t5.flops_ratio_ed_to_2l), "{t5:?}");
}
