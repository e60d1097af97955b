//! Attention matrices of two small trained models: a causal decoder trained on next-token
//! prediction and a bidirectional encoder trained on masked-token prediction, both on the same
//! tiny synthetic language. Their traced attention probabilities are measured per layer and
//! head on held-out sequences, at initialisation and after training.

use candle_core::{DType, Tensor};
use rand::Rng as _;
use serde::Serialize;
use transformer::loss::masked_cross_entropy;
use transformer::rng::{self, Rng};
use transformer::train::{StepLoss, TrainConfig, train};
use transformer::{Config, DecoderOnly, Forward, ParamStore, PositionKind};

use crate::{Mask, Measures, numerical_rank, singular_values};

/// The size of the models and of their training run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainedConfig {
    /// Ordinary tokens; the masked-LM model has one more, the `[MASK]` token.
    pub vocab: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_layers: usize,
    pub d_ff: usize,
    pub seq_len: usize,
    pub batch: usize,
    pub steps: usize,
    pub lr: f64,
    /// Held-out sequences whose attention matrices are measured.
    pub heldout: usize,
    /// Fraction of positions replaced by `[MASK]` for the masked-LM objective.
    pub mask_rate: f64,
    /// Each token depends on the token this many positions back.
    pub lag: usize,
    /// Learned position embeddings (GPT-2, BERT) rather than sinusoidal ones.
    pub learned_positions: bool,
    pub seed: u64,
}

// ANCHOR: language
/// The synthetic language: token `t` follows token `t − lag` through a fixed random table in
/// which every token has three possible successors, with probabilities 0.6, 0.3 and 0.1. With
/// `lag ≥ 2` neither model can predict from the current position alone: the causal model must
/// attend `lag − 1` positions back, the masked model `lag` positions back or ahead.
/// The probabilities of a token's three successors.
pub const SUCCESSOR_PROBS: [f64; 3] = [0.6, 0.3, 0.1];

pub struct Language {
    successors: Vec<[u32; 3]>,
    lag: usize,
}

impl Language {
    pub fn new(vocab: usize, lag: usize, seed: u64) -> Self {
        let mut r = rng::stream(seed, "ch03 language");
        let successors =
            (0..vocab).map(|_| std::array::from_fn(|_| r.random_range(0..vocab as u32))).collect();
        Language { successors, lag: lag.max(1) }
    }

    pub fn sample(&self, r: &mut Rng, len: usize) -> Vec<u32> {
        let vocab = self.successors.len() as u32;
        let mut x: Vec<u32> = (0..self.lag.min(len)).map(|_| r.random_range(0..vocab)).collect();
        while x.len() < len {
            let u: f64 = r.random();
            let pick = if u < 0.6 {
                0
            } else if u < 0.9 {
                1
            } else {
                2
            };
            x.push(self.successors[x[x.len() - self.lag] as usize][pick]);
        }
        x
    }
}
// ANCHOR_END: language

/// Inputs, targets and loss weights of one batch, `[b, t]` each.
struct Batch {
    ids: Tensor,
    targets: Tensor,
    weights: Tensor,
    supervised: usize,
}

// ANCHOR: objectives
/// Next-token prediction for the causal model; masked-token prediction (only masked positions
/// supervised) for the bidirectional one.
fn make_batch(
    lang: &Language,
    cfg: &TrainedConfig,
    mask: Mask,
    r: &mut Rng,
    b: usize,
) -> anyhow::Result<Batch> {
    let t = cfg.seq_len;
    let mask_token = cfg.vocab as u32;
    let (mut ids, mut targets, mut weights) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..b {
        match mask {
            Mask::Causal => {
                let x = lang.sample(r, t + 1);
                ids.extend_from_slice(&x[..t]);
                targets.extend_from_slice(&x[1..]);
                weights.extend(std::iter::repeat_n(1f32, t));
            }
            Mask::Bidirectional => {
                let x = lang.sample(r, t);
                let mut hidden: Vec<bool> = (0..t).map(|_| r.random::<f64>() < cfg.mask_rate).collect();
                if !hidden.contains(&true) {
                    hidden[r.random_range(0..t)] = true;
                }
                ids.extend(x.iter().zip(&hidden).map(|(&tok, &h)| if h { mask_token } else { tok }));
                targets.extend_from_slice(&x);
                weights.extend(hidden.iter().map(|&h| if h { 1f32 } else { 0.0 }));
            }
        }
    }
    let supervised = weights.iter().filter(|&&w| w > 0.0).count();
    let dev = &transformer::DEVICE;
    Ok(Batch {
        ids: Tensor::from_vec(ids, (b, t), dev)?,
        targets: Tensor::from_vec(targets, (b, t), dev)?,
        weights: Tensor::from_vec(weights, (b, t), dev)?,
        supervised,
    })
}
// ANCHOR_END: objectives

/// The measures of one head, averaged over the held-out sequences.
#[derive(Debug, Clone, Serialize)]
pub struct HeadSummary {
    pub layer: usize,
    pub head: usize,
    pub rank_1e3: f64,
    pub effective_rank: f64,
    pub stable_rank: f64,
    pub log10_cond: f64,
    /// Causal heads: `log₁₀ min_i A_ii`, the smallest diagonal weight.
    pub log10_min_diag: Option<f64>,
    /// Bidirectional heads: numerical rank (relative tolerance 1e-5) of `ln A`, which equals the
    /// logits minus a per-row constant and so has rank at most `head_dim + 1`.
    pub log_rank: Option<f64>,
}

/// One model before and after training.
#[derive(Debug, Clone, Serialize)]
pub struct TrainedReport {
    pub mask: Mask,
    pub objective: &'static str,
    pub params: usize,
    pub head_dim: usize,
    /// `head_dim + 1`: the bound on the rank of `ln A` for a bidirectional head.
    pub log_rank_bound: usize,
    pub seq_len: usize,
    /// Entropy of the chain's next-token distribution (nats): the best possible loss of a model
    /// that knows the token `lag` positions back.
    pub chain_entropy: f64,
    /// Effective rank of exactly uniform attention under this model's mask (all logits equal).
    pub uniform_effective_rank: f64,
    pub loss_first: f64,
    pub loss_last: f64,
    pub heldout_loss_init: f64,
    pub heldout_loss_trained: f64,
    pub init: Vec<HeadSummary>,
    pub trained: Vec<HeadSummary>,
    #[serde(skip)]
    pub seconds: f64,
}

fn model_config(cfg: &TrainedConfig) -> Config {
    Config {
        vocab_size: cfg.vocab + 1,
        d_model: cfg.d_model,
        n_heads: cfg.n_heads,
        n_kv_heads: cfg.n_heads,
        d_ff: cfg.d_ff,
        n_layers: cfg.n_layers,
        max_len: cfg.seq_len,
        positions: if cfg.learned_positions { PositionKind::Learned } else { PositionKind::Sinusoidal },
        tie_embeddings: false,
    }
}

fn heldout_loss(model: &DecoderOnly, batch: &Batch, mask: Mask) -> anyhow::Result<f64> {
    let logits = model.forward(&batch.ids, &mask.kind())?;
    Ok(f64::from(masked_cross_entropy(&logits, &batch.targets, &batch.weights)?.to_scalar::<f32>()?))
}

// ANCHOR: traced
/// Measure every layer's and head's attention probabilities on the held-out batch, through
/// the library's traced forward pass. Probabilities come out in `f32` and are measured in `f64`.
fn measure_heads(model: &DecoderOnly, batch: &Batch, mask: Mask) -> anyhow::Result<Vec<HeadSummary>> {
    let out = model.run(&batch.ids, &mask.kind(), Forward { cache: None, trace: true })?;
    let mut heads = Vec::new();
    for (layer, trace) in out.layers.iter().enumerate() {
        let (b, h, t, _) = trace.attn.probs.dims4()?;
        let probs: Vec<f32> = trace.attn.probs.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        for head in 0..h {
            let mut sum = HeadSummary {
                layer,
                head,
                rank_1e3: 0.0,
                effective_rank: 0.0,
                stable_rank: 0.0,
                log10_cond: 0.0,
                log10_min_diag: (mask == Mask::Causal).then_some(0.0),
                log_rank: (mask == Mask::Bidirectional).then_some(0.0),
            };
            for row in 0..b {
                let base = (row * h + head) * t * t;
                let a = faer::Mat::from_fn(t, t, |i, j| f64::from(probs[base + i * t + j]));
                let m = Measures::of(a.as_ref())?;
                sum.rank_1e3 += m.rank_1e3 as f64;
                sum.effective_rank += m.effective_rank;
                sum.stable_rank += m.stable_rank;
                sum.log10_cond += m.log10_cond;
                if let Some(x) = sum.log10_min_diag.as_mut() {
                    let min = (0..t).map(|i| a[(i, i)]).fold(f64::INFINITY, f64::min);
                    *x += min.max(f64::MIN_POSITIVE).log10();
                }
                if let Some(x) = sum.log_rank.as_mut() {
                    let ln = faer::Mat::from_fn(t, t, |i, j| a[(i, j)].max(1e-300).ln());
                    *x += numerical_rank(&singular_values(ln.as_ref())?, 1e-5) as f64;
                }
            }
            let avg = |x: f64| transformer::io::round(x / b as f64, 2);
            heads.push(HeadSummary {
                rank_1e3: avg(sum.rank_1e3),
                effective_rank: avg(sum.effective_rank),
                stable_rank: avg(sum.stable_rank),
                log10_cond: avg(sum.log10_cond),
                log10_min_diag: sum.log10_min_diag.map(avg),
                log_rank: sum.log_rank.map(avg),
                ..sum
            });
        }
    }
    Ok(heads)
}
// ANCHOR_END: traced

/// Train one model on the synthetic language and measure its attention before and after.
pub fn train_and_measure(cfg: &TrainedConfig, mask: Mask) -> anyhow::Result<TrainedReport> {
    let lang = Language::new(cfg.vocab, cfg.lag, cfg.seed);
    let mcfg = model_config(cfg);
    let store = ParamStore::new(cfg.seed);
    let model = DecoderOnly::new(&store, mask.name(), &mcfg)?;
    let heldout = make_batch(&lang, cfg, mask, &mut rng::stream(cfg.seed, "ch03 heldout"), cfg.heldout)?;
    let heldout_loss_init = heldout_loss(&model, &heldout, mask)?;
    let init = measure_heads(&model, &heldout, mask)?;
    let tc = TrainConfig {
        steps: cfg.steps,
        lr: cfg.lr,
        warmup: (cfg.steps / 10).max(1),
        seed: cfg.seed,
        progress: false,
        ..TrainConfig::default()
    };
    let log = train(
        &store,
        &tc,
        |_, r| {
            let batch = make_batch(&lang, cfg, mask, r, cfg.batch)?;
            let logits = model.forward(&batch.ids, &mask.kind())?;
            let loss = masked_cross_entropy(&logits, &batch.targets, &batch.weights)?;
            Ok(StepLoss { loss, tokens_seen: cfg.batch * cfg.seq_len, tokens_supervised: batch.supervised })
        },
        |_| heldout_loss(&model, &heldout, mask),
    )?;
    let r = |x: f64| transformer::io::round(x, 2);
    Ok(TrainedReport {
        mask,
        objective: match mask {
            Mask::Causal => "next-token prediction",
            Mask::Bidirectional => "masked-token prediction",
        },
        params: store.num_params(),
        head_dim: mcfg.head_dim(),
        log_rank_bound: mcfg.head_dim() + 1,
        uniform_effective_rank: r(Measures::of(
            crate::attention(faer::Mat::<f64>::zeros(cfg.seq_len, cfg.seq_len).as_ref(), mask).as_ref(),
        )?
        .effective_rank),
        chain_entropy: r(SUCCESSOR_PROBS.iter().map(|p| -p * p.ln()).sum()),
        seq_len: cfg.seq_len,
        loss_first: r(log.steps.first().map_or(f64::NAN, |s| s.loss)),
        loss_last: r(log.steps.last().map_or(f64::NAN, |s| s.loss)),
        heldout_loss_init: r(heldout_loss_init),
        heldout_loss_trained: r(log.evals.last().map_or(f64::NAN, |e| e.value)),
        init,
        trained: measure_heads(&model, &heldout, mask)?,
        seconds: log.seconds,
    })
}
