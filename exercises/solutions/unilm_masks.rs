// Chapter 1, exercise 3: UniLM's four self-attention masks (reference solution).

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
    let allowed = |i: usize, j: usize| match objective {
        Objective::Bidirectional => true,
        Objective::LeftToRight => j <= i,
        Objective::RightToLeft => j >= i,
        Objective::SeqToSeq { source } => j < source || j <= i,
    };
    (0..n).map(|i| (0..n).map(|j| allowed(i, j)).collect()).collect()
}
