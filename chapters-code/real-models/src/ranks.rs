//! Chapter 3: the rank of real attention matrices. Both models read the same
//! passages, cut to the same number of tokens; every layer's and head's logits are
//! taken from the forward pass and measured in `f64` with chapter 3's own code.

use anyhow::{Context, bail, ensure};
use candle_core::Tensor;
use ch03_low_rank::measures::{
    CausalDiagonal, Mask, Measures, attention, numerical_rank, singular_values,
};
use ch03_low_rank::trained::matrices;
use faer::Mat;
use serde::Serialize;
use transformer::chapter::Spread;

use crate::HeadTrace;
use crate::bert::SentenceEncoder;
use crate::smollm::SmolLm;

/// The measures of one head on one passage.
#[derive(Debug, Clone, Serialize)]
pub struct HeadMeasures {
    pub layer: usize,
    pub head: usize,
    pub passage: usize,
    pub effective_rank: f64,
    pub rank_1e3: usize,
    /// Numerical rank (NumPy's tolerance) of the head's output `A V`, `n × d_h`.
    pub output_rank: usize,
    /// Encoder: numerical rank (relative tolerance 1e-5) of `ln A`, which is the
    /// logits minus a constant per row and so has rank at most `d_h + 1`.
    pub log_rank: Option<usize>,
    /// Decoder: `log₁₀ det A` and `log₁₀ min_i A_ii`, exact in log space.
    pub log10_det: Option<f64>,
    pub log10_min_diag: Option<f64>,
}

/// One layer, over its heads and the passages.
#[derive(Debug, Clone, Serialize)]
pub struct LayerSummary {
    pub layer: usize,
    pub effective_rank: Spread,
    pub rank_1e3: Spread,
    pub output_rank_max: usize,
    pub log_rank_max: Option<usize>,
    pub log10_det_mean: Option<f64>,
    pub log10_min_diag_min: Option<f64>,
}

/// One model's attention, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRanks {
    pub model: &'static str,
    pub mask: Mask,
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// Matrices measured: layers × heads × passages.
    pub matrices: usize,
    pub effective_rank: Spread,
    /// Effective rank over `n`, in per cent, averaged over every matrix.
    pub effective_rank_percent: f64,
    pub rank_1e3: Spread,
    /// Share of matrices whose rank at 1e-3 is the full `n`, in per cent.
    pub full_rank_1e3_percent: f64,
    pub output_rank_max: usize,
    pub log_rank_max: Option<usize>,
    /// Decoder: every diagonal entry positive (so `det A > 0`) in every matrix.
    pub all_diagonals_positive: Option<bool>,
    pub log10_min_diag_min: Option<f64>,
    pub per_layer: Vec<LayerSummary>,
}

/// Both models on the same passages.
#[derive(Debug, Clone, Serialize)]
pub struct Ranks {
    pub tokens: usize,
    pub passages: usize,
    pub encoder: ModelRanks,
    pub decoder: ModelRanks,
}

/// `[1, heads, n, m]`, one passage's heads, as `f64` matrices.
fn heads_of_one_row(x: &Tensor) -> anyhow::Result<Vec<Mat<f64>>> {
    let (rows, ..) = x.dims4()?;
    ensure!(rows == 1, "expected one passage per forward pass, got {rows}");
    matrices(x)
}

// ANCHOR: measure_head
/// Measure one head from its logits `s` and values `v`, the way chapter 3
/// measures its random and trained heads.
fn measure(
    s: &Mat<f64>,
    v: &Mat<f64>,
    mask: Mask,
    (layer, head, passage): (usize, usize, usize),
) -> anyhow::Result<HeadMeasures> {
    let a = attention(s.as_ref(), mask);
    let m = Measures::of(a.as_ref())?;
    let out = &a * v;
    let output_rank = Measures::of(out.as_ref())?.rank_eps;
    let n = a.nrows();
    let (log_rank, diag) = match mask {
        Mask::Bidirectional => {
            let ln = Mat::from_fn(n, n, |i, j| a[(i, j)].max(1e-300).ln());
            (Some(numerical_rank(&singular_values(ln.as_ref())?, 1e-5)), None)
        }
        Mask::Causal => (None, Some(CausalDiagonal::from_logits(s.as_ref()))),
    };
    Ok(HeadMeasures {
        layer,
        head,
        passage,
        effective_rank: m.effective_rank,
        rank_1e3: m.rank_1e3,
        output_rank,
        log_rank,
        log10_det: diag.as_ref().map(|d| d.log10_det),
        log10_min_diag: diag.as_ref().map(|d| d.log10_min_diag),
    })
}
// ANCHOR_END: measure_head

/// Measure every layer and head of one passage's traces.
fn measure_all(
    traces: &[HeadTrace],
    mask: Mask,
    passage: usize,
    out: &mut Vec<HeadMeasures>,
) -> anyhow::Result<()> {
    for (layer, t) in traces.iter().enumerate() {
        let (s, v) = (heads_of_one_row(&t.logits)?, heads_of_one_row(&t.values)?);
        for (head, (s, v)) in s.iter().zip(&v).enumerate() {
            out.push(measure(s, v, mask, (layer, head, passage))?);
        }
    }
    Ok(())
}

fn summarise(
    model: &'static str,
    mask: Mask,
    n: usize,
    (layers, heads, head_dim): (usize, usize, usize),
    all: &[HeadMeasures],
) -> ModelRanks {
    let er: Vec<f64> = all.iter().map(|h| h.effective_rank).collect();
    let r3: Vec<f64> = all.iter().map(|h| h.rank_1e3 as f64).collect();
    let per_layer = (0..layers)
        .map(|layer| {
            let hs: Vec<&HeadMeasures> =
                all.iter().filter(|h| h.layer == layer).collect();
            let er: Vec<f64> = hs.iter().map(|h| h.effective_rank).collect();
            let r3: Vec<f64> = hs.iter().map(|h| h.rank_1e3 as f64).collect();
            let dets: Vec<f64> = hs.iter().filter_map(|h| h.log10_det).collect();
            LayerSummary {
                layer,
                effective_rank: Spread::of(&er, 1),
                rank_1e3: Spread::of(&r3, 1),
                output_rank_max: hs
                    .iter()
                    .map(|h| h.output_rank)
                    .max()
                    .unwrap_or(0),
                log_rank_max: hs.iter().filter_map(|h| h.log_rank).max(),
                log10_det_mean: (!dets.is_empty()).then(|| {
                    transformer::chapter::round_dp(
                        dets.iter().sum::<f64>() / dets.len() as f64,
                        0,
                    )
                }),
                log10_min_diag_min: hs
                    .iter()
                    .filter_map(|h| h.log10_min_diag)
                    .reduce(f64::min)
                    .map(|x| transformer::chapter::round_dp(x, 1)),
            }
        })
        .collect();
    let count = all.len() as f64;
    ModelRanks {
        model,
        mask,
        layers,
        heads,
        head_dim,
        matrices: all.len(),
        effective_rank: Spread::of(&er, 1),
        effective_rank_percent: transformer::chapter::round_dp(
            100.0 * er.iter().sum::<f64>() / count / n as f64,
            0,
        ),
        rank_1e3: Spread::of(&r3, 1),
        full_rank_1e3_percent: transformer::chapter::round_dp(
            100.0 * all.iter().filter(|h| h.rank_1e3 == n).count() as f64 / count,
            0,
        ),
        output_rank_max: all.iter().map(|h| h.output_rank).max().unwrap_or(0),
        log_rank_max: all.iter().filter_map(|h| h.log_rank).max(),
        all_diagonals_positive: (mask == Mask::Causal).then(|| {
            all.iter().all(|h| h.log10_min_diag.is_some_and(f64::is_finite))
        }),
        log10_min_diag_min: all
            .iter()
            .filter_map(|h| h.log10_min_diag)
            .reduce(f64::min)
            .map(|x| transformer::chapter::round_dp(x, 1)),
        per_layer,
    }
}

/// The first `n` tokens of `ids`, or an error naming the passage.
fn first(ids: &[u32], n: usize, what: &str) -> anyhow::Result<Vec<u32>> {
    if ids.len() < n {
        bail!("{what} has {} tokens, fewer than the {n} measured", ids.len());
    }
    Ok(ids[..n].to_vec())
}

/// Run both models on every passage (its first `n` tokens) and measure every head.
pub fn ranks(
    encoder: &SentenceEncoder,
    decoder: &SmolLm,
    passages: &[&str],
    n: usize,
) -> anyhow::Result<Ranks> {
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    for (p, text) in passages.iter().enumerate() {
        let what = format!("passage {}", p + 1);
        // The encoder reads `[CLS]`, the passage's first `n - 2` tokens, `[SEP]`.
        let e = encoder
            .tokenizer
            .encode(*text, true)
            .map_err(crate::Error::tokenizer)?;
        let mut ids = first(e.get_ids(), n, &what)?;
        ids[n - 1] = *e.get_ids().last().context("an empty encoding")?;
        let row =
            Tensor::new(ids.as_slice(), &candle_core::Device::Cpu)?.unsqueeze(0)?;
        let (_, traces) = encoder.model.forward_traced(
            &row,
            &row.zeros_like()?,
            &row.ones_like()?,
        )?;
        measure_all(&traces, Mask::Bidirectional, p, &mut enc)?;
        // The decoder reads the passage's first `n` tokens, from scratch.
        let ids = first(&decoder.encode(text)?, n, &what)?;
        let row =
            Tensor::new(ids.as_slice(), &candle_core::Device::Cpu)?.unsqueeze(0)?;
        let mut traces = Vec::new();
        let mut cache = crate::llama::Cache::new(&decoder.model);
        decoder.model.forward_hidden(&row, &mut cache, Some(&mut traces))?;
        measure_all(&traces, Mask::Causal, p, &mut dec)?;
    }
    let bc = &encoder.model.config;
    let lc = &decoder.model.config;
    Ok(Ranks {
        tokens: n,
        passages: passages.len(),
        encoder: summarise(
            "encoder",
            Mask::Bidirectional,
            n,
            (bc.num_hidden_layers, bc.num_attention_heads, bc.head_dim()),
            &enc,
        ),
        decoder: summarise(
            "decoder",
            Mask::Causal,
            n,
            (lc.n_layers, lc.n_heads, lc.head_dim),
            &dec,
        ),
    })
}
