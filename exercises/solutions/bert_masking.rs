// Chapter 2, exercise 1: BERT's 80/10/10 masking (reference solution).

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
    let mut input = tokens.to_vec();
    let mut weight = vec![0.0; tokens.len()];
    for i in 0..tokens.len() {
        if !chosen[i] {
            continue;
        }
        weight[i] = 1.0;
        let u = coin();
        if u < 0.8 {
            input[i] = mask_id;
        } else if u < 0.9 {
            input[i] = random_token();
        }
    }
    (input, weight)
}
