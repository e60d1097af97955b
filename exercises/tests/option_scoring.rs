// Compiles exercises/starters/option_scoring.rs into this test (the solution with
// --features solutions).
exercises::exercise!(option_scoring);

use candle_core::{D, Tensor};
use transformer::rng;

/// A row of log-probabilities, from probabilities.
fn ln(probs: &[f64]) -> Vec<f64> {
    probs.iter().map(|p| p.ln()).collect()
}

#[track_caller]
fn assert_close(yours: f64, expected: f64, what: &str) {
    let close = (yours - expected).abs() < 1e-9;
    assert!(close, "{what}:\nyour answer: {yours}\nexpected:    {expected}");
}

#[test]
fn each_option_token_is_read_from_the_row_before_it() {
    // Four token ids, a prompt of two tokens (p0 p1), the option [3, 1]: the
    // sequence is p0 p1 3 1, so there are four positions and four rows.
    let log_probs = vec![
        // Position 0 predicts p1: part of the prompt, not of the option.
        ln(&[0.25, 0.25, 0.25, 0.25]),
        // Position 1, the prompt's last token, predicts option[0] = 3: 0.5.
        ln(&[0.1, 0.2, 0.2, 0.5]),
        // Position 2, option[0], predicts option[1] = 1: 0.25.
        ln(&[0.4, 0.25, 0.25, 0.1]),
        // Position 3 predicts whatever would follow the option.
        ln(&[0.7, 0.1, 0.1, 0.1]),
    ];
    let yours = option_log_likelihood(&log_probs, 2, &[3, 1]);
    let expected = (0.5f64 * 0.25).ln();
    // Reading option[j] from row prompt_len + j (its own position) gives 0.1 · 0.1.
    let own_rows = (0.1f64 * 0.1).ln();
    assert!(
        (yours - expected).abs() < 1e-9,
        "your answer: {yours}\nexpected:    {expected} (= ln 0.5 + ln 0.25)\n{}",
        if (yours - own_rows).abs() < 1e-9 {
            "you read each token's own row; the row that predicts option[j] is \
             prompt_len - 1 + j"
        } else {
            "option[j] is predicted by row prompt_len - 1 + j"
        }
    );
}

#[test]
fn one_token_options_read_the_prompts_last_row_and_an_empty_option_scores_zero() {
    let log_probs = vec![
        // Row 0 predicts the token at position 1.
        ln(&[0.6, 0.3, 0.1]),
        // Row 1 predicts the token at position 2.
        ln(&[0.2, 0.2, 0.6]),
        ln(&[0.5, 0.25, 0.25]),
    ];
    // A prompt of one token: its only row predicts the option.
    let yours = option_log_likelihood(&log_probs, 1, &[1]);
    assert_close(yours, 0.3f64.ln(), "a prompt of 1, the option [1]");
    // A prompt of two tokens: row 1 predicts the option.
    let yours = option_log_likelihood(&log_probs, 2, &[2]);
    assert_close(yours, 0.6f64.ln(), "a prompt of 2, the option [2]");
    // Nothing to predict, nothing to add up.
    assert_eq!(option_log_likelihood(&log_probs, 2, &[]), 0.0);
}

#[test]
fn rows_of_the_prompt_and_rows_past_the_option_do_not_count() {
    // A prompt of three tokens and the option [1]: only row 2 counts.
    let mut log_probs = vec![
        ln(&[0.5, 0.5]),
        ln(&[0.9, 0.1]),
        // Row 2, the prompt's last, predicts the option's token.
        ln(&[0.2, 0.8]),
        ln(&[0.3, 0.7]),
        ln(&[0.5, 0.5]),
    ];
    let before = option_log_likelihood(&log_probs, 3, &[1]);
    assert_close(before, 0.8f64.ln(), "a prompt of 3, the option [1]");
    // Change the prompt's earlier rows and the rows past the option (padding, say).
    for i in [0, 1, 3, 4] {
        log_probs[i] = ln(&[0.01, 0.99]);
    }
    let after = option_log_likelihood(&log_probs, 3, &[1]);
    assert_eq!(before, after, "only row prompt_len - 1 + j counts for option[j]");
}

/// A made-up causal model over ten token ids: after token 5 it expects 7
/// (probability 0.9), after 7 it expects 8 (0.9), and after anything else it has no
/// idea (uniform). Row i depends on the token at position i only.
fn planted_model(sequence: &[u32]) -> Vec<Vec<f64>> {
    let expect = |want: usize| {
        let mut p = vec![0.1 / 9.0; 10];
        p[want] = 0.9;
        ln(&p)
    };
    let rows = sequence.iter().map(|&token| match token {
        5 => expect(7),
        7 => expect(8),
        _ => ln(&[0.1; 10]),
    });
    rows.collect()
}

#[test]
fn a_planted_answer_is_picked() {
    let prompt = [1, 4, 5];
    let options: [&[u32]; 4] = [&[6, 8], &[9], &[7, 8], &[7, 9]];
    let bytes = [5, 3, 4, 4];
    let scores: Vec<f64> = options
        .iter()
        .map(|option| {
            let sequence = [&prompt[..], option].concat();
            option_log_likelihood(&planted_model(&sequence), prompt.len(), option)
        })
        .collect();
    let planted = 2.0 * 0.9f64.ln();
    assert_close(scores[2], planted, "the planted option [7, 8]");
    assert_eq!(pick(&scores, &bytes), (2, 2), "scores {scores:?}");
}

#[test]
fn summed_and_per_byte_picks_can_differ() {
    // Log-likelihoods are never positive, so dividing by more bytes brings a score
    // closer to zero: length normalisation changes the pick when a long option
    // loses on its total but wins per byte. " red" (4 bytes) scores -4.0 in all,
    // -1.0 per byte; " wash the cup" (13 bytes) -6.5 in all, -0.5 per byte.
    let yours = pick(&[-4.0, -6.5], &[4, 13]);
    assert_eq!(yours, (0, 1), "(summed, per byte) for [-4.0, -6.5], [4, 13] bytes");
    // The same two, the long one first, and a third that wins neither way.
    let yours = pick(&[-6.5, -4.0, -9.0], &[13, 4, 6]);
    assert_eq!(yours, (1, 0), "(summed, per byte) for [-6.5, -4.0, -9.0]");
}

#[test]
fn ties_go_to_the_first_option() {
    assert_eq!(pick(&[-2.5], &[3]), (0, 0), "a single option");
    assert_eq!(pick(&[-1.0, -1.0, -1.0], &[3, 3, 3]), (0, 0), "three equal ones");
    // Options 2 and 3 tie on their totals; all four tie per byte (-0.5 each).
    let yours = pick(&[-3.0, -2.0, -1.0, -1.0], &[6, 4, 2, 2]);
    assert_eq!(yours, (2, 0), "on a tie the first option wins");
}

/// One row of a batch: a prompt and an option, as token ids.
type Row = (Vec<u32>, Vec<u32>);

/// One log-probability table per row, and the option log-likelihoods candle finds.
struct Batch {
    tables: Vec<Vec<Vec<f64>>>,
    expected: Vec<f64>,
}

/// Log-softmax over the last dimension, by hand: x − max − ln Σ exp(x − max).
fn log_softmax(x: &Tensor) -> Tensor {
    let max = x.max_keepdim(D::Minus1).unwrap();
    let shifted = x.broadcast_sub(&max).unwrap();
    let total = shifted.exp().unwrap().sum_keepdim(D::Minus1).unwrap();
    shifted.broadcast_sub(&total.log().unwrap()).unwrap()
}

/// Random logits for a batch of (prompt, option) rows padded to one length, their
/// log-softmax as one table per row, and each row's option log-likelihood computed
/// the way a language model's loss is: position i is scored on the token at i + 1
/// (a gather), and only the option's tokens count (a mask).
fn candle_batch(rows: &[Row], vocab: usize, seed: u64) -> Batch {
    let dev = &transformer::DEVICE;
    let b = rows.len();
    let t = rows.iter().map(|(p, o)| p.len() + o.len()).max().unwrap();
    let mut r = rng::seeded(seed);
    let noise = rng::normal_vec(&mut r, b * t * vocab, 2.0);
    let logits = Tensor::from_vec(noise, (b, t, vocab), dev).unwrap();
    let log_probs = log_softmax(&logits);
    let sums = log_probs.exp().unwrap().sum(D::Minus1).unwrap();
    for s in sums.flatten_all().unwrap().to_vec1::<f32>().unwrap() {
        assert!((s - 1.0).abs() < 1e-5, "a row of probabilities sums to {s}");
    }
    let (mut next, mut mask) = (Vec::new(), Vec::new());
    for (prompt, option) in rows {
        let mut tokens = [&prompt[..], option].concat();
        tokens.resize(t, 0); // padding
        next.extend_from_slice(&tokens[1..]);
        let span = prompt.len()..prompt.len() + option.len();
        mask.extend((1..t).map(|i| if span.contains(&i) { 1f32 } else { 0.0 }));
    }
    let next = Tensor::from_vec(next, (b, t - 1, 1), dev).unwrap();
    let mask = Tensor::from_vec(mask, (b, t - 1), dev).unwrap();
    let predicting = log_probs.narrow(1, 0, t - 1).unwrap().contiguous().unwrap();
    let scored = predicting.gather(&next, 2).unwrap();
    let masked = scored.squeeze(2).unwrap().mul(&mask).unwrap();
    let expected = masked.sum(1).unwrap().to_vec1::<f32>().unwrap();
    let tables = log_probs.to_vec3::<f32>().unwrap();
    let to_f64 = |row: &Vec<f32>| row.iter().map(|&x| f64::from(x)).collect();
    Batch {
        tables: tables.iter().map(|t| t.iter().map(to_f64).collect()).collect(),
        expected: expected.into_iter().map(f64::from).collect(),
    }
}

#[test]
fn a_padded_batch_agrees_with_a_candle_log_softmax() {
    // As the chapter scores a question: one prompt with each option, padded.
    let prompt = vec![3, 1, 4, 1, 5];
    let options = [vec![9], vec![2, 6], vec![5, 3, 5, 8], vec![9, 7, 9]];
    let same_prompt = options.iter().map(|o| (prompt.clone(), o.clone())).collect();
    // And prompts of different lengths in one batch, the shortest a single token.
    let mixed = vec![
        (vec![7], vec![2, 2, 8]),
        (vec![1, 8, 2, 8], vec![1]),
        (vec![4, 5, 9, 0, 4, 5, 2], vec![3, 6]),
        (vec![6, 6], vec![10, 0, 10, 0, 10]),
    ];
    let batches: [(u64, Vec<Row>); 2] = [(4, same_prompt), (5, mixed)];
    for (seed, rows) in batches {
        let batch = candle_batch(&rows, 11, seed);
        for (i, (prompt, option)) in rows.iter().enumerate() {
            let p = prompt.len();
            let yours = option_log_likelihood(&batch.tables[i], p, option);
            let expected = batch.expected[i];
            assert!(
                (yours - expected).abs() < 1e-4,
                "batch {seed}, row {i} (a prompt of {p}, the option {option:?}):\n\
                 your answer: {yours}\n\
                 candle:      {expected} (a masked gather from the log-softmax)"
            );
        }
    }
}
