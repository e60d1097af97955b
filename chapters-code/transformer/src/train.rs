//! The training loop: AdamW, linear warm-up then cosine decay, global-norm gradient
//! clipping, periodic evaluation and a progress bar.
//!
//! Deterministic by construction: the data generator is seeded, the initial weights
//! come from the parameter store's seeded generator, and nothing else is random.

use std::sync::Mutex;
use std::time::Instant;

use candle_core::{Tensor, Var, backprop::GradStore};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernels::{self, Kernels};
use crate::params::ParamStore;
use crate::rng::{self, Rng};

/// Hyper-parameters of one training run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    pub steps: usize,
    pub lr: f64,
    pub warmup: usize,
    /// The learning rate decays (cosine) to `lr * min_lr_ratio` at the last step.
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global gradient norm to this value.
    pub clip: f64,
    /// Evaluate every this many steps (and after the last); 0 evaluates only at the
    /// end.
    pub eval_every: usize,
    /// Seed of the data stream handed to the step function.
    pub seed: u64,
    /// Show a progress bar (only ever drawn on a terminal).
    pub progress: bool,
    /// Whether the update runs as one fused kernel (`kernels.adamw`); a choice of
    /// speed, never serialised.
    #[serde(skip)]
    pub kernels: Kernels,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 100,
            lr: 3e-3,
            warmup: 10,
            min_lr_ratio: 0.1,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            clip: 1.0,
            eval_every: 0,
            seed: 0,
            progress: true,
            kernels: Kernels::default(),
        }
    }
}

impl TrainConfig {
    /// Learning rate at `step` (0-based): linear warm-up, then cosine decay.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = (self.steps.saturating_sub(self.warmup)).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)
    }
}

/// What one training step reports back: the loss to minimise and what it was
/// computed on.
pub struct StepLoss {
    pub loss: Tensor,
    /// Tokens the model read in this step.
    pub tokens_seen: usize,
    /// Positions that received a loss (the objective's "signal").
    pub tokens_supervised: usize,
}

/// One training step, as logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub lr: f64,
    pub loss: f64,
    pub grad_norm: f64,
    pub tokens_seen: usize,
    pub tokens_supervised: usize,
}

/// One evaluation, as logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalRecord {
    pub step: usize,
    pub tokens_seen: usize,
    pub tokens_supervised: usize,
    pub value: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainLog {
    pub steps: Vec<StepRecord>,
    pub evals: Vec<EvalRecord>,
    pub seconds: f64,
}

/// AdamW (Loshchilov & Hutter 2019) with decoupled weight decay on matrices only.
pub struct AdamW {
    vars: Vec<(String, Var)>,
    /// First and second moments of each variable's gradient.
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    t: i32,
    cfg: TrainConfig,
}

impl AdamW {
    pub fn new(store: &ParamStore, cfg: &TrainConfig) -> Result<Self> {
        let vars = store.vars();
        let m = vars.iter().map(|(_, v)| vec![0f32; v.elem_count()]).collect();
        let v = vars.iter().map(|(_, v)| vec![0f32; v.elem_count()]).collect();
        Ok(AdamW { vars, m, v, t: 0, cfg: cfg.clone() })
    }

    /// Clip the gradients to the configured global norm, take one step at learning
    /// rate `lr`, and return the gradient norm before clipping. A parameter without
    /// a gradient, or a non-finite gradient, is an error: training must never
    /// silently stop learning.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<f64> {
        let fused = self.cfg.kernels.adamw;
        let mut sq = 0f64;
        let mut gs = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            let Some(g) = grads.get(var.as_tensor()) else {
                return Err(Error::Training(format!(
                    "{name} received no gradient"
                )));
            };
            sq += if fused {
                kernels::sum_of_squares(g)?
            } else {
                f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?)
            };
            gs.push(g);
        }
        let norm = sq.sqrt();
        if !norm.is_finite() {
            return Err(Error::Training(format!("gradient norm is {norm}")));
        }
        let scale = (self.cfg.clip / (norm + 1e-6)).min(1.0);
        self.t += 1;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(self.t);
        let bc2 = 1.0 - b2.powi(self.t);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let decay =
                if var.rank() >= 2 { lr * self.cfg.weight_decay } else { 0.0 };
            if fused {
                // The five lines below in one in-place pass over θ, m and v (see
                // `kernels`).
                let op = kernels::AdamWStep {
                    m: Mutex::new(&mut self.m[i]),
                    v: Mutex::new(&mut self.v[i]),
                    grad_scale: scale as f32,
                    beta1: b1 as f32,
                    beta2: b2 as f32,
                    bias_correction1: bc1 as f32,
                    bias_correction2: bc2 as f32,
                    eps: self.cfg.eps as f32,
                    lr: lr as f32,
                    decay: decay as f32,
                };
                var.as_tensor().inplace_op2(&gs[i].contiguous()?, &op)?;
                continue;
            }
            let shape = var.shape();
            let g = (gs[i] * scale)?;
            let m = ((Tensor::from_slice(&self.m[i], shape, var.device())? * b1)?
                + (&g * (1.0 - b1))?)?;
            let v = ((Tensor::from_slice(&self.v[i], shape, var.device())? * b2)?
                + (g.sqr()? * (1.0 - b2))?)?;
            let denom = ((&v / bc2)?.sqrt()? + self.cfg.eps)?;
            let update = ((&m / bc1)? / denom)?;
            let theta = ((var.as_tensor() * (1.0 - decay))? - (update * lr)?)?;
            var.set(&theta)?;
            (self.m[i], self.v[i]) =
                (m.flatten_all()?.to_vec1()?, v.flatten_all()?.to_vec1()?);
        }
        Ok(norm)
    }
}

/// Train the variables of `store`. `step_fn(step, rng)` builds a batch from the
/// seeded data stream and returns its loss; `eval_fn(step)` returns a held-out
/// metric. Both are the caller's code, so they may fail with any error (an
/// `anyhow::Error` in the chapters); it comes back as [`Error::Callback`], with
/// its causes.
pub fn train(
    store: &ParamStore,
    cfg: &TrainConfig,
    mut step_fn: impl FnMut(usize, &mut Rng) -> anyhow::Result<StepLoss>,
    mut eval_fn: impl FnMut(usize) -> anyhow::Result<f64>,
) -> Result<TrainLog> {
    let callback = |what: &'static str, step: usize| {
        move |e: anyhow::Error| Error::Callback { what, step, source: e.into() }
    };
    let mut opt = AdamW::new(store, cfg)?;
    let mut data = rng::stream(cfg.seed, "data");
    let bar = progress_bar(cfg);
    let start = Instant::now();
    let mut log = TrainLog { steps: Vec::new(), evals: Vec::new(), seconds: 0.0 };
    let (mut seen, mut supervised) = (0, 0);
    for step in 0..cfg.steps {
        let out =
            step_fn(step, &mut data).map_err(callback("training step", step))?;
        let loss = f64::from(out.loss.to_scalar::<f32>()?);
        if !loss.is_finite() {
            return Err(Error::Training(format!(
                "loss became {loss} at step {step}"
            )));
        }
        let lr = cfg.lr_at(step);
        let grad_norm = opt.step(&out.loss.backward()?, lr)?;
        seen += out.tokens_seen;
        supervised += out.tokens_supervised;
        log.steps.push(StepRecord {
            step,
            lr,
            loss,
            grad_norm,
            tokens_seen: seen,
            tokens_supervised: supervised,
        });
        let last = step + 1 == cfg.steps;
        if last || (cfg.eval_every > 0 && (step + 1) % cfg.eval_every == 0) {
            let value = eval_fn(step + 1)
                .map_err(callback("evaluation after step", step + 1))?;
            log.evals.push(EvalRecord {
                step: step + 1,
                tokens_seen: seen,
                tokens_supervised: supervised,
                value,
            });
        }
        bar.set_message(format!("loss {loss:.3}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    log.seconds = start.elapsed().as_secs_f64();
    Ok(log)
}

fn progress_bar(cfg: &TrainConfig) -> ProgressBar {
    if !cfg.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(cfg.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} {msg} (eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let c = TrainConfig {
            steps: 110,
            warmup: 10,
            lr: 1.0,
            min_lr_ratio: 0.1,
            ..TrainConfig::default()
        };
        assert!((c.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(9) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(10) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(110) - 0.1).abs() < 1e-12);
        for s in 10..109 {
            assert!(c.lr_at(s + 1) <= c.lr_at(s));
        }
    }
}
