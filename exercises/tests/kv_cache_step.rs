// Compiles exercises/starters/kv_cache_step.rs into this test (the solution with
// --features solutions).
exercises::exercise!(kv_cache_step);

use candle_core::Tensor;
use transformer::MaskKind;
use transformer::layers::softmax_last;
use transformer::rng;

#[test]
fn appending_grows_the_cache_by_one_key_and_one_value() {
    let mut c = HeadCache::new(3);
    assert!(c.is_empty());
    c.append(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
    c.append(&[7.0, 8.0, 9.0], &[10.0, 11.0, 12.0]);
    assert_eq!(c.len(), 2);
    assert_eq!(c.keys, [1.0, 2.0, 3.0, 7.0, 8.0, 9.0]);
    assert_eq!(c.values, [4.0, 5.0, 6.0, 10.0, 11.0, 12.0]);
    // The chapter's formula for one layer and one head: 2 × head_dim × 4 bytes per
    // position.
    assert_eq!(c.bytes(), 2 * 2 * 3 * 4);
}

#[test]
#[should_panic]
fn a_key_of_the_wrong_length_is_refused() {
    HeadCache::new(4).append(&[1.0, 2.0], &[1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn one_position_returns_its_value_and_equal_keys_average_their_values() {
    let mut c = HeadCache::new(2);
    assert_eq!(c.step(&[0.3, -1.0], &[5.0, 1.0], &[2.0, -4.0]), [2.0, -4.0]);
    let mut c = HeadCache::new(2);
    c.append(&[1.0, 1.0], &[0.0, 2.0]);
    c.append(&[1.0, 1.0], &[4.0, 0.0]);
    let out = c.attend(&[0.5, 2.0]);
    assert!((out[0] - 2.0).abs() < 1e-6 && (out[1] - 1.0).abs() < 1e-6, "{out:?}");
}

#[test]
fn scores_are_divided_by_the_square_root_of_the_head_dimension() {
    // Head dimension 4, so √d = 2. The query scores 2 against the first key and 0
    // against the second; divided by 2 that is 1 and 0, so the weights are
    // softmax(1, 0) = (0.731, 0.269).
    let mut c = HeadCache::new(4);
    c.append(&[0.5, 0.5, 0.5, 0.5], &[1.0, 0.0, 0.0, 0.0]);
    c.append(&[0.0, 0.0, 0.0, 0.0], &[0.0, 1.0, 0.0, 0.0]);
    let out = c.attend(&[1.0, 1.0, 1.0, 1.0]);
    let e = std::f32::consts::E;
    let expected = [e / (e + 1.0), 1.0 / (e + 1.0), 0.0, 0.0];
    let close = out.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-5);
    let unscaled = (out[0] - 0.880_797).abs() < 1e-4;
    assert!(
        close,
        "your answer: {out:?}\nexpected:    {expected:?}\n{}",
        if unscaled {
            "your weights are softmax(2, 0): the scores are missing the 1/√d scale"
        } else {
            "the weights should be softmax(q·k / √d) over the cached keys"
        }
    );
}

#[test]
fn large_scores_do_not_overflow() {
    let mut c = HeadCache::new(1);
    c.append(&[1000.0], &[1.0]);
    c.append(&[999.0], &[3.0]);
    let out = c.attend(&[100.0]);
    assert!(out[0].is_finite() && (out[0] - 1.0).abs() < 1e-3, "{out:?}");
}

/// Full causal attention over a whole sequence, written as the library's reference
/// attention computes it: every score, the library's causal mask, its reference
/// softmax, then the values.
fn full_causal(q: &[f32], k: &[f32], v: &[f32], t: usize, d: usize) -> Vec<f32> {
    let dev = &transformer::DEVICE;
    let q = Tensor::from_slice(q, (t, d), dev).unwrap();
    let k = Tensor::from_slice(k, (t, d), dev).unwrap();
    let v = Tensor::from_slice(v, (t, d), dev).unwrap();
    let scores =
        (q.matmul(&k.t().unwrap()).unwrap() * (1.0 / (d as f64).sqrt())).unwrap();
    let mask = MaskKind::Causal
        .additive(1, t, t, 0)
        .unwrap()
        .unwrap()
        .reshape((t, t))
        .unwrap();
    let probs = softmax_last(&scores.broadcast_add(&mask).unwrap()).unwrap();
    probs.matmul(&v).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn decoding_step_by_step_equals_full_causal_attention() {
    for (seed, t, d) in [(1, 1, 4), (2, 9, 8), (3, 20, 16), (4, 33, 2)] {
        let mut r = rng::seeded(seed);
        let q = rng::normal_vec(&mut r, t * d, 1.0);
        let k = rng::normal_vec(&mut r, t * d, 1.0);
        let v = rng::normal_vec(&mut r, t * d, 1.0);
        let full = full_causal(&q, &k, &v, t, d);
        let mut cache = HeadCache::new(d);
        for i in 0..t {
            let row = i * d..(i + 1) * d;
            let out = cache.step(&q[row.clone()], &k[row.clone()], &v[row.clone()]);
            for (a, b) in out.iter().zip(&full[row]) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "seed {seed}, position {i}: {a} vs {b}"
                );
            }
        }
        assert_eq!(cache.len(), t);
    }
}
