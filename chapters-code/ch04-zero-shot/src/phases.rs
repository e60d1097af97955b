//! The three phases: self-supervised pretraining (evaluated as it goes), multitask
//! finetuning, and the paper's recommendation, non-causal MLM adaptation of the
//! causal decoder.

use std::path::{Path, PathBuf};

use serde::Serialize;
use transformer::ParamStore;
use transformer::chapter::round_dp;
use transformer::corpus::TaskFamily;
use transformer::rng::Rng;
use transformer::train::{self, StepLoss, TrainConfig};

use crate::*;

/// Held-out and training-family accuracy of one evaluation on one suite (%, median
/// over templates, mean over families).
#[derive(Debug, Clone, Serialize)]
pub struct SuiteSummary {
    pub held_out: f64,
    pub held_out_per_byte: f64,
    pub held_out_calibrated: f64,
    pub training_families: f64,
    pub training_families_per_byte: f64,
    pub training_families_calibrated: f64,
}

/// Both suites.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub kind: SuiteSummary,
    pub scene: SuiteSummary,
}

/// One evaluation during pretraining.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub step: usize,
    pub tokens_seen: usize,
    pub tokens_supervised: usize,
    #[serde(flatten)]
    pub summary: Summary,
}

/// One trained model and its evaluations; `last` is kept for the bootstrap.
pub struct Trained {
    pub store: ParamStore,
    pub net: Net,
    pub points: Vec<Point>,
    /// Training loss of every step.
    pub losses: Vec<f64>,
    pub last: Evaluations,
    /// Wall-clock seconds of the whole run, and of its evaluations alone.
    pub seconds: f64,
    pub eval_seconds: f64,
}

pub fn summarise_suite(e: &Evaluation, items: &[EvalItem]) -> SuiteSummary {
    let sum = family_accuracy(e, items, Score::Summed);
    let norm = family_accuracy(e, items, Score::PerByte);
    let cal = family_accuracy(e, items, Score::Calibrated);
    let (held, trained) = (TaskFamily::held_out(), TaskFamily::training());
    SuiteSummary {
        held_out: round_dp(mean_over(&sum, &held), 2),
        held_out_per_byte: round_dp(mean_over(&norm, &held), 2),
        held_out_calibrated: round_dp(mean_over(&cal, &held), 2),
        training_families: round_dp(mean_over(&sum, &trained), 2),
        training_families_per_byte: round_dp(mean_over(&norm, &trained), 2),
        training_families_calibrated: round_dp(mean_over(&cal, &trained), 2),
    }
}

pub fn summarise(e: &Evaluations, suites: &Suites) -> Summary {
    Summary {
        kind: summarise_suite(&e.kind, &suites.kind),
        scene: summarise_suite(&e.scene, &suites.scene),
    }
}

/// The training schedule of every phase: warm-up over the first tenth of the steps,
/// then the library's cosine decay; no progress bar (the chapter prints its own
/// lines).
pub fn train_config(
    steps: usize,
    lr: f64,
    eval_every: usize,
    seed: u64,
) -> TrainConfig {
    TrainConfig {
        steps,
        lr,
        warmup: (steps / 10).max(1),
        eval_every,
        seed,
        progress: false,
        ..TrainConfig::default()
    }
}

/// Train `net` (whose variables live in `store`) for `steps` on batches from
/// `batch_fn`, and evaluate the suite every `eval_every` steps and after the last.
fn run(
    data: &Data,
    store: ParamStore,
    net: Net,
    arch: Arch,
    cfg: &TrainConfig,
    mut batch_fn: impl FnMut(&Net, usize, &mut Rng) -> anyhow::Result<StepLoss>,
) -> anyhow::Result<Trained> {
    let mut evals = Vec::new();
    let mut eval_seconds = 0.0;
    let log = train::train(
        &store,
        cfg,
        |step, r| batch_fn(&net, step, r),
        |_| {
            let t = std::time::Instant::now();
            let e = evaluate_suites(&net, arch, &data.eval, &data.tok.specials)?;
            eval_seconds += t.elapsed().as_secs_f64();
            let held = summarise(&e, &data.eval).kind.held_out;
            evals.push(e);
            Ok(held)
        },
    )?;
    let points = log
        .evals
        .iter()
        .zip(&evals)
        .map(|(p, e)| Point {
            step: p.step,
            tokens_seen: p.tokens_seen,
            tokens_supervised: p.tokens_supervised,
            summary: summarise(e, &data.eval),
        })
        .collect();
    let last = evals.pop().expect("the last step is evaluated");
    let losses = log.steps.iter().map(|s| s.loss).collect();
    Ok(Trained {
        store,
        net,
        points,
        losses,
        last,
        seconds: log.seconds,
        eval_seconds,
    })
}

/// Pretraining rows `first .. first + steps · batch` as batches, with `objective`
/// for `arch`.
fn rows_batch<'a>(
    data: &'a Data,
    s: &'a Settings,
    cell: Cell,
    first: usize,
) -> impl FnMut(&Net, usize, &mut Rng) -> anyhow::Result<StepLoss> + 'a {
    move |net, step, r| {
        let start = first + step * s.batch;
        let rows = &data.rows[start..start + s.batch];
        let b = net.pretrain_loss(cell, rows, r, &data.tok.specials)?;
        // Tokens seen: the rows' text, the same for every cell (not what each stack
        // reads).
        Ok(StepLoss {
            loss: b.loss,
            tokens_seen: s.batch * s.row_len,
            tokens_supervised: b.tokens_supervised,
        })
    }
}

// ANCHOR: pretrain
/// Phase 1: pretrain `cell` from the initial weights of `seed` on the shared rows.
pub fn pretrain(
    data: &Data,
    s: &Settings,
    cell: Cell,
    seed: u64,
) -> anyhow::Result<Trained> {
    let (store, net) = initial(data, s, cell.arch, seed)?;
    let cfg = train_config(s.pretrain_steps, s.lr, s.eval_every(), seed);
    run(data, store, net, cell.arch, &cfg, rows_batch(data, s, cell, 0))
}

/// A model of `arch` at the initial weights of `seed`, and the store that owns
/// them (the store sets the weights; [`adapt`] then loads a checkpoint into it).
fn initial(
    data: &Data,
    s: &Settings,
    arch: Arch,
    seed: u64,
) -> anyhow::Result<(ParamStore, Net)> {
    let store = ParamStore::new(seed);
    let net = Net::new(&store, arch, &s.model_config(data.tok.vocab_size()))?;
    Ok((store, net))
}
// ANCHOR_END: pretrain

// ANCHOR: finetune
/// Phase 2: multitask finetuning of a trained model on prompted examples of the
/// training families, read the way `arch` reads prompts; a loss on the answer only.
pub fn finetune(
    data: &Data,
    s: &Settings,
    from: Trained,
    arch: Arch,
    seed: u64,
) -> anyhow::Result<Trained> {
    let cfg = train_config(s.mtf_steps, s.mtf_lr, 0, seed);
    let batch = |net: &Net, step: usize, _: &mut Rng| -> anyhow::Result<StepLoss> {
        let examples = mtf_batch(&data.tok, s, data.mtf_seed, step)?;
        let pairs: Vec<(Vec<u32>, Vec<u32>)> =
            examples.into_iter().map(|e| (e.prompt, e.answer)).collect();
        let seen = pairs.iter().map(|(p, a)| p.len() + a.len()).sum();
        let b = net.prompted_nll(arch, &pairs, &data.tok.specials)?.mean()?;
        Ok(StepLoss {
            loss: b.loss,
            tokens_seen: seen,
            tokens_supervised: b.tokens_supervised,
        })
    };
    run(data, from.store, from.net, arch, &cfg, batch)
}
// ANCHOR_END: finetune

// ANCHOR: adapt
/// Phase 3: continue training a pretrained decoder on fresh rows (those after
/// pretraining's) as `cell`: ND:MLM is the paper's non-causal MLM adaptation,
/// CD:FLM its control.
pub fn adapt(
    data: &Data,
    s: &Settings,
    from: &Path,
    cell: Cell,
    seed: u64,
) -> anyhow::Result<Trained> {
    let (store, net) = initial(data, s, cell.arch, seed)?;
    store.load(from)?;
    let cfg = train_config(s.adapt_steps, s.lr, 0, seed);
    run(
        data,
        store,
        net,
        cell.arch,
        &cfg,
        rows_batch(data, s, cell, s.pretrain_steps * s.batch),
    )
}
// ANCHOR_END: adapt

/// Where a run keeps its pretrained checkpoints (safetensors, loadable by candle's
/// `VarBuilder` and by PyTorch's `safetensors.torch.load_file`).
pub fn checkpoint_path(dir: &Path, cell: Cell, seed: u64) -> PathBuf {
    dir.join(format!("{}-seed{seed}.safetensors", cell.name().replace(':', "-")))
}
