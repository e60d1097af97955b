// Chapter 1, exercise 2: the prefix-LM mask (reference solution).

/// `mask[i][j]` is `true` when query position `i` may attend to key position `j`,
/// for a sequence of `n` positions whose first `k` form the prefix.
pub fn prefix_mask(n: usize, k: usize) -> Vec<Vec<bool>> {
    (0..n).map(|i| (0..n).map(|j| j < k || j <= i).collect()).collect()
}
