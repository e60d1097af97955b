// Chapter 2, exercise 1: BERT's 80/10/10 masking.
//
// BERT chooses 15% of the positions for prediction. A chosen token is replaced by
// [MASK] 80% of the time, by a random token 10% of the time, and left unchanged 10%
// of the time; only the chosen positions receive a loss. Here the positions are
// already chosen: write the rest.

/// Corrupt the `chosen` positions of `tokens` as BERT does, and return the model's
/// input and the loss weights (1.0 at the chosen positions, 0.0 elsewhere).
///
/// For each chosen position, from left to right, draw `coin()` once (uniform in [0,
/// 1)): below 0.8 the token becomes `mask_id`; from 0.8 to below 0.9 it becomes
/// `random_token()` (drawn only then); from 0.9 on it stays as it is. Positions
/// that are not chosen are copied.
pub fn bert_mask(
    tokens: &[u32],
    chosen: &[bool],
    mask_id: u32,
    coin: &mut dyn FnMut() -> f64,
    random_token: &mut dyn FnMut() -> u32,
) -> (Vec<u32>, Vec<f32>) {
    // TODO: copy the tokens, then visit the chosen positions in order: set the
    // weight, draw the coin, and replace the token according to where the draw
    // falls.
    let _ = (coin, random_token);
    todo!(
        "mask {} of {} positions with [MASK] = {mask_id}",
        chosen.len(),
        tokens.len()
    )
}
