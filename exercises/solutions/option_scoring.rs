// Chapter 4, exercise 1: scoring answer options by rank classification (reference
// solution).

/// Summed log-likelihood of `option` after a prompt of `prompt_len` tokens.
///
/// `log_probs[i][v]` is the model's log-probability that the token after position
/// `i` is `v`, for the sequence made of the prompt followed by the option's tokens
/// (one row per position of that sequence; rows past the option, such as padding,
/// are ignored). Option token `option[j]` stands at position `prompt_len + j`.
pub fn option_log_likelihood(
    log_probs: &[Vec<f64>], // a row per position, a column per token id
    prompt_len: usize,      // at least 1
    option: &[u32],         // the option's token ids, in order
) -> f64 {
    assert!(prompt_len > 0, "the first option token is predicted from the prompt");
    let mut total = 0.0;
    for (j, &token) in option.iter().enumerate() {
        // option[j] stands at position prompt_len + j, so the row that predicts it
        // is the one before it.
        total += log_probs[prompt_len - 1 + j][token as usize];
    }
    total
}

/// The best option by summed log-likelihood and by log-likelihood per byte, as a
/// pair of indices `(summed, per_byte)`. `scores[o]` is option `o`'s summed
/// log-likelihood and `option_bytes[o]` its length in bytes. On a tie the earlier
/// option wins.
pub fn pick(scores: &[f64], option_bytes: &[usize]) -> (usize, usize) {
    assert!(!scores.is_empty(), "no options to pick from");
    assert_eq!(scores.len(), option_bytes.len(), "one length per option");
    let bytes = option_bytes.iter().map(|&b| b as f64);
    let per_byte: Vec<f64> = scores.iter().zip(bytes).map(|(s, b)| s / b).collect();
    (first_best(scores), first_best(&per_byte))
}

/// Index of the largest value; only a strictly larger value replaces the best so
/// far, so a tie keeps the earlier index (`Iterator::max_by` would keep the later
/// one).
fn first_best(xs: &[f64]) -> usize {
    (1..xs.len()).fold(0, |best, o| if xs[o] > xs[best] { o } else { best })
}
