// Chapter 3, exercise 2: a causal attention matrix is invertible; a diffuse
// bidirectional one is not numerically full rank.
//
// Two tools, neither needing an SVD: the log-determinant of a causal softmax
// matrix, computed from the logits so that nothing underflows, and a numerical rank
// from Gaussian elimination with complete pivoting.

/// `ln det A` for `A = causal_softmax(s)`: `A` is lower-triangular, so `det A` is
/// the product of the diagonal, and `ln A_ii = s_ii - ln sum_{j <= i} exp(s_ij)`.
/// Use the maximum of each row's allowed logits to keep `exp` in range.
pub fn causal_log_det(s: &[Vec<f64>]) -> f64 {
    // TODO: sum ln A_ii over the rows, computing each with a stable log-sum-exp
    // over j <= i.
    todo!("log-determinant of the causal softmax of a {}-row logit matrix", s.len())
}

/// Numerical rank by Gaussian elimination with complete pivoting: at step `k`, move
/// the largest remaining entry (in absolute value) to position `(k, k)`; stop when
/// it is at most `rel_tol` times the first pivot (or exactly zero). Returns the
/// number of pivots taken.
pub fn pivoted_rank(a: &[Vec<f64>], rel_tol: f64) -> usize {
    // TODO: eliminate on a copy of `a`, swapping rows and columns to bring each
    // pivot in place.
    todo!("numerical rank of a {}-row matrix at tolerance {rel_tol}", a.len())
}
