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
    s.iter()
        .enumerate()
        .map(|(i, row)| {
            let max = row[..=i].iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse =
                max + row[..=i].iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            row[i] - lse
        })
        .sum()
}

/// Numerical rank by Gaussian elimination with complete pivoting: at step `k`, move
/// the largest remaining entry (in absolute value) to position `(k, k)`; stop when
/// it is at most `rel_tol` times the first pivot (or exactly zero). Returns the
/// number of pivots taken.
pub fn pivoted_rank(a: &[Vec<f64>], rel_tol: f64) -> usize {
    let mut m = a.to_vec();
    let (rows, cols) = (m.len(), m.first().map_or(0, Vec::len));
    let mut first = 0.0;
    for k in 0..rows.min(cols) {
        let (mut pi, mut pj, mut best) = (k, k, 0.0);
        for (i, row) in m.iter().enumerate().skip(k) {
            for (j, x) in row.iter().enumerate().skip(k) {
                if x.abs() > best {
                    (pi, pj, best) = (i, j, x.abs());
                }
            }
        }
        if k == 0 {
            first = best;
        }
        if best == 0.0 || best <= rel_tol * first {
            return k;
        }
        m.swap(k, pi);
        for row in m.iter_mut() {
            row.swap(k, pj);
        }
        let pivot = m[k].clone();
        for row in m.iter_mut().skip(k + 1) {
            let f = row[k] / pivot[k];
            for (x, p) in row.iter_mut().zip(&pivot).skip(k) {
                *x -= f * p;
            }
        }
    }
    rows.min(cols)
}
