// Chapter 1, exercise 2: the prefix-LM mask.
//
// A prefix LM (UniLM's sequence-to-sequence mask, Wang et al.'s "non-causal
// decoder") lets the first `k` positions see each other in both directions; every
// later position sees the prefix and the positions before it, as in a causal
// decoder.

/// `mask[i][j]` is `true` when query position `i` may attend to key position `j`,
/// for a sequence of `n` positions whose first `k` form the prefix.
pub fn prefix_mask(n: usize, k: usize) -> Vec<Vec<bool>> {
    // TODO: build the n × n matrix. Position i may read j when j is in the prefix,
    // or when j does not lie in i's future.
    todo!("build the prefix-LM mask for n = {n}, k = {k}")
}
