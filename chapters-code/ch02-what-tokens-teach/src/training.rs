//! Training under three objectives: the same model, rows and tokens seen.

use std::fmt::Write as _;

use candle_core::Tensor;
use serde::Serialize;
use transformer::chapter::round_dp;
use transformer::io::thousands;
use transformer::loss::masked_cross_entropy;
use transformer::objectives::{self, LmBatch};
use transformer::rng;
use transformer::tokenizer::BpeTokenizer;
use transformer::train::{self, StepLoss, TrainConfig, TrainLog};
use transformer::{DecoderOnly, MaskKind, ParamStore};

use crate::*;

/// Which objective a training run uses.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Objective {
    FullLm,
    PrefixLm,
    MaskedLm,
}

impl Objective {
    pub fn label(self) -> &'static str {
        match self {
            Objective::FullLm => "full LM (causal decoder)",
            Objective::PrefixLm => "prefix LM (prefix decoder)",
            Objective::MaskedLm => "masked LM (bidirectional encoder)",
        }
    }

    /// The batch this objective builds from rows of `t + 1` tokens (MLM reads the
    /// first `t`).
    pub fn batch(
        self,
        rows: &[Vec<u32>],
        r: &mut rng::Rng,
        tok: &BpeTokenizer,
    ) -> LmBatch {
        let sp = &tok.specials;
        match self {
            Objective::FullLm => objectives::full_lm(rows, sp),
            Objective::PrefixLm => objectives::prefix_lm(rows, r, sp),
            Objective::MaskedLm => objectives::masked_lm_on_inputs(
                rows,
                r,
                sp,
                tok.vocab_size() as u32,
            ),
        }
    }
}

/// One evaluation of one run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalPoint {
    pub step: usize,
    pub tokens_seen: usize,
    pub tokens_supervised: usize,
    /// Held-out loss under the run's own objective.
    pub loss: f64,
    /// Held-out next-token loss on the second half of each row, the first half
    /// given as the prefix (a causal model reads it causally, a prefix model
    /// bidirectionally). `None` for the masked LM, which cannot be scored this way.
    pub second_half_loss: Option<f64>,
}

/// One training run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub objective: Objective,
    pub evals: Vec<EvalPoint>,
    pub tokens_seen: usize,
    pub tokens_supervised: usize,
    pub supervised_fraction: f64,
    pub final_loss: f64,
    pub final_second_half_loss: Option<f64>,
    #[serde(skip)]
    pub seconds: f64,
}

fn loss_of(model: &DecoderOnly, b: &LmBatch) -> anyhow::Result<Tensor> {
    let (x, y, w) = b.tensors()?;
    let logits = model.forward(&x, &b.mask)?;
    Ok(masked_cross_entropy(&logits, &y, &w)?)
}

/// The fixed second-half evaluation batch: prefix of `t / 2` tokens, loss from
/// position `t/2 − 1` on (exactly the positions a prefix model may be scored on).
fn second_half(
    rows: &[Vec<u32>],
    tok: &BpeTokenizer,
    objective: Objective,
) -> LmBatch {
    let mut b = objectives::full_lm(rows, &tok.specials);
    let t = b.input[0].len();
    let k = t / 2;
    for w in &mut b.weight {
        for x in &mut w[..k - 1] {
            *x = 0.0;
        }
    }
    if objective == Objective::PrefixLm {
        b.mask = MaskKind::prefix(k);
    }
    b
}

// ANCHOR: train_run
/// Train the shared model shape under one objective: for a given `seed`, the same
/// initial weights, the same rows in the same order and the same number of tokens
/// seen for every objective.
pub fn train_run(
    s: &Settings,
    tok: &BpeTokenizer,
    train_rows: &[Vec<u32>],
    eval_rows: &[Vec<u32>],
    objective: Objective,
    seed: u64,
) -> anyhow::Result<Run> {
    let store = ParamStore::new(seed);
    let model = DecoderOnly::new(
        &s.model_config(tok.vocab_size()),
        store.vb().pp("model"),
    )?;
    let cfg = TrainConfig {
        steps: s.steps,
        lr: s.lr,
        warmup: (s.steps / 10).max(1),
        eval_every: s.eval_every,
        seed,
        progress: false,
        ..TrainConfig::default()
    };
    let pad = tok.specials.pad;
    let step_fn = |step: usize, r: &mut rng::Rng| -> anyhow::Result<StepLoss> {
        let rows: Vec<Vec<u32>> = (0..s.batch)
            .map(|j| train_rows[(step * s.batch + j) % train_rows.len()].clone())
            .collect();
        let b = objective.batch(&rows, r, tok);
        Ok(StepLoss {
            loss: loss_of(&model, &b)?,
            tokens_seen: b.tokens_seen(pad),
            tokens_supervised: b.tokens_supervised(),
        })
    };
    // Held-out batches are drawn once, with a fixed seed, so every evaluation
    // scores the same corrupted rows.
    let held_out =
        objective.batch(eval_rows, &mut rng::stream(SEED, "ch02.eval"), tok);
    let half = second_half(eval_rows, tok, objective);
    let mut halves = Vec::new();
    let eval_fn = |_step: usize| -> anyhow::Result<f64> {
        if objective != Objective::MaskedLm {
            halves.push(f64::from(loss_of(&model, &half)?.to_scalar::<f32>()?));
        }
        Ok(f64::from(loss_of(&model, &held_out)?.to_scalar::<f32>()?))
    };
    let log = train::train(&store, &cfg, step_fn, eval_fn)?;
    Ok(summarise(objective, &log, &halves))
}
// ANCHOR_END: train_run

fn summarise(objective: Objective, log: &TrainLog, halves: &[f64]) -> Run {
    let evals: Vec<EvalPoint> = log
        .evals
        .iter()
        .enumerate()
        .map(|(i, e)| EvalPoint {
            step: e.step,
            tokens_seen: e.tokens_seen,
            tokens_supervised: e.tokens_supervised,
            loss: round_dp(e.value, 3),
            second_half_loss: halves.get(i).map(|&x| round_dp(x, 3)),
        })
        .collect();
    let last = log.steps.last().expect("at least one step");
    let final_eval = evals.last().expect("the last step is evaluated");
    Run {
        objective,
        tokens_seen: last.tokens_seen,
        tokens_supervised: last.tokens_supervised,
        supervised_fraction: round_dp(
            last.tokens_supervised as f64 / last.tokens_seen as f64,
            3,
        ),
        final_loss: final_eval.loss,
        final_second_half_loss: final_eval.second_half_loss,
        evals,
        seconds: log.seconds,
    }
}

/// The training comparison as a table.
pub fn training_table(runs: &[Run]) -> String {
    let mut t = String::from(
        "| Objective | Tokens seen | Tokens supervised | Supervised fraction | Held-out loss (own objective) | Held-out loss on the second half |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in runs {
        let half = r
            .final_second_half_loss
            .map_or("n/a".to_string(), |x| format!("{x:.3}"));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.3} | {:.3} | {half} |",
            r.objective.label(),
            thousands(r.tokens_seen as u64),
            thousands(r.tokens_supervised as u64),
            r.supervised_fraction,
            r.final_loss
        );
    }
    t
}

/// The full LM's second-half loss at the point where it had received as many losses
/// as the prefix LM did in its whole run: linear interpolation between its
/// evaluations.
pub fn second_half_at_supervised(run: &Run, supervised: usize) -> Option<f64> {
    let pts: Vec<(f64, f64)> = run
        .evals
        .iter()
        .filter_map(|e| e.second_half_loss.map(|l| (e.tokens_supervised as f64, l)))
        .collect();
    let x = supervised as f64;
    pts.windows(2).find(|w| w[0].0 <= x && x <= w[1].0).map(|w| {
        let t =
            if w[1].0 > w[0].0 { (x - w[0].0) / (w[1].0 - w[0].0) } else { 0.0 };
        w[0].1 + t * (w[1].1 - w[0].1)
    })
}

/// The cross-entropy of predicting each supervised target of `batch` from the
/// unigram frequencies of `rows` (add-one smoothed over `vocab` tokens): what a
/// model that learned only token frequencies would score on that batch.
pub fn unigram_loss(rows: &[Vec<u32>], batch: &LmBatch, vocab: usize) -> f64 {
    let mut counts = vec![1.0f64; vocab];
    for &t in rows.iter().flatten() {
        counts[t as usize] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    let (mut nll, mut n) = (0.0, 0usize);
    for (targets, weights) in batch.target.iter().zip(&batch.weight) {
        for (&t, &w) in targets.iter().zip(weights) {
            if w > 0.0 {
                nll -= (counts[t as usize] / total).ln();
                n += 1;
            }
        }
    }
    if n == 0 { f64::NAN } else { nll / n as f64 }
}
