// Compiles exercises/starters/masked_attention.rs into this test (the solution
// with --features solutions).
exercises::exercise!(masked_attention);

use candle_core::Tensor;
use transformer::{MaskKind, rng};

/// The library's causal mask (`causal_mask` has a test of its own, below).
fn causal(t: usize) -> Vec<Vec<bool>> {
    MaskKind::Causal.matrix(0, t, t, 0)
}

/// `masked_attention` under a mask with no empty row: the answer must be `Ok`.
fn attend(
    q: &[Vec<f32>],
    k: &[Vec<f32>],
    v: &[Vec<f32>],
    mask: &[Vec<bool>],
) -> Attention {
    masked_attention(q, k, v, mask).unwrap_or_else(|e| {
        let grid = exercises::grid(mask);
        panic!(
            "your answer: Err({e:?})\n\
             expected:    Ok, since every row of this mask allows a key:\n{grid}"
        )
    })
}

#[test]
fn equal_scores_average_the_values_each_query_may_read() {
    // Every query is zero, so every score is 0, and the softmax shares each row
    // equally among the keys the mask allows: under the causal mask, query i reads
    // i + 1 keys, each with weight 1/(i + 1).
    let q = vec![vec![0.0, 0.0]; 3];
    let k = vec![vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, 6.0]];
    let v = vec![vec![3.0, 0.0], vec![0.0, 3.0], vec![6.0, 6.0]];
    let a = attend(&q, &k, &v, &causal(3));
    let third = 1.0 / 3.0;
    let weights =
        vec![vec![1.0, 0.0, 0.0], vec![0.5, 0.5, 0.0], vec![third, third, third]];
    exercises::assert_matrix(&a.weights, &weights, 1e-6, "weights", None);
    // Query 0 reads only its own value, query 1 averages values 0 and 1, and
    // query 2 all three.
    let output = vec![vec![3.0, 0.0], vec![1.5, 1.5], vec![3.0, 3.0]];
    exercises::assert_matrix(&a.output, &output, 1e-5, "output", None);
}

#[test]
fn the_attention_pages_example() {
    // The four tokens of the attention page (d = 2): its queries, keys and values,
    // read from the tables the page shows, and its weights and outputs, which the
    // page rounds to two decimals.
    let table = exercises::generated_table;
    let (q, k, v) = (table("ch00/q.md"), table("ch00/k.md"), table("ch00/v.md"));
    for (name, mask) in
        [("causal", MaskKind::Causal), ("bidirectional", MaskKind::Bidirectional)]
    {
        let a = attend(&q, &k, &v, &mask.matrix(0, 4, 4, 0));
        let weights = table(&format!("ch00/{name}_weights.md"));
        let output = table(&format!("ch00/{name}_output.md"));
        let what = format!("{name} weights (the page's, to two decimals)");
        exercises::assert_matrix(&a.weights, &weights, 0.0051, &what, None);
        let what = format!("{name} output (the page's, to two decimals)");
        exercises::assert_matrix(&a.output, &output, 0.0051, &what, None);
    }
}

#[test]
fn scores_are_divided_by_the_square_root_of_d() {
    // d = 4, so √d = 2. Both queries score q·k = 2 against key 0 and 0 against
    // key 1. Divided by 2, that is 1 and 0, and softmax(1, 0) is
    // (e/(e + 1), 1/(e + 1)) = (0.731, 0.269).
    let q = vec![vec![1.0; 4]; 2];
    let k = vec![vec![0.5; 4], vec![0.0; 4]];
    let v = vec![vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0]];
    let a = attend(&q, &k, &v, &[vec![true; 2], vec![true; 2]]);
    let e = std::f32::consts::E;
    let (w0, w1) = (e / (e + 1.0), 1.0 / (e + 1.0));
    let first =
        a.weights.first().and_then(|row| row.first()).copied().unwrap_or(f32::NAN);
    let diagnosis = if (first - 0.880_797).abs() < 1e-4 {
        Some(
            "your weights are softmax(2, 0) = (0.881, 0.119): \
             looks like the scores were not divided by √d",
        )
    } else if (first - 0.622_459).abs() < 1e-4 {
        Some(
            "your weights are softmax(0.5, 0) = (0.622, 0.378): \
             looks like the scores were divided by d, not √d",
        )
    } else if (first - 0.804_429).abs() < 1e-4 {
        Some(
            "your weights are softmax(√2, 0) = (0.804, 0.196): looks like \
             the scores were divided by √t (t = 2 tokens), not √d (d = 4)",
        )
    } else {
        None
    };
    let weights = [vec![w0, w1], vec![w0, w1]];
    exercises::assert_matrix(&a.weights, &weights, 1e-5, "weights", diagnosis);
    // Each value row is a unit vector, so each output row repeats its weights.
    let output = [vec![w0, w1, 0.0, 0.0], vec![w0, w1, 0.0, 0.0]];
    exercises::assert_matrix(&a.output, &output, 1e-5, "output", diagnosis);
}

#[test]
fn the_mask_is_applied_before_the_softmax() {
    // A blocked key gets the score −∞ before the softmax, so its weight is exactly
    // 0 and the weights of the keys a query may read still add up to 1. The
    // attention page's example again, under the causal mask.
    let table = exercises::generated_table;
    let (q, k, v) = (table("ch00/q.md"), table("ch00/k.md"), table("ch00/v.md"));
    let unmasked = table("ch00/bidirectional_weights.md");
    let mask = causal(4);
    let a = attend(&q, &k, &v, &mask);
    let (yours, grid) = (exercises::table(&a.weights), exercises::grid(&mask));
    for (i, row) in a.weights.iter().enumerate() {
        for (j, &w) in row.iter().enumerate() {
            assert!(
                mask[i][j] || w == 0.0,
                "query {i} gives weight {w} to key {j}, which the mask blocks: \
                 a blocked key must get the score −∞ before the softmax, so \
                 that its weight is exactly 0\n\n\
                 your weights:\n{yours}\n\nthe mask:\n{grid}"
            );
        }
        let sum: f32 = row.iter().sum();
        let near = |j: usize| (row[j] - unmasked[i][j]).abs() < 0.0051;
        let why = if (0..4).all(|j| !mask[i][j] || near(j)) {
            "looks like the mask was applied after the softmax: the softmax \
             had already shared the row among all keys, blocked ones \
             included, and zeroing those afterwards loses their share. Give \
             blocked keys the score −∞ before the softmax"
        } else {
            "each row of weights is a softmax over the keys the query may \
             read, so it adds up to 1"
        };
        assert!(
            (sum - 1.0).abs() < 1e-5,
            "row {i} of your weights adds up to {sum}, not 1: {why}\n\n\
             your weights:\n{yours}"
        );
    }
}

#[test]
fn large_scores_do_not_overflow() {
    // d = 1. Query 0 scores 1000 and 900 on the keys it may read. Queries 1 and 2
    // score −1000 and −900 on keys 0 and 1, and 1000 on key 2, which only query 2
    // may read. e^1000 overflows f32 and e^−1000 underflows to 0, yet the softmax
    // depends only on the differences between scores: each row puts (almost) all
    // of its weight on its largest allowed score.
    let q = vec![vec![100.0], vec![-100.0], vec![-100.0]];
    let k = vec![vec![10.0], vec![9.0], vec![-10.0]];
    let v = vec![vec![1.0], vec![3.0], vec![5.0]];
    let (o, x) = (true, false);
    let mask = vec![vec![o, o, x], vec![o, o, x], vec![o, o, o]];
    let a = attend(&q, &k, &v, &mask);
    let finite = |i: usize| {
        a.weights.get(i).is_some_and(|r| r.iter().all(|w| w.is_finite()))
    };
    let diagnosis = if !finite(0) || !finite(2) {
        Some(
            "your weights hold NaN or ∞: e^1000 overflows f32 (∞/∞ is NaN) \
             and e^−1000 underflows to 0 (0/0 is NaN). Subtract each row's \
             largest allowed score from its scores before exponentiating: the \
             softmax does not change, and the largest exponential is e^0 = 1",
        )
    } else if !finite(1) {
        Some(
            "row 1 holds NaN or ∞ while rows 0 and 2 are fine: its blocked \
             key scores 1000, the keys it may read only −1000 and −900. Looks \
             like you subtracted the largest score of the whole row, blocked \
             keys included; subtract the largest allowed score",
        )
    } else {
        None
    };
    let weights = [vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0], vec![0.0, 0.0, 1.0]];
    exercises::assert_matrix(&a.weights, &weights, 1e-6, "weights", diagnosis);
    let output = [vec![1.0], vec![3.0], vec![5.0]];
    exercises::assert_matrix(&a.output, &output, 1e-5, "output", diagnosis);
}

#[test]
fn a_query_that_may_read_nothing_is_an_error() {
    // A softmax over no scores at all is 0/0. The chapter's masks never leave a
    // row empty (every token reads at least itself), so a mask that does is a
    // mistake: `masked_attention` reports the first such row instead of NaN.
    let (o, x) = (true, false);
    let mask = vec![vec![o, x, x], vec![x, x, x], vec![x, x, x]];
    let q = vec![vec![1.0, 0.0]; 3];
    let (k, v) = (q.clone(), q.clone());
    let grid = exercises::grid(&mask);
    match masked_attention(&q, &k, &v, &mask) {
        Err(EmptyRow { query: 1 }) => {}
        Err(e) => panic!(
            "your answer: Err({e:?})\n\
             expected:    Err(EmptyRow {{ query: 1 }}), the first row of \
             this mask with no key allowed:\n{grid}"
        ),
        Ok(a) => {
            let nan = a.weights.iter().flatten().any(|w| w.is_nan());
            panic!(
                "your answer: Ok, with the weights\n{}\n\
                 expected:    Err(EmptyRow {{ query: 1 }}): query 1 may read \
                 no key, so its softmax is 0/0{}. Look for a row with nothing \
                 allowed before the softmax. The mask:\n{grid}",
                exercises::table(&a.weights),
                if nan { " (the NaN in your weights)" } else { "" }
            )
        }
    }
}

#[test]
fn the_causal_mask_lets_every_token_read_itself() {
    let (o, x) = (true, false);
    let expected = vec![
        vec![o, x, x, x], // the first token reads only itself
        vec![o, o, x, x],
        vec![o, o, o, x],
        vec![o, o, o, o], // the last reads every token
    ];
    let yours = causal_mask(4);
    let rule = |allowed: fn(usize, usize) -> bool| -> Vec<Vec<bool>> {
        (0..4).map(|i| (0..4).map(|j| allowed(i, j)).collect()).collect()
    };
    let what = if yours == rule(|i, j| j < i) {
        "causal_mask(4) is off by one: token i must also read token i \
         itself (j <= i, not j < i)"
    } else if yours == rule(|i, j| j <= i + 1) {
        "causal_mask(4) is off by one: token i reads token i + 1, which is \
         in its future (j <= i, not j <= i + 1)"
    } else if yours == rule(|i, j| j >= i) {
        "causal_mask(4) is transposed: row i is query i, column j is key \
         j, and query i reads the keys j <= i"
    } else {
        "causal_mask(4)"
    };
    exercises::assert_mask(&yours, &expected, what);
    for t in 1..12 {
        exercises::assert_mask(
            &causal_mask(t),
            &causal(t),
            &format!("causal_mask({t})"),
        );
    }
}

/// The library's attention (what every chapter's models run) for one head.
fn library(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    t: usize,
    d: usize,
    mask: &MaskKind,
) -> Vec<Vec<f32>> {
    let tensor = |x: &[f32]| {
        Tensor::from_slice(x, (1, 1, t, d), &transformer::DEVICE).unwrap()
    };
    let (q, k, v) = (tensor(q), tensor(k), tensor(v));
    let out = transformer::attention::scaled_dot_product(&q, &k, &v, mask).unwrap();
    out.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap()
}

#[test]
fn it_agrees_with_the_attention_the_models_use() {
    for (seed, t, d) in [(1, 1, 4), (2, 7, 8), (3, 16, 16), (4, 5, 2)] {
        let mut r = rng::seeded(seed);
        let mut draw = || rng::normal_vec(&mut r, t * d, 1.0);
        let (q, k, v) = (draw(), draw(), draw());
        let rows = |x: &[f32]| x.chunks(d).map(<[f32]>::to_vec).collect::<Vec<_>>();
        for mask in
            [MaskKind::Causal, MaskKind::Bidirectional, MaskKind::prefix(t / 2)]
        {
            let yours =
                attend(&rows(&q), &rows(&k), &rows(&v), &mask.matrix(0, t, t, 0));
            let expected = library(&q, &k, &v, t, d, &mask);
            let what =
                format!("output, seed {seed}, t = {t}, d = {d}, {mask:?} mask");
            exercises::assert_matrix(&yours.output, &expected, 1e-5, &what, None);
        }
    }
}
