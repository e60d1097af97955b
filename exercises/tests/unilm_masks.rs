// Compiles exercises/starters/unilm_masks.rs into this test (the solution with
// --features solutions).
exercises::exercise!(unilm_masks);

use transformer::MaskKind;

#[test]
fn the_paper_example_source_of_four_target_of_four() {
    // UniLM's figure: "[SOS] t1 t2 [EOS]" as source, "t3 t4 t5 [EOS]" as target.
    let m = unilm_mask(Objective::SeqToSeq { source: 4 }, 8);
    for i in 0..8 {
        for j in 0..8 {
            let source_key = j < 4;
            let target_key_not_in_future = j >= 4 && j <= i;
            assert_eq!(
                m[i][j],
                source_key || target_key_not_in_future,
                "({i}, {j})"
            );
        }
    }
    // The source block never reads the target; the top-left block is full.
    assert!(m[..4].iter().all(|row| row[4..].iter().all(|&b| !b)));
    assert!(m[..4].iter().all(|row| row[..4].iter().all(|&b| b)));
}

#[test]
fn the_three_language_model_masks() {
    for n in 1..10 {
        let lr = unilm_mask(Objective::LeftToRight, n);
        let rl = unilm_mask(Objective::RightToLeft, n);
        let bi = unilm_mask(Objective::Bidirectional, n);
        exercises::assert_mask(
            &lr,
            &MaskKind::Causal.matrix(0, n, n, 0),
            &format!("left to right, n = {n}"),
        );
        exercises::assert_mask(
            &bi,
            &MaskKind::Bidirectional.matrix(0, n, n, 0),
            &format!("bidirectional, n = {n}"),
        );
        for i in 0..n {
            for j in 0..n {
                assert_eq!(
                    rl[i][j], lr[j][i],
                    "right to left is left to right transposed, n = {n}"
                );
            }
        }
    }
}

#[test]
fn seq_to_seq_is_the_prefix_lm_mask_the_models_use() {
    for n in 1..12 {
        for source in 0..=n {
            let library = MaskKind::prefix(source).matrix(0, n, n, 0);
            exercises::assert_mask(
                &unilm_mask(Objective::SeqToSeq { source }, n),
                &library,
                &format!("sequence-to-sequence, n = {n}, source = {source}"),
            );
        }
    }
}

#[test]
fn no_row_is_ever_empty() {
    for n in 1..10 {
        for objective in [
            Objective::Bidirectional,
            Objective::LeftToRight,
            Objective::RightToLeft,
            Objective::SeqToSeq { source: n / 2 },
        ] {
            for (i, row) in unilm_mask(objective, n).iter().enumerate() {
                assert!(row[i], "{objective:?}: position {i} must see itself");
            }
        }
    }
}
