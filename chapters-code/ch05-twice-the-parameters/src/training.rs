//! Training: every contender pretrained on the same pairs in the same order, its
//! held-out loss measured as it goes against tokens and against the FLOPs it spent;
//! then multitask finetuning and the downstream tests.

use serde::Serialize;
use transformer::ParamStore;
use transformer::chapter::round_dp;
use transformer::train::{self, StepLoss};

use ch04_zero_shot::{Net, train_config};

use crate::*;

/// One evaluation during pretraining.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub step: usize,
    pub tokens_seen: usize,
    /// Forward-pass matmul FLOPs spent on training so far, counted as the batches
    /// ran.
    pub forward_flops: u64,
    /// Mean held-out loss, nats per target token.
    pub heldout_loss: f64,
}

impl Point {
    /// The evaluation after `step` steps of `batch` rows of `row_len` tokens, from
    /// the held-out losses of every row and the FLOPs counted so far; returns the
    /// point and the mean loss.
    pub fn at(
        step: usize,
        batch: usize,
        row_len: usize,
        forward_flops: u64,
        losses: &[f64],
    ) -> (Point, f64) {
        let mean = losses.iter().sum::<f64>() / losses.len() as f64;
        let p = Point {
            step,
            tokens_seen: step * batch * row_len,
            forward_flops,
            heldout_loss: round_dp(mean, 4),
        };
        (p, mean)
    }
}

/// One pretrained contender.
pub struct Pretrained {
    pub store: ParamStore,
    pub net: Net,
    pub points: Vec<Point>,
    /// The held-out loss of every held-out row after the last step.
    pub row_losses: Vec<f64>,
    pub seconds: f64,
}

// ANCHOR: pretrain
/// Pretrain `c` from the initial weights of `seed`: batch `step` is the same pairs
/// for every contender, and so is the held-out set.
pub fn pretrain(
    data: &Data,
    s: &Settings,
    c: &Contender,
    seed: u64,
) -> anyhow::Result<Pretrained> {
    let sp = &data.world.tok.specials;
    let store = ParamStore::new(seed);
    let net = c.build(&store, s, data.world.tok.vocab_size())?;
    let heldout = heldout_pairs(&data.heldout);
    let (flops, mut points, mut last) =
        (std::cell::Cell::new(0u64), Vec::new(), Vec::new());
    let cfg = train_config(s.pretrain_steps, s.lr, s.eval_every(), seed);
    let batch = s.world.batch;
    let log = train::train(
        &store,
        &cfg,
        |step, _| {
            let pairs = pretraining_pairs(
                &data.world.rows[step * batch..(step + 1) * batch],
                step,
            );
            let (b, f) = transformer::flops::count(|| {
                net.prompted_nll(c.arch, &pairs, sp)?.mean()
            });
            flops.set(flops.get() + f);
            let b = b?;
            Ok(StepLoss {
                loss: b.loss,
                tokens_seen: batch * s.world.row_len,
                tokens_supervised: b.tokens_supervised,
            })
        },
        |step| {
            last = pair_losses(&net, c.arch, &heldout, sp)?;
            let (point, mean) =
                Point::at(step, batch, s.world.row_len, flops.get(), &last);
            points.push(point);
            Ok(mean)
        },
    )?;
    Ok(Pretrained { store, net, points, row_losses: last, seconds: log.seconds })
}
// ANCHOR_END: pretrain

/// A finetuned contender's downstream results.
pub struct Finetuned {
    pub listing: ListingScores,
    pub suite: SuiteHits,
    pub seconds: f64,
}

// ANCHOR: finetune
/// Multitask finetuning of a pretrained contender (chapter 4's training families
/// and step listing, a loss on the answers only), then the downstream tests.
pub fn finetune(
    data: &Data,
    s: &Settings,
    c: &Contender,
    pre: Pretrained,
    seed: u64,
) -> anyhow::Result<Finetuned> {
    let sp = &data.world.tok.specials;
    let cfg = train_config(s.finetune_steps, s.lr, 0, seed);
    let Pretrained { store, net, .. } = pre;
    let log = train::train(
        &store,
        &cfg,
        |step, _| {
            let pairs = finetune_batch(data, s, step)?;
            let seen = pairs.iter().map(|(p, a)| p.len() + a.len()).sum();
            let b = net.prompted_nll(c.arch, &pairs, sp)?.mean()?;
            Ok(StepLoss {
                loss: b.loss,
                tokens_seen: seen,
                tokens_supervised: b.tokens_supervised,
            })
        },
        |_| Ok(0.0),
    )?;
    let start = std::time::Instant::now();
    let listing = listing_scores(&net, c.arch, &data.listing, &data.world.tok)?;
    let suite = suite_hits(&net, c.arch, data)?;
    Ok(Finetuned {
        listing,
        suite,
        seconds: log.seconds + start.elapsed().as_secs_f64(),
    })
}
// ANCHOR_END: finetune
