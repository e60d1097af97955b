// Compiles exercises/starters/prefix_mask.rs into this test (the solution with
// --features solutions).
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
fn the_prefix_ends_just_before_position_k() {
    // With k = 2 the prefix is positions 0 and 1. Position 2 is the first after it:
    // the prefix never reads it, and it reads itself as any causal position does.
    let (o, x) = (true, false);
    let expected = vec![
        vec![o, o, x, x, x],
        vec![o, o, x, x, x], // the prefix's last position does not read position 2
        vec![o, o, o, x, x], // the first after the prefix reads itself and its past
        vec![o, o, o, o, x],
        vec![o, o, o, o, o],
    ];
    let yours = prefix_mask(5, 2);
    let rule = |allowed: fn(usize, usize) -> bool| -> Vec<Vec<bool>> {
        (0..5).map(|i| (0..5).map(|j| allowed(i, j)).collect()).collect()
    };
    let what = if yours == rule(|i, j| j <= 2 || j <= i) {
        "prefix_mask(5, 2) is off by one: its prefix is 3 positions long; \
         the prefix is 0..k, k excluded (j < k, not j <= k)"
    } else if yours == rule(|i, j| j < 1 || j <= i) {
        "prefix_mask(5, 2) is off by one: its prefix is 1 position long; \
         the prefix is 0..k (j < k, not j < k - 1)"
    } else if yours == rule(|i, j| j < 2 || j < i) {
        "prefix_mask(5, 2) is off by one: after the prefix, position i \
         must read itself (j <= i, not j < i)"
    } else {
        "prefix_mask(5, 2)"
    };
    exercises::assert_mask(&yours, &expected, what);
}

#[test]
fn an_empty_prefix_is_the_causal_mask_and_a_full_one_is_bidirectional() {
    for n in 1..8 {
        for i in 0..n {
            for j in 0..n {
                assert_eq!(
                    prefix_mask(n, 0)[i][j],
                    j <= i,
                    "n = {n}, k = 0, ({i}, {j})"
                );
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
            exercises::assert_mask(
                &prefix_mask(n, k),
                &library,
                &format!("prefix_mask({n}, {k})"),
            );
        }
    }
}
