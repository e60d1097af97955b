//! The experiment, part 3: one set of weights under two masks.

use candle_core::Tensor;
use serde::Serialize;
use transformer::MaskKind;
use transformer::model::DecoderOnly;

use crate::models::{Models, example, ids_tensor, run_stack};
use crate::settings::Settings;

/// Which positions a change can reach, for one mask: measured by changing one input
/// token at a time and comparing every position's logits.
#[derive(Debug, Clone)]
pub struct Dependence {
    pub file: &'static str,
    pub title: String,
    /// `effect[i][j]`: largest change of position `i`'s logits when token `j`
    /// changes, divided by row `i`'s largest; `None` when it did not change at all
    /// (bit for bit).
    pub effect: Vec<Vec<Option<f64>>>,
}

/// The weight-sharing demonstration: one decoder, two masks.
#[derive(Debug, Clone, Serialize)]
pub struct Sharing {
    /// Parameters of the one model both runs use.
    pub params: usize,
    /// Per layer (1-based, the last is the logits): positions whose output differs
    /// between the causal and the prefix run.
    pub changed_after_layer: Vec<Vec<usize>>,
    /// Positions whose mask row is the same under both masks (from `k − 1` on).
    pub same_mask_rows: usize,
    /// The first of them, `k − 1` (0-based): the last prefix token.
    pub first_same_row: usize,
    /// Positions whose output changed after layer 1, and in the logits.
    pub changed_after_layer1: usize,
    pub changed_in_logits: usize,
    /// Largest change after layer 1 at a position whose mask row is the same
    /// (exactly 0).
    pub same_rows_max_diff_layer1: f64,
    /// Largest difference in the logits between the two runs.
    pub max_logit_diff: f64,
    /// Number of (output, input) pairs that can influence each other under each
    /// mask.
    pub reachable_causal: usize,
    pub reachable_prefix: usize,
    /// Whether those pairs are exactly the pairs the mask allows.
    pub reach_equals_mask: bool,
    #[serde(skip)]
    pub rows: Vec<SharingRow>,
    #[serde(skip)]
    pub dependence: Vec<Dependence>,
}

/// One row of the sharing table: one position.
#[derive(Debug, Clone)]
pub struct SharingRow {
    pub label: String,
    pub mask_row_differs: bool,
    pub diff_per_layer: Vec<f64>,
}

fn max_abs_diff_per_position(a: &Tensor, b: &Tensor) -> anyhow::Result<Vec<f64>> {
    let d = (a - b)?.abs()?.squeeze(0)?.max(1)?.to_vec1::<f32>()?;
    Ok(d.into_iter().map(f64::from).collect())
}

// ANCHOR: sharing
/// Run the same decoder under the causal and the prefix mask and compare, layer by
/// layer.
pub fn sharing(models: &Models, s: &Settings) -> anyhow::Result<Sharing> {
    let (ids, labels) = example(s);
    let (n, k) = (s.seq_len, s.prefix_len);
    let prefix = MaskKind::prefix(k);
    let causal = run_stack(&models.stack, &ids, &MaskKind::Causal)?;
    let non_causal = run_stack(&models.stack, &ids, &prefix)?;
    // The output of layer l is the input of layer l + 1; the last "layer" is the
    // logits.
    let mut outputs = Vec::new();
    for l in 1..causal.layers.len() {
        outputs.push((
            causal.layers[l].input.clone(),
            non_causal.layers[l].input.clone(),
        ));
    }
    outputs.push((causal.logits.clone(), non_causal.logits.clone()));
    let diffs: Vec<Vec<f64>> = outputs
        .iter()
        .map(|(a, b)| max_abs_diff_per_position(a, b))
        .collect::<anyhow::Result<_>>()?;
    let changed_after_layer: Vec<Vec<usize>> =
        diffs.iter().map(|d| (0..n).filter(|&i| d[i] != 0.0).collect()).collect();
    let row_differs = |i: usize| {
        (0..n).any(|j| MaskKind::Causal.allows(0, i, j) != prefix.allows(0, i, j))
    };
    let same_rows_max_diff_layer1 = (0..n)
        .filter(|&i| !row_differs(i))
        .map(|i| diffs[0][i])
        .fold(0.0, f64::max);
    let max_logit_diff =
        diffs.last().map_or(0.0, |d| d.iter().copied().fold(0.0, f64::max));
    let rows = (0..n)
        .map(|i| SharingRow {
            label: labels[i].clone(),
            mask_row_differs: row_differs(i),
            diff_per_layer: diffs.iter().map(|d| d[i]).collect(),
        })
        .collect();
    let mut dependence = Vec::new();
    let mut reachable = Vec::new();
    let mut reach_equals_mask = true;
    for (file, name, mask) in [
        ("reach_causal.svg", "causal", MaskKind::Causal),
        ("reach_prefix.svg", "prefix", prefix.clone()),
    ] {
        let effect = reach(&models.stack, &ids, &mask)?;
        let count = effect.iter().flatten().filter(|e| e.is_some()).count();
        reach_equals_mask &= (0..n).all(|i| {
            (0..n).all(|j| effect[i][j].is_some() == mask.allows(0, i, j))
        });
        reachable.push(count);
        let title =
            format!("Which outputs a token can change: {name} mask, same weights");
        dependence.push(Dependence { file, title, effect });
    }
    Ok(Sharing {
        params: models.stack_store.num_params(),
        same_mask_rows: (0..n).filter(|&i| !row_differs(i)).count(),
        first_same_row: (0..n).find(|&i| !row_differs(i)).unwrap_or(n),
        changed_after_layer1: changed_after_layer[0].len(),
        changed_in_logits: changed_after_layer.last().map_or(0, Vec::len),
        changed_after_layer,
        same_rows_max_diff_layer1,
        max_logit_diff,
        reachable_causal: reachable[0],
        reachable_prefix: reachable[1],
        reach_equals_mask,
        rows,
        dependence,
    })
}

/// Change token `j` (to the next id) and record how much each position's logits
/// move.
pub fn reach(
    model: &DecoderOnly,
    ids: &[u32],
    mask: &MaskKind,
) -> anyhow::Result<Vec<Vec<Option<f64>>>> {
    let n = ids.len();
    let vocab = model.cfg.vocab_size as u32;
    let base = model.forward(&ids_tensor(ids)?, mask)?;
    let mut effect = vec![vec![None; n]; n];
    for j in 0..n {
        let mut changed = ids.to_vec();
        changed[j] = (changed[j] + 1) % vocab;
        let diff = max_abs_diff_per_position(
            &base,
            &model.forward(&ids_tensor(&changed)?, mask)?,
        )?;
        for i in 0..n {
            effect[i][j] = (diff[i] != 0.0).then_some(diff[i]);
        }
    }
    for row in &mut effect {
        let top = row.iter().flatten().copied().fold(0.0, f64::max);
        for e in row.iter_mut().flatten() {
            *e /= top;
        }
    }
    Ok(effect)
}
// ANCHOR_END: sharing
