// Compiles exercises/starters/prefix_mask.rs into this test (the solution with --features solutions).
exercises::exercise!(prefix_mask);

use transformer::MaskKind;

#[test]
fn a_prefix_of_two_in_four_positions() {
    let (o, x) = (true, false);
    let expected = vec![
        vec![o, o, x, x], // the prefix reads the whole prefix, including position 1
        vec![o, o, x, x],
        vec![o, o, o, x], // after the prefix: causal
        vec![o, o, o, o],
    ];
    exercises::assert_mask(&prefix_mask(4, 2), &expected, "prefix_mask(4, 2)");
}

#[test]
fn an_empty_prefix_is_the_causal_mask_and_a_full_one_is_bidirectional() {
    for n in 1..8 {
        for i in 0..n {
            for j in 0..n {
                assert_eq!(prefix_mask(n, 0)[i][j], j <= i, "n = {n}, k = 0, ({i}, {j})");
                assert!(prefix_mask(n, n)[i][j], "n = {n}, k = n, ({i}, {j})");
            }
        }
    }
}

#[test]
fn it_agrees_with_the_mask_the_models_use() {
    for n in 1..12 {
        for k in 0..=n {
            let library = MaskKind::prefix(k).matrix(0, n, n, 0);
            exercises::assert_mask(&prefix_mask(n, k), &library, &format!("prefix_mask({n}, {k})"));
        }
    }
}
