//! Su's second experiment: a masked-LM encoder whose heads all read both ways,
//! against one whose heads are half forward-causal and half backward-causal (each
//! head triangular, so each attention matrix full rank), at the same parameters, on
//! the same rows. Beside their losses, the effective rank of their trained
//! attention matrices, measured with chapter 3's code.

use faer::Mat;
use serde::Serialize;
use transformer::chapter::round_dp;
use transformer::loss::token_nll;
use transformer::objectives::{LmBatch, MlmConfig, masked_lm};
use transformer::train::{self, StepLoss};
use transformer::{DecoderOnly, Forward, MaskKind, ParamStore, rng};

use ch03_low_rank::trained::{HeadMatrices, head_matrices};

use crate::*;

/// The two encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, VariantArray)]
pub enum Heads {
    /// Every head bidirectional (BERT).
    Bidirectional,
    /// Half the heads forward-causal, half backward-causal.
    ForwardBackward,
}

impl Heads {
    /// How the tables and figures name the encoder.
    pub fn label(self) -> &'static str {
        match self {
            Heads::Bidirectional => "all heads bidirectional",
            Heads::ForwardBackward => "half forward, half backward",
        }
    }

    // ANCHOR: heads_mask
    /// The mask every layer uses.
    pub fn mask(self, n_heads: usize) -> MaskKind {
        match self {
            Heads::Bidirectional => MaskKind::Bidirectional,
            Heads::ForwardBackward => {
                MaskKind::ForwardBackward { heads: n_heads, forward: n_heads / 2 }
            }
        }
    }
    // ANCHOR_END: heads_mask
}

/// Rank measures of one head's attention matrix, averaged over the measured rows.
#[derive(Debug, Clone, Serialize)]
pub struct HeadRank {
    pub layer: usize,
    pub head: usize,
    /// Forward, backward or bidirectional.
    pub direction: &'static str,
    pub effective_rank: f64,
    /// Singular values above 10⁻³ of the largest.
    pub rank_1e3: f64,
}

/// One trained encoder.
pub struct Encoder {
    pub points: Vec<Point>,
    pub row_losses: Vec<f64>,
    /// Every head, measured at initialisation and after training.
    pub init_heads: Vec<HeadRank>,
    pub heads: Vec<HeadRank>,
    pub seconds: f64,
}

/// The effective rank of perfectly uniform causal attention over `n` positions (row
/// `i` puts `1 / (i + 1)` on each of its `i + 1` keys): what a triangular mask
/// gives before any learning. Uniform bidirectional attention has effective rank 1.
pub fn uniform_causal_effective_rank(n: usize) -> anyhow::Result<f64> {
    let a =
        Mat::from_fn(n, n, |i, j| if j <= i { 1.0 / (i + 1) as f64 } else { 0.0 });
    Ok(round_dp(ch03_low_rank::Measures::of(a.as_ref())?.effective_rank, 2))
}

fn mlm_loss(m: &DecoderOnly, b: &LmBatch) -> anyhow::Result<candle_core::Tensor> {
    let (x, y, w) = b.tensors()?;
    let nll = token_nll(&m.forward(&x, &b.mask)?, &y)?;
    Ok((nll * &w)?.sum_all()?.broadcast_div(&w.sum_all()?.maximum(1e-9)?)?)
}

/// Per-row held-out MLM loss (nats per predicted token) under one fixed corruption.
fn heldout_losses(m: &DecoderOnly, b: &LmBatch) -> anyhow::Result<Vec<f64>> {
    let (x, y, w) = b.tensors()?;
    let nll = token_nll(&m.forward(&x, &b.mask)?, &y)?;
    let per_row = (nll * &w)?.sum(1)?.to_vec1::<f32>()?;
    let counts = w.sum(1)?.to_vec1::<f32>()?;
    Ok(per_row
        .iter()
        .zip(&counts)
        .map(|(l, n)| f64::from(*l) / f64::from(n.max(1.0)))
        .collect())
}

fn corrupted(
    rows: &[Vec<u32>],
    r: &mut rng::Rng,
    data: &Data,
    heads: Heads,
    s: &Settings,
) -> LmBatch {
    let tok = &data.world.tok;
    let mut b = masked_lm(
        rows,
        r,
        &tok.specials,
        tok.vocab_size() as u32,
        &MlmConfig::default(),
    );
    b.mask = heads.mask(s.n_heads);
    b
}

// ANCHOR: measure
/// Every head's attention on held-out rows as the encoder reads them in training
/// (corrupted), through the traced forward pass and chapter 3's
/// [`head_matrices`]; each `n × n` matrix measured in `f64` by chapter 3's
/// [`ch03_low_rank::Measures`].
fn head_ranks(
    m: &DecoderOnly,
    heads: Heads,
    batch: &LmBatch,
    rows: usize,
) -> anyhow::Result<Vec<HeadRank>> {
    let ids = batch.tensors()?.0.narrow(0, 0, rows)?;
    let out = m.run(&ids, &batch.mask, Forward { cache: None, trace: true })?;
    let h = m.cfg.n_heads;
    let mut ranks = Vec::new();
    for HeadMatrices { layer, head, rows } in head_matrices(&out.layers)? {
        let (mut er, mut r3) = (0.0, 0.0);
        let b = rows.len() as f64;
        for a in &rows {
            let measures = ch03_low_rank::Measures::of(a.as_ref())?;
            er += measures.effective_rank / b;
            r3 += measures.rank_1e3 as f64 / b;
        }
        let direction = match heads {
            Heads::Bidirectional => "both",
            Heads::ForwardBackward if head < h / 2 => "forward",
            Heads::ForwardBackward => "backward",
        };
        ranks.push(HeadRank {
            layer,
            head,
            direction,
            effective_rank: round_dp(er, 2),
            rank_1e3: round_dp(r3, 2),
        });
    }
    Ok(ranks)
}
// ANCHOR_END: measure

// ANCHOR: train_encoder
/// Train one encoder with BERT's masked LM on the pretraining rows (the same rows,
/// in the same order, under the same corruption for both encoders of a seed).
pub fn train_encoder(
    data: &Data,
    s: &Settings,
    heads: Heads,
    seed: u64,
) -> anyhow::Result<Encoder> {
    let store = ParamStore::new(seed);
    let cfg = s.model_config(data.world.tok.vocab_size(), s.layers);
    let m = DecoderOnly::new(&cfg, store.vb().pp("model"))?;
    let batch = s.world.batch;
    let heldout = corrupted(
        &data.heldout,
        &mut rng::stream(SEED, "ch05.su.heldout"),
        data,
        heads,
        s,
    );
    let init_heads = head_ranks(&m, heads, &heldout, s.measured_rows)?;
    let (mut points, mut last, flops) =
        (Vec::new(), Vec::new(), std::cell::Cell::new(0u64));
    let log = train::train(
        &store,
        &ch04_zero_shot::train_config(s.pretrain_steps, s.lr, s.eval_every(), seed),
        |step, _| {
            let rows = &data.world.rows[step * batch..(step + 1) * batch];
            let b = corrupted(
                rows,
                &mut rng::stream(SEED, &format!("ch05.su.{step}")),
                data,
                heads,
                s,
            );
            let (loss, f) = transformer::flops::count(|| mlm_loss(&m, &b));
            flops.set(flops.get() + f);
            Ok(StepLoss {
                loss: loss?,
                tokens_seen: batch * s.world.row_len,
                tokens_supervised: b.tokens_supervised(),
            })
        },
        |step| {
            last = heldout_losses(&m, &heldout)?;
            let (point, mean) =
                Point::at(step, batch, s.world.row_len, flops.get(), &last);
            points.push(point);
            Ok(mean)
        },
    )?;
    let heads_measured = head_ranks(&m, heads, &heldout, s.measured_rows)?;
    Ok(Encoder {
        points,
        row_losses: last,
        init_heads,
        heads: heads_measured,
        seconds: log.seconds,
    })
}
// ANCHOR_END: train_encoder
