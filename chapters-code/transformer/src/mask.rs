//! Attention masks: the one thing that separates the four architectures.
//!
//! A mask answers one question: may query position `i` read key position `j`?
//! [`MaskKind::allows`] is the single source of truth; the additive mask tensors
//! the models use are built from it, so what the book draws is what the models
//! compute.

use candle_core::{Result, Tensor};

/// Which positions may attend to which, for one self-attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskKind {
    /// Every position sees every position (BERT, the T5 encoder).
    Bidirectional,
    /// Position `i` sees positions `0..=i` (GPT, every decoder).
    Causal,
    /// Bidirectional inside the first `k` positions, causal after them (UniLM's
    /// sequence-to-sequence mask; Wang et al.'s "non-causal decoder").
    /// One prefix length per batch row; a single value applies to every row.
    Prefix(Vec<usize>),
    /// Bidirectional over the first `len` positions of each row, which are the
    /// row's real tokens; the padding after them is never read (an encoder over a
    /// batch of sources of different lengths). One length per batch row; a single
    /// value applies to every row.
    Padded(Vec<usize>),
    /// A different direction per head (Su's second experiment): of `heads` heads,
    /// the first `forward` see positions `0..=i` (forward-causal) and the rest
    /// positions `i..` (backward-causal). Each head is triangular; together they
    /// cover the whole row, so the layer as a whole reads in both directions.
    ForwardBackward { heads: usize, forward: usize },
}

// ANCHOR: allows
impl MaskKind {
    /// A prefix mask with the same prefix length `k` for every row.
    pub fn prefix(k: usize) -> Self {
        MaskKind::Prefix(vec![k])
    }

    /// May query position `i` attend to key position `j` in batch row `row`? For a
    /// mask that differs per head this answers for head 0; see
    /// [`MaskKind::allows_head`].
    pub fn allows(&self, row: usize, i: usize, j: usize) -> bool {
        self.allows_head(row, 0, i, j)
    }

    /// The same question for one head.
    pub fn allows_head(&self, row: usize, head: usize, i: usize, j: usize) -> bool {
        match self {
            MaskKind::Bidirectional => true,
            MaskKind::Causal => j <= i,
            MaskKind::Prefix(ks) => {
                let k = if ks.len() == 1 { ks[0] } else { ks[row] };
                j <= i || j < k
            }
            MaskKind::Padded(lens) => {
                j < if lens.len() == 1 { lens[0] } else { lens[row] }
            }
            MaskKind::ForwardBackward { forward, .. } => {
                if head < *forward {
                    j <= i
                } else {
                    j >= i
                }
            }
        }
    }
}
// ANCHOR_END: allows

impl MaskKind {
    /// Number of distinct mask rows: 1 unless prefix lengths differ per row.
    fn rows(&self, batch: usize) -> usize {
        match self {
            MaskKind::Prefix(ks) | MaskKind::Padded(ks) if ks.len() > 1 => {
                assert_eq!(ks.len(), batch, "one length per batch row");
                batch
            }
            _ => 1,
        }
    }

    /// The mask as a boolean matrix (`t_q` × `t_k`) for batch row `row`; query `i`
    /// sits at absolute position `offset + i` (non-zero when decoding with a
    /// cache).
    pub fn matrix(
        &self,
        row: usize,
        t_q: usize,
        t_k: usize,
        offset: usize,
    ) -> Vec<Vec<bool>> {
        (0..t_q)
            .map(|i| (0..t_k).map(|j| self.allows(row, offset + i, j)).collect())
            .collect()
    }

    /// Number of distinct per-head masks: 1 unless the mask differs per head.
    pub fn heads(&self) -> usize {
        match self {
            MaskKind::ForwardBackward { heads, .. } => *heads,
            _ => 1,
        }
    }

    /// An additive mask of shape `[rows, heads, t_q, t_k]` (`heads` from
    /// [`MaskKind::heads`]): 0 where allowed, −∞ where blocked. Returns `None` for
    /// a bidirectional mask (nothing to add).
    pub fn additive(
        &self,
        batch: usize,
        t_q: usize,
        t_k: usize,
        offset: usize,
    ) -> Result<Option<Tensor>> {
        if *self == MaskKind::Bidirectional {
            return Ok(None);
        }
        let (rows, heads) = (self.rows(batch), self.heads());
        let mut data = Vec::with_capacity(rows * heads * t_q * t_k);
        for row in 0..rows {
            for head in 0..heads {
                for i in 0..t_q {
                    for j in 0..t_k {
                        let ok = self.allows_head(row, head, offset + i, j);
                        data.push(if ok { 0f32 } else { f32::NEG_INFINITY });
                    }
                }
            }
        }
        Tensor::from_vec(data, (rows, heads, t_q, t_k), &crate::DEVICE).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn causal_is_lower_triangular(n in 1usize..40) {
            let m = MaskKind::Causal.matrix(0, n, n, 0);
            for i in 0..n { for j in 0..n { prop_assert_eq!(m[i][j], j <= i); } }
        }

        #[test]
        fn prefix_is_full_on_the_prefix_block_and_causal_after(n in 1usize..40, k in 0usize..45) {
            let m = MaskKind::prefix(k).matrix(0, n, n, 0);
            for i in 0..n {
                for j in 0..n {
                    if i < k && j < k { prop_assert!(m[i][j]); }
                    if j > i && j >= k { prop_assert!(!m[i][j]); }
                    if j <= i { prop_assert!(m[i][j]); }
                }
            }
        }

        #[test]
        fn no_row_is_ever_empty(n in 1usize..30, k in 0usize..35, offset in 0usize..5) {
            for kind in [MaskKind::Bidirectional, MaskKind::Causal, MaskKind::prefix(k)] {
                let m = kind.matrix(0, n, n + offset, offset);
                for row in &m { prop_assert!(row.iter().any(|&b| b)); }
            }
        }
    }

    #[test]
    fn prefix_zero_and_one_equal_causal_and_full_prefix_equals_bidirectional() {
        let n = 9;
        let causal = MaskKind::Causal.matrix(0, n, n, 0);
        assert_eq!(MaskKind::prefix(0).matrix(0, n, n, 0), causal);
        assert_eq!(MaskKind::prefix(1).matrix(0, n, n, 0), causal);
        assert_eq!(
            MaskKind::prefix(n).matrix(0, n, n, 0),
            MaskKind::Bidirectional.matrix(0, n, n, 0)
        );
    }

    #[test]
    fn padded_rows_read_only_their_real_tokens() {
        let kind = MaskKind::Padded(vec![3, 5]);
        for i in 0..5 {
            for j in 0..5 {
                assert_eq!(kind.allows(0, i, j), j < 3);
                assert!(kind.allows(1, i, j));
            }
        }
        assert_eq!(
            MaskKind::Padded(vec![4]).matrix(0, 4, 4, 0),
            MaskKind::Bidirectional.matrix(0, 4, 4, 0)
        );
    }

    #[test]
    fn forward_backward_heads_are_lower_and_upper_triangular() {
        let kind = MaskKind::ForwardBackward { heads: 4, forward: 2 };
        let t = kind.additive(3, 6, 6, 0).unwrap().unwrap();
        assert_eq!(t.dims(), &[1, 4, 6, 6]);
        let flat: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        for head in 0..4 {
            for i in 0..6 {
                for j in 0..6 {
                    let open = flat[(head * 6 + i) * 6 + j] == 0.0;
                    assert_eq!(
                        open,
                        if head < 2 { j <= i } else { j >= i },
                        "head {head}, {i} -> {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn additive_mask_matches_the_boolean_matrix_per_row() {
        let kind = MaskKind::Prefix(vec![2, 4]);
        let t = kind.additive(2, 5, 5, 0).unwrap().unwrap();
        assert_eq!(t.dims(), &[2, 1, 5, 5]);
        let flat: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        for row in 0..2 {
            let m = kind.matrix(row, 5, 5, 0);
            for i in 0..5 {
                for j in 0..5 {
                    let x = flat[row * 25 + i * 5 + j];
                    assert_eq!(x == 0.0, m[i][j]);
                    assert_eq!(x == f32::NEG_INFINITY, !m[i][j]);
                }
            }
        }
    }
}
