// Chapter 2, exercise 2: T5 span corruption with sentinels.
//
// T5 drops 15% of the tokens in spans of mean length 3. Each dropped span is
// replaced in the encoder's input by one sentinel, and the decoder must write the
// spans back, each after its sentinel: "Thank you <X> me to your party <Y> week." →
// "<X> for inviting <Y> last".

/// T5's encoder input and decoder target. Each maximal run of `true` in `noise` is
/// one span: in the input it becomes one sentinel (span `i` gets id `first_sentinel
/// + i`), and the target lists each sentinel followed by the tokens it replaced.
/// Both end with `eos`.
pub fn corrupt(
    tokens: &[u32],
    noise: &[bool],
    first_sentinel: u32,
    eos: u32,
) -> (Vec<u32>, Vec<u32>) {
    // TODO: walk the tokens; keep the un-noised ones in the input; at the start of
    // each span push the next sentinel to both outputs; push noised tokens to the
    // target; end with eos.
    todo!(
        "corrupt {} tokens ({} flags), sentinels from {first_sentinel}, eos {eos}",
        tokens.len(),
        noise.len()
    )
}

/// The inverse: the original tokens, from the input and the target. Ids from
/// `first_sentinel` to `first_sentinel + n_sentinels - 1` are sentinels.
pub fn restore(
    input: &[u32],
    target: &[u32],
    first_sentinel: u32,
    n_sentinels: u32,
    eos: u32,
) -> Vec<u32> {
    // TODO: cut the target into spans at its sentinels, then copy the input,
    // putting each sentinel's span where the sentinel stands. Stop at eos.
    todo!(
        "restore from {} + {} ids (sentinels {first_sentinel}.., {n_sentinels} \
         of them, eos {eos})",
        input.len(),
        target.len()
    )
}
