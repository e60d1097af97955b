// Chapter 4, exercise 1: scoring answer options by rank classification.
//
// To ask a model a multiple-choice question zero-shot, append each answer option to
// the prompt, run the model once over the whole sequence, and add up the
// log-probabilities it gave to the option's tokens. The option with the highest
// total wins; the length-normalised variant (the EleutherAI harness's `acc_norm`)
// divides each total by the option's length in bytes first. Mind the alignment: the
// model's output at position i is its guess about the token at position i + 1.

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
    // TODO: add up, for every j, the log-probability of `option[j]` in the row of
    // the position just before it.
    todo!(
        "score {} option tokens after a prompt of {prompt_len}, from {} rows",
        option.len(),
        log_probs.len()
    )
}

/// The best option by summed log-likelihood and by log-likelihood per byte, as a
/// pair of indices `(summed, per_byte)`. `scores[o]` is option `o`'s summed
/// log-likelihood and `option_bytes[o]` its length in bytes. On a tie the earlier
/// option wins.
pub fn pick(scores: &[f64], option_bytes: &[usize]) -> (usize, usize) {
    // TODO: find the index of the largest score, then of the largest score divided
    // by its option's length in bytes, keeping the first one when two are equal.
    todo!("pick among {} options ({} lengths)", scores.len(), option_bytes.len())
}
