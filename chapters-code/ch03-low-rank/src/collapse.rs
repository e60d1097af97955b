//! Rank collapse with depth (Dong et al. 2021; Wu et al. 2024): follow the token
//! matrix `X` (`n × d`) through a stack of random attention layers and measure how
//! close it comes to the rank-1 subspace `{1 xᵀ}` in which every token carries the
//! same vector.

use std::collections::BTreeMap;

use faer::{Mat, MatRef};
use serde::Serialize;
use transformer::rng;

use crate::settings::RunConfig;
use crate::sweep::{Stat, parallel_map};
use crate::{Mask, attention, logits};
use transformer::{IntoStaticStr, Named, VariantArray};

/// What each layer contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[derive(IntoStaticStr, VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Variant {
    /// `X ← A(X) X W_V`: attention only, Dong et al.'s "pure attention" network.
    Pure,
    /// `X ← X + A(X) X W_V`: with a skip connection.
    Residual,
    /// A pre-LayerNorm block: `X ← X + Attn(LN(X))`, then `X ← X + MLP(LN(X))`.
    Full,
}

impl Variant {
    pub fn label(self) -> &'static str {
        match self {
            Variant::Pure => "attention only",
            Variant::Residual => "attention + skip",
            Variant::Full => "attention + skip + MLP + LayerNorm",
        }
    }
}

fn gaussian(r: &mut rng::Rng, rows: usize, cols: usize, std: f64) -> Mat<f64> {
    let v = rng::normal_vec_f64(r, rows * cols);
    Mat::from_fn(rows, cols, |i, j| std * v[i * cols + j])
}

/// One layer's random weights, N(0, 1/fan_in) so that norms stay of order one.
struct Layer {
    wq: Mat<f64>,
    wk: Mat<f64>,
    wv: Mat<f64>,
    w1: Mat<f64>,
    w2: Mat<f64>,
}

impl Layer {
    fn draw(d: usize, seed: u64, index: usize) -> Layer {
        let mut r =
            rng::stream(seed, &format!("ch03 collapse d={d} layer={index}"));
        let s = 1.0 / (d as f64).sqrt();
        Layer {
            wq: gaussian(&mut r, d, d, s),
            wk: gaussian(&mut r, d, d, s),
            wv: gaussian(&mut r, d, d, s),
            w1: gaussian(&mut r, d, 4 * d, s),
            w2: gaussian(&mut r, 4 * d, d, 0.5 * s),
        }
    }
}

/// Each row centred and scaled to unit variance (no gain or bias).
fn layer_norm(x: MatRef<'_, f64>) -> Mat<f64> {
    let (n, d) = (x.nrows(), x.ncols());
    let mut y = Mat::zeros(n, d);
    for i in 0..n {
        let mean = (0..d).map(|j| x[(i, j)]).sum::<f64>() / d as f64;
        let var =
            (0..d).map(|j| (x[(i, j)] - mean).powi(2)).sum::<f64>() / d as f64;
        for j in 0..d {
            y[(i, j)] = (x[(i, j)] - mean) / (var + 1e-12).sqrt();
        }
    }
    y
}

// ANCHOR: rank1_distance
/// Relative distance of `X` to the rank-1 subspace `{1 xᵀ}`: `‖X − 1 μᵀ‖_F /
/// ‖X‖_F`, where `μ` is the mean token (the closest point of that subspace in the
/// Frobenius norm).
pub fn rank1_distance(x: MatRef<'_, f64>) -> f64 {
    let (n, d) = (x.nrows(), x.ncols());
    let (mut off, mut total) = (0.0, 0.0);
    for j in 0..d {
        let mean = (0..n).map(|i| x[(i, j)]).sum::<f64>() / n as f64;
        for i in 0..n {
            off += (x[(i, j)] - mean).powi(2);
            total += x[(i, j)].powi(2);
        }
    }
    if total == 0.0 { 0.0 } else { (off / total).sqrt() }
}
// ANCHOR_END: rank1_distance

// ANCHOR: stack
/// `A(X) X W_V` for one head whose width is the model width `d` (standard scaling,
/// β = 1).
fn attend(x: MatRef<'_, f64>, layer: &Layer, mask: Mask) -> Mat<f64> {
    let s = logits((x * &layer.wq).as_ref(), (x * &layer.wk).as_ref(), 1.0);
    attention(s.as_ref(), mask) * (x * &layer.wv)
}

/// The distance to the rank-1 subspace of the input (entry 0) and after each of
/// `layers` layers. The input and the weights depend on the seed only, so masks and
/// variants are compared on the same draws.
pub fn collapse(
    n: usize,
    d: usize,
    layers: usize,
    seed: u64,
    variant: Variant,
    mask: Mask,
) -> Vec<f64> {
    let mut r = rng::stream(seed, &format!("ch03 collapse input n={n} d={d}"));
    let mut x = gaussian(&mut r, n, d, 1.0);
    let mut out = vec![rank1_distance(x.as_ref())];
    for l in 0..layers {
        let layer = Layer::draw(d, seed, l);
        x = match variant {
            Variant::Pure => attend(x.as_ref(), &layer, mask),
            Variant::Residual => &x + attend(x.as_ref(), &layer, mask),
            Variant::Full => {
                let h = &x + attend(layer_norm(x.as_ref()).as_ref(), &layer, mask);
                let hidden = layer_norm(h.as_ref()) * &layer.w1;
                let relu = Mat::from_fn(n, 4 * d, |i, j| hidden[(i, j)].max(0.0));
                &h + relu * &layer.w2
            }
        };
        out.push(rank1_distance(x.as_ref()));
    }
    out
}
// ANCHOR_END: stack

/// Distance to the rank-1 subspace per layer, over seeds (geometric mean).
#[derive(Debug, Clone, Serialize)]
pub struct CollapseSeries {
    /// `log₁₀` of the distance, per layer (entry 0 is the input); mean over seeds.
    pub log10_mean: Vec<f64>,
    pub log10_std: Vec<f64>,
    /// The distances after the first, second and last layer, as `1.2e-8`-style
    /// strings.
    pub layer1: String,
    pub layer2: String,
    pub last: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Collapse {
    pub n: usize,
    pub d: usize,
    pub layers: usize,
    pub seeds: u64,
    /// variant → mask → series.
    pub series: BTreeMap<String, BTreeMap<String, CollapseSeries>>,
}

pub(crate) fn sci(log10: f64) -> String {
    format!("{:.1e}", 10f64.powf(log10))
}

pub fn run_collapse(cfg: &RunConfig) -> anyhow::Result<Collapse> {
    let mut jobs = Vec::new();
    for &variant in Variant::VARIANTS {
        for &mask in Mask::VARIANTS {
            for seed in 0..cfg.collapse_seeds {
                jobs.push((variant, mask, seed));
            }
        }
    }
    let runs = parallel_map(&jobs, |&(variant, mask, seed)| {
        Ok(collapse(
            cfg.collapse_n,
            cfg.collapse_d,
            cfg.collapse_layers,
            seed,
            variant,
            mask,
        ))
    })?;
    let mut series: BTreeMap<String, BTreeMap<String, CollapseSeries>> =
        BTreeMap::new();
    for &variant in Variant::VARIANTS {
        for &mask in Mask::VARIANTS {
            let sel: Vec<&Vec<f64>> = jobs
                .iter()
                .zip(&runs)
                .filter(|(j, _)| j.0 == variant && j.1 == mask)
                .map(|(_, r)| r)
                .collect();
            let per_layer: Vec<Stat> = (0..=cfg.collapse_layers)
                .map(|l| {
                    Stat::of(
                        &sel.iter()
                            .map(|r| r[l].max(1e-300).log10())
                            .collect::<Vec<_>>(),
                        2,
                    )
                })
                .collect();
            let mean: Vec<f64> = per_layer.iter().map(|s| s.mean).collect();
            let s = CollapseSeries {
                layer1: sci(mean[1]),
                layer2: sci(mean[2.min(cfg.collapse_layers)]),
                last: sci(mean[cfg.collapse_layers]),
                log10_std: per_layer.iter().map(|s| s.std).collect(),
                log10_mean: mean,
            };
            series
                .entry(variant.name().to_string())
                .or_default()
                .insert(mask.name().to_string(), s);
        }
    }
    Ok(Collapse {
        n: cfg.collapse_n,
        d: cfg.collapse_d,
        layers: cfg.collapse_layers,
        seeds: cfg.collapse_seeds,
        series,
    })
}
