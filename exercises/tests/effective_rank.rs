// Compiles exercises/starters/effective_rank.rs into this test (the solution with
// --features solutions).
exercises::exercise!(effective_rank);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12 * (1.0 + b.abs())
}

#[test]
fn the_identity_has_effective_rank_n() {
    for n in [1, 2, 7, 100] {
        let spectrum = vec![1.0; n];
        assert!(close(effective_rank(&spectrum), n as f64), "n = {n}");
        assert!(close(stable_rank(&spectrum), n as f64), "n = {n}");
    }
}

#[test]
fn a_rank_one_matrix_has_effective_rank_one() {
    let spectrum = [42.0, 0.0, 0.0, 0.0];
    assert!(close(effective_rank(&spectrum), 1.0));
    assert!(close(stable_rank(&spectrum), 1.0));
}

#[test]
fn r_equal_singular_values_and_zeros_give_r() {
    assert!(close(effective_rank(&[3.0, 3.0, 3.0, 0.0, 0.0]), 3.0));
}

#[test]
fn an_uneven_spectrum_lies_strictly_between() {
    // p = (3/4, 1/4).
    let want = (-(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln())).exp();
    assert!(close(effective_rank(&[3.0, 1.0]), want));
    assert!(close(stable_rank(&[3.0, 1.0]), 10.0 / 9.0));
    let e = effective_rank(&[3.0, 1.0]);
    assert!(1.0 < e && e < 2.0);
}

#[test]
fn both_measures_ignore_scale_and_order() {
    let a = [5.0, 2.0, 1.0, 0.5];
    let b = [0.05, 0.5, 0.1, 0.2];
    assert!(close(effective_rank(&a), effective_rank(&b)));
    assert!(close(stable_rank(&a), stable_rank(&b)));
}

#[test]
fn an_all_zero_spectrum_has_rank_zero() {
    assert_eq!(effective_rank(&[0.0, 0.0]), 0.0);
    assert_eq!(stable_rank(&[0.0, 0.0]), 0.0);
    assert_eq!(effective_rank(&[]), 0.0);
}
