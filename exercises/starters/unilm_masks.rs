// Chapter 1, exercise 3: UniLM's four self-attention masks.
//
// UniLM (Dong et al. 2019, arXiv 1905.03197) trains one shared Transformer with
// four objectives; only the mask tells them apart. The sequence-to-sequence
// objective sees a source segment of `source` tokens followed by the target.

/// The objective a training example was drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Every token sees every token (BERT's cloze task).
    Bidirectional,
    /// Each token sees itself and the tokens on its left.
    LeftToRight,
    /// Each token sees itself and the tokens on its right.
    RightToLeft,
    /// The source is read in both directions; a target token sees the whole source
    /// and the target tokens up to itself. The source never sees the target.
    SeqToSeq { source: usize },
}

/// `mask[i][j]` is `true` when position `i` may attend to position `j`, for `n`
/// positions.
pub fn unilm_mask(objective: Objective, n: usize) -> Vec<Vec<bool>> {
    // TODO: return one n × n matrix per objective, e.g. with a `match` on
    // `objective` that gives a rule `allowed(i, j)`, then build the rows from that
    // rule.
    todo!("the {objective:?} mask for {n} positions")
}
