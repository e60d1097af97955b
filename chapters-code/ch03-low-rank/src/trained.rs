//! Attention matrices of small models trained on the book's corpus: a causal
//! decoder trained with full language modelling, a prefix LM (a non-causal decoder,
//! bidirectional over its prefix) trained with the prefix-LM objective, and
//! optionally a bidirectional encoder trained with masked language modelling. The
//! three share their shape, their initial weights and the rows they read, in the
//! same order. Their traced attention probabilities are measured per layer and head
//! on held-out rows, at initialisation and after training: the whole `n × n`
//! matrix, and the `k × k` block of the first `k` positions, which for the prefix
//! LM is a bidirectional attention matrix and for the causal decoder a causal one
//! over the same tokens.

use anyhow::{Context, bail};
use candle_core::{DType, Tensor};
use faer::{Mat, MatRef};
use serde::Serialize;
use transformer::chapter::round_dp;
use transformer::corpus;
use transformer::loss::masked_cross_entropy;
use transformer::model::LayerTrace;
use transformer::objectives::{self, LmBatch, MlmConfig};
use transformer::rng;
use transformer::tokenizer::BpeTokenizer;
use transformer::train::{StepLoss, TrainConfig, train};
use transformer::{
    Config, DecoderOnly, Forward, MaskKind, ParamStore, PositionKind,
};

use crate::{Mask, Measures, numerical_rank, singular_values};
use transformer::{IntoStaticStr, Named, VariantArray};

/// The corpus, the models' shape and their training runs.
#[derive(Debug, Clone, Serialize)]
pub struct TrainedConfig {
    /// Training documents of the book's corpus (chapter 2), packed into rows.
    pub documents: usize,
    /// The first this many of them train the BPE tokenizer.
    pub tokenizer_documents: usize,
    /// Held-out documents, from another seed of the same generator.
    pub heldout_documents: usize,
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_layers: usize,
    pub d_ff: usize,
    /// Tokens a model reads per row (`n`, the size of the full attention matrix).
    pub seq_len: usize,
    /// The prefix length `k` at which attention is measured (the `k × k` block).
    pub prefix: usize,
    pub batch: usize,
    /// Steps of the causal decoder and of the prefix LM.
    pub steps: usize,
    /// Steps of the masked-LM encoder (0: not trained).
    pub mlm_steps: usize,
    pub lr: f64,
    /// Held-out rows for the losses.
    pub eval_rows: usize,
    /// Held-out rows whose attention matrices are measured.
    pub measured_rows: usize,
    pub seed: u64,
}

/// The three models.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Model {
    /// Causal decoder, full language modelling.
    Causal,
    /// Non-causal decoder, prefix language modelling.
    Prefix,
    /// Bidirectional encoder, masked language modelling.
    Masked,
}

impl Model {
    pub fn label(self) -> &'static str {
        match self {
            Model::Causal => "causal decoder (full LM)",
            Model::Prefix => "prefix LM (non-causal decoder)",
            Model::Masked => "encoder (masked LM)",
        }
    }
}

// ANCHOR: objectives
/// One training or held-out batch from rows of `n + 1` packed tokens: full LM for
/// the causal decoder; prefix LM for the non-causal decoder (a prefix length per
/// row, drawn uniformly, read bidirectionally, loss only after it); BERT's masked
/// LM for the encoder, on the first `n` tokens. Packed rows hold no padding, so
/// every model reads `n` real tokens per row.
fn batch(
    model: Model,
    rows: &[Vec<u32>],
    r: &mut rng::Rng,
    tok: &BpeTokenizer,
) -> LmBatch {
    let sp = &tok.specials;
    match model {
        Model::Causal => objectives::full_lm(rows, sp),
        Model::Prefix => objectives::prefix_lm(rows, r, sp),
        Model::Masked => {
            objectives::masked_lm_on_inputs(rows, r, sp, tok.vocab_size() as u32)
        }
    }
}

/// The common yardstick of the two decoders: next-token loss on the positions after
/// a fixed prefix of `k` tokens, which the prefix LM reads bidirectionally and the
/// causal decoder causally. Both predict exactly the same tokens from exactly the
/// same context.
fn suffix_batch(
    model: Model,
    rows: &[Vec<u32>],
    k: usize,
    tok: &BpeTokenizer,
) -> LmBatch {
    let mut b = objectives::full_lm(rows, &tok.specials);
    for w in &mut b.weight {
        for x in &mut w[..k - 1] {
            *x = 0.0;
        }
    }
    if model == Model::Prefix {
        b.mask = MaskKind::prefix(k);
    }
    b
}
// ANCHOR_END: objectives

/// What one attention matrix looks like, averaged over the measured rows.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixSummary {
    pub rank_1e3: f64,
    pub effective_rank: f64,
    pub stable_rank: f64,
    pub log10_cond: f64,
    /// Causal matrices: `log₁₀ min_i A_ii`, the smallest diagonal weight.
    pub log10_min_diag: Option<f64>,
    /// Bidirectional matrices: numerical rank (relative tolerance 1e-5) of `ln A`,
    /// which equals the logits minus a per-row constant and so has rank at most
    /// `head_dim + 1`.
    pub log_rank: Option<f64>,
}

/// Which structure a measured matrix has, and so which extra measure applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Structure {
    Causal,
    Bidirectional,
    /// The prefix LM's whole matrix: bidirectional block, then causal rows.
    Mixed,
}

/// One head: the whole `n × n` matrix and, for the two decoders, the `k × k` block.
#[derive(Debug, Clone, Serialize)]
pub struct HeadSummary {
    pub layer: usize,
    pub head: usize,
    pub full: MatrixSummary,
    pub block: Option<MatrixSummary>,
}

/// Means over every head of a model.
#[derive(Debug, Clone, Serialize)]
pub struct HeadMeans {
    pub rank_1e3: f64,
    pub effective_rank: f64,
    pub stable_rank: f64,
    pub log10_cond: f64,
    /// The smallest and largest effective rank of any head.
    pub effective_rank_min: f64,
    pub effective_rank_max: f64,
    pub log_rank_max: Option<f64>,
}

impl HeadMeans {
    fn of(ms: &[&MatrixSummary]) -> HeadMeans {
        let n = ms.len() as f64;
        let mean = |f: &dyn Fn(&MatrixSummary) -> f64| {
            round_dp(ms.iter().map(|m| f(m)).sum::<f64>() / n, 2)
        };
        let er = ms.iter().map(|m| m.effective_rank);
        HeadMeans {
            rank_1e3: mean(&|m| m.rank_1e3),
            effective_rank: mean(&|m| m.effective_rank),
            stable_rank: mean(&|m| m.stable_rank),
            log10_cond: mean(&|m| m.log10_cond),
            effective_rank_min: er.clone().fold(f64::INFINITY, f64::min),
            effective_rank_max: er.fold(f64::NEG_INFINITY, f64::max),
            log_rank_max: ms.iter().filter_map(|m| m.log_rank).reduce(f64::max),
        }
    }
}

/// Head means of one model at one moment, for the whole matrix and for the block.
#[derive(Debug, Clone, Serialize)]
pub struct Means {
    pub full: HeadMeans,
    pub block: Option<HeadMeans>,
}

impl Means {
    fn of(heads: &[HeadSummary]) -> Means {
        let full: Vec<&MatrixSummary> = heads.iter().map(|h| &h.full).collect();
        let block: Vec<&MatrixSummary> =
            heads.iter().filter_map(|h| h.block.as_ref()).collect();
        Means {
            full: HeadMeans::of(&full),
            block: (!block.is_empty()).then(|| HeadMeans::of(&block)),
        }
    }
}

/// One model before and after training.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub model: Model,
    pub label: &'static str,
    pub steps: usize,
    pub tokens_seen: usize,
    pub tokens_supervised: usize,
    /// Rows read over the run, over the training rows available (at most 1: no row
    /// read twice).
    pub epochs: f64,
    /// Held-out loss under the model's own objective (nats per supervised token).
    pub heldout_loss_init: f64,
    pub heldout_loss_trained: f64,
    /// Held-out next-token loss after a fixed prefix of `k` tokens (the two
    /// decoders).
    pub suffix_loss_init: Option<f64>,
    pub suffix_loss_trained: Option<f64>,
    pub init: Vec<HeadSummary>,
    pub trained: Vec<HeadSummary>,
    pub init_means: Means,
    pub trained_means: Means,
    #[serde(skip)]
    pub seconds: f64,
}

/// The corpus, the shared shape, and every model.
#[derive(Debug, Clone, Serialize)]
pub struct TrainedReport {
    pub params: usize,
    pub vocab_size: usize,
    pub head_dim: usize,
    /// `head_dim + 1`: the bound on the rank of `ln A` for a bidirectional matrix.
    pub log_rank_bound: usize,
    pub seq_len: usize,
    pub prefix: usize,
    /// `prefix / head_dim`: positions of the measured block per head dimension.
    pub prefix_per_head_dim: f64,
    /// BERT's rates, as the encoder uses them.
    pub mlm: MlmConfig,
    pub train_rows: usize,
    pub train_tokens: usize,
    /// Held-out cross-entropy of the training set's unigram frequencies (add-one
    /// smoothed): what a model that ignores context scores.
    pub unigram_loss: f64,
    /// Effective rank of exactly uniform causal attention over `n` and over `k`
    /// positions (uniform bidirectional attention, `J / n`, has effective rank 1).
    pub uniform_causal_effective_rank_full: f64,
    pub uniform_causal_effective_rank_block: f64,
    pub models: std::collections::BTreeMap<&'static str, ModelReport>,
    #[serde(skip)]
    pub seconds: f64,
}

fn model_config(cfg: &TrainedConfig, vocab_size: usize) -> Config {
    Config {
        vocab_size,
        d_model: cfg.d_model,
        n_heads: cfg.n_heads,
        n_kv_heads: cfg.n_heads,
        d_ff: cfg.d_ff,
        n_layers: cfg.n_layers,
        max_len: cfg.seq_len,
        positions: PositionKind::Learned,
        tie_embeddings: false,
        kernels: Default::default(),
    }
}

fn loss_of(model: &DecoderOnly, b: &LmBatch) -> anyhow::Result<Tensor> {
    let (x, y, w) = b.tensors()?;
    let logits = model.forward(&x, &b.mask)?;
    Ok(masked_cross_entropy(&logits, &y, &w)?)
}

fn scalar(t: &Tensor) -> anyhow::Result<f64> {
    Ok(f64::from(t.to_scalar::<f32>()?))
}

fn summarise(
    a: MatRef<'_, f64>,
    structure: Structure,
) -> anyhow::Result<MatrixSummary> {
    let m = Measures::of(a)?;
    let n = a.nrows();
    let log10_min_diag = (structure == Structure::Causal).then(|| {
        (0..n)
            .map(|i| a[(i, i)])
            .fold(f64::INFINITY, f64::min)
            .max(f64::MIN_POSITIVE)
            .log10()
    });
    let log_rank = match structure {
        Structure::Bidirectional => {
            let ln = Mat::from_fn(n, n, |i, j| a[(i, j)].max(1e-300).ln());
            Some(numerical_rank(&singular_values(ln.as_ref())?, 1e-5) as f64)
        }
        _ => None,
    };
    Ok(MatrixSummary {
        rank_1e3: m.rank_1e3 as f64,
        effective_rank: m.effective_rank,
        stable_rank: m.stable_rank,
        log10_cond: m.log10_cond,
        log10_min_diag,
        log_rank,
    })
}

fn average(ms: &[MatrixSummary]) -> MatrixSummary {
    let n = ms.len() as f64;
    let avg = |f: &dyn Fn(&MatrixSummary) -> f64| {
        round_dp(ms.iter().map(f).sum::<f64>() / n, 2)
    };
    let avg_opt = |f: &dyn Fn(&MatrixSummary) -> Option<f64>| {
        ms.iter().map(f).sum::<Option<f64>>().map(|s| round_dp(s / n, 2))
    };
    MatrixSummary {
        rank_1e3: avg(&|m| m.rank_1e3),
        effective_rank: avg(&|m| m.effective_rank),
        stable_rank: avg(&|m| m.stable_rank),
        log10_cond: avg(&|m| m.log10_cond),
        log10_min_diag: avg_opt(&|m| m.log10_min_diag),
        log_rank: avg_opt(&|m| m.log_rank),
    }
}

// ANCHOR: traced
/// One head's attention probabilities in one layer: a `t × t` matrix per row of the
/// batch, widened from the model's `f32` to `f64` for the measures.
pub struct HeadMatrices {
    pub layer: usize,
    pub head: usize,
    pub rows: Vec<Mat<f64>>,
}

/// Every layer's and head's attention matrices from a traced forward pass, layer
/// by layer and head by head. Chapter 5 measures its encoders' heads through this
/// too.
pub fn head_matrices(layers: &[LayerTrace]) -> anyhow::Result<Vec<HeadMatrices>> {
    let mut heads = Vec::new();
    for (layer, trace) in layers.iter().enumerate() {
        let (b, h, _, _) = trace.attn.probs.dims4()?;
        // Heads first, so that each head's rows come out together.
        let mut all = matrices(&trace.attn.probs.transpose(0, 1)?)?.into_iter();
        for head in 0..h {
            let rows = all.by_ref().take(b).collect();
            heads.push(HeadMatrices { layer, head, rows });
        }
    }
    Ok(heads)
}

/// Every trailing `n × m` matrix of `x` (`[.., n, m]`, at least one of each), in
/// order, in `f64`. The real models' chapter reads its heads through this too.
pub fn matrices(x: &Tensor) -> anyhow::Result<Vec<Mat<f64>>> {
    let (n, m) = match x.dims() {
        &[.., n, m] if n > 0 && m > 0 => (n, m),
        d => {
            bail!("expected a tensor of non-empty matrices, [.., n, m]; got {d:?}")
        }
    };
    let v = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok(v.chunks_exact(n * m)
        .map(|c| Mat::from_fn(n, m, |i, j| c[i * m + j]))
        .collect())
}

/// Measure every layer's and head's attention probabilities on held-out rows,
/// through the library's traced forward pass, with the prefix LM's split fixed at
/// `k` for every row. The whole `n × n` matrix is measured, and for the two
/// decoders its top-left `k × k` block: under the prefix mask the first `k`
/// positions attend only to each other, so that block is itself a row-stochastic
/// bidirectional attention matrix; under the causal mask it is the causal attention
/// matrix of the same `k` tokens. Probabilities come out in `f32` and are measured
/// in `f64`.
fn measure_heads(
    model: &DecoderOnly,
    which: Model,
    ids: &Tensor,
    k: usize,
) -> anyhow::Result<Vec<HeadSummary>> {
    let (mask, full, block) = match which {
        Model::Causal => {
            (MaskKind::Causal, Structure::Causal, Some(Structure::Causal))
        }
        Model::Prefix => {
            (MaskKind::prefix(k), Structure::Mixed, Some(Structure::Bidirectional))
        }
        Model::Masked => (MaskKind::Bidirectional, Structure::Bidirectional, None),
    };
    let out = model.run(ids, &mask, Forward { cache: None, trace: true })?;
    let mut heads = Vec::new();
    for HeadMatrices { layer, head, rows } in head_matrices(&out.layers)? {
        let (mut fulls, mut blocks) = (Vec::new(), Vec::new());
        for a in &rows {
            fulls.push(summarise(a.as_ref(), full)?);
            if let Some(s) = block {
                let blk = a.as_ref().submatrix(0, 0, k, k);
                // The block is a whole attention matrix: each of its rows sums to
                // one.
                let worst = (0..k)
                    .map(|i| ((0..k).map(|j| blk[(i, j)]).sum::<f64>() - 1.0).abs())
                    .fold(0.0, f64::max);
                if worst > 1e-3 {
                    bail!(
                        "row sums of the {k} × {k} block are off by {worst:.1e}: \
                         not a whole attention matrix"
                    );
                }
                blocks.push(summarise(blk, s)?);
            }
        }
        heads.push(HeadSummary {
            layer,
            head,
            full: average(&fulls),
            block: block.map(|_| average(&blocks)),
        });
    }
    Ok(heads)
}
// ANCHOR_END: traced

/// The corpus as rows, and the tokenizer.
struct Data {
    tok: BpeTokenizer,
    train_rows: Vec<Vec<u32>>,
    eval_rows: Vec<Vec<u32>>,
}

fn data(cfg: &TrainedConfig) -> anyhow::Result<Data> {
    let docs = corpus::documents(cfg.seed, cfg.documents);
    let held = corpus::documents(cfg.seed + 1, cfg.heldout_documents);
    let sample = &docs[..cfg.tokenizer_documents.min(docs.len())];
    let tok = BpeTokenizer::train(sample.iter(), cfg.vocab_size, 0)
        .context("training the tokenizer")?;
    let train_rows = tok.pack(&docs, cfg.seq_len + 1)?;
    let mut eval_rows = tok.pack(&held, cfg.seq_len + 1)?;
    if train_rows.is_empty()
        || eval_rows.len() < cfg.eval_rows.max(cfg.measured_rows)
    {
        bail!(
            "the corpus is too small for {} held-out rows of {} tokens",
            cfg.eval_rows,
            cfg.seq_len + 1
        );
    }
    eval_rows.truncate(cfg.eval_rows.max(cfg.measured_rows));
    Ok(Data { tok, train_rows, eval_rows })
}

/// Held-out loss of the training rows' unigram frequencies, add-one smoothed.
fn unigram_loss(d: &Data) -> f64 {
    let v = d.tok.vocab_size();
    let mut counts = vec![1f64; v];
    for &x in d.train_rows.iter().flatten() {
        counts[x as usize] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    let targets: Vec<u32> =
        d.eval_rows.iter().flat_map(|r| r[1..].iter().copied()).collect();
    targets.iter().map(|&x| -(counts[x as usize] / total).ln()).sum::<f64>()
        / targets.len() as f64
}

// ANCHOR: train_model
/// Train one model and measure it before and after. Every model starts from the
/// same weights (the same seed and shape) and reads the same rows in the same
/// order.
fn train_model(
    cfg: &TrainedConfig,
    d: &Data,
    which: Model,
) -> anyhow::Result<ModelReport> {
    let store = ParamStore::new(cfg.seed);
    let model = DecoderOnly::new(
        &model_config(cfg, d.tok.vocab_size()),
        store.vb().pp("model"),
    )?;
    let steps = if which == Model::Masked { cfg.mlm_steps } else { cfg.steps };
    let measured: Vec<Vec<u32>> = d.eval_rows[..cfg.measured_rows]
        .iter()
        .map(|r| r[..cfg.seq_len].to_vec())
        .collect();
    let ids = Tensor::from_vec(
        measured.concat(),
        (cfg.measured_rows, cfg.seq_len),
        &transformer::DEVICE,
    )?;
    let eval = &d.eval_rows[..cfg.eval_rows];
    // Held-out batches are drawn once, with a fixed seed: every evaluation scores
    // the same split points and the same corrupted positions.
    let heldout =
        batch(which, eval, &mut rng::stream(cfg.seed, "ch03 heldout"), &d.tok);
    let suffix = (which != Model::Masked)
        .then(|| suffix_batch(which, eval, cfg.prefix, &d.tok));
    let suffix_loss = || {
        suffix
            .as_ref()
            .map(|b| loss_of(&model, b).and_then(|l| scalar(&l)))
            .transpose()
    };
    let heldout_loss_init = scalar(&loss_of(&model, &heldout)?)?;
    let suffix_loss_init = suffix_loss()?;
    let init = measure_heads(&model, which, &ids, cfg.prefix)?;
    let tc = TrainConfig {
        steps,
        lr: cfg.lr,
        warmup: (steps / 10).max(1),
        seed: cfg.seed,
        progress: false,
        ..TrainConfig::default()
    };
    let pad = d.tok.specials.pad;
    let log = train(
        &store,
        &tc,
        |step, r| {
            let n = d.train_rows.len();
            let rows: Vec<Vec<u32>> = (0..cfg.batch)
                .map(|j| d.train_rows[(step * cfg.batch + j) % n].clone())
                .collect();
            let b = batch(which, &rows, r, &d.tok);
            Ok(StepLoss {
                loss: loss_of(&model, &b)?,
                tokens_seen: b.tokens_seen(pad),
                tokens_supervised: b.tokens_supervised(),
            })
        },
        |_| scalar(&loss_of(&model, &heldout)?),
    )?;
    let last = log.steps.last().context("at least one training step")?;
    let trained = measure_heads(&model, which, &ids, cfg.prefix)?;
    Ok(ModelReport {
        model: which,
        label: which.label(),
        steps,
        tokens_seen: last.tokens_seen,
        tokens_supervised: last.tokens_supervised,
        epochs: round_dp((steps * cfg.batch) as f64 / d.train_rows.len() as f64, 2),
        heldout_loss_init: round_dp(heldout_loss_init, 2),
        heldout_loss_trained: round_dp(
            log.evals.last().map_or(f64::NAN, |e| e.value),
            2,
        ),
        suffix_loss_init: suffix_loss_init.map(|x| round_dp(x, 2)),
        suffix_loss_trained: suffix_loss()?.map(|x| round_dp(x, 2)),
        init_means: Means::of(&init),
        trained_means: Means::of(&trained),
        init,
        trained,
        seconds: log.seconds,
    })
}
// ANCHOR_END: train_model

/// Build the corpus and tokenizer, train every model and measure them.
pub fn train_and_measure(cfg: &TrainedConfig) -> anyhow::Result<TrainedReport> {
    if cfg.prefix < 2 || cfg.prefix > cfg.seq_len {
        bail!(
            "the measured prefix must lie in 2..={} (got {})",
            cfg.seq_len,
            cfg.prefix
        );
    }
    let start = std::time::Instant::now();
    let d = data(cfg)?;
    let mcfg = model_config(cfg, d.tok.vocab_size());
    let mut models = std::collections::BTreeMap::new();
    for &which in Model::VARIANTS {
        if which == Model::Masked && cfg.mlm_steps == 0 {
            continue;
        }
        models.insert(which.name(), train_model(cfg, &d, which)?);
    }
    let uniform = |n: usize| -> anyhow::Result<f64> {
        let a = crate::attention(Mat::<f64>::zeros(n, n).as_ref(), Mask::Causal);
        Ok(round_dp(Measures::of(a.as_ref())?.effective_rank, 2))
    };
    let store = ParamStore::new(cfg.seed);
    DecoderOnly::new(&mcfg, store.vb().pp("model"))?;
    let params = store.num_params();
    Ok(TrainedReport {
        params,
        vocab_size: d.tok.vocab_size(),
        head_dim: mcfg.head_dim(),
        log_rank_bound: mcfg.head_dim() + 1,
        seq_len: cfg.seq_len,
        prefix: cfg.prefix,
        prefix_per_head_dim: round_dp(
            cfg.prefix as f64 / mcfg.head_dim() as f64,
            1,
        ),
        mlm: MlmConfig::default(),
        train_rows: d.train_rows.len(),
        train_tokens: d.train_rows.len() * (cfg.seq_len + 1),
        unigram_loss: round_dp(unigram_loss(&d), 2),
        uniform_causal_effective_rank_full: uniform(cfg.seq_len)?,
        uniform_causal_effective_rank_block: uniform(cfg.prefix)?,
        models,
        seconds: start.elapsed().as_secs_f64(),
    })
}
