//! The whole experiment: every contender and seed, then the matched comparisons and
//! Su's second experiment, gathered into what the page shows.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use transformer::chapter::round_dp;
use transformer::corpus::TaskFamily;

use ch04_zero_shot::{mean_over, random_baselines};
use transformer::chapter::Spread;

use crate::*;

/// The metrics every contender is measured on after each phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[derive(IntoStaticStr, VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Metric {
    /// Pretrained: held-out loss on the second half of a row after the first (nats
    /// per token).
    HeldoutLoss,
    /// Finetuned: step listing, greedy answers exactly right (%).
    ListingExact,
    /// Finetuned: step listing, steps given in their place (%).
    ListingSteps,
    /// Finetuned: step listing, loss on the reference answer (nats per token).
    ListingLoss,
    /// Finetuned: chapter 4's held-out families, zero-shot (%).
    ZeroShot,
    /// Finetuned: chapter 4's finetuning families (%).
    FinetuningFamilies,
}

impl Metric {
    pub fn lower_is_better(self) -> bool {
        matches!(self, Metric::HeldoutLoss | Metric::ListingLoss)
    }
}

/// One contender over its seeds.
#[derive(Debug, Clone, Serialize)]
pub struct ContenderResult {
    #[serde(flatten)]
    pub contender: Contender,
    pub parameters: usize,
    /// Forward FLOPs over the whole of pretraining, counted as the batches ran, per
    /// token of text (the split moves from batch to batch, and with it the
    /// encoder-decoder's cost).
    pub forward_flops_per_token: u64,
    /// Mean over seeds at each evaluation of pretraining.
    pub curve: Vec<Point>,
    /// Mean, standard deviation and range over seeds, by metric key.
    pub metrics: BTreeMap<&'static str, Spread>,
    /// Accuracy on chapter 4's held-out families minus chance, over seeds.
    pub zero_shot_vs_chance: Difference,
}

// ANCHOR: matchups
/// A matched comparison: `a` against `b`, and what is held equal.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Matchup {
    pub key: &'static str,
    pub a: &'static str,
    pub b: &'static str,
    pub matched: &'static str,
}

const fn m(
    key: &'static str,
    a: &'static str,
    b: &'static str,
    matched: &'static str,
) -> Matchup {
    Matchup { key, a, b, matched }
}

pub const MATCHUPS: [Matchup; 9] = [
    m(
        "flops_lm",
        "Enc-dec, L+L",
        "LM, L",
        "FLOPs (the encoder-decoder has twice the parameters)",
    ),
    m(
        "flops_plm",
        "Enc-dec, L+L",
        "Prefix LM, L",
        "FLOPs (the encoder-decoder has twice the parameters)",
    ),
    m(
        "params_lm",
        "Enc-dec, L+L",
        "LM, 2L",
        "parameters (the decoder spends twice the FLOPs)",
    ),
    m(
        "sharing",
        "Enc-dec, L+L",
        "Enc-dec shared, L+L",
        "architecture and FLOPs (twice the stack weights)",
    ),
    m(
        "shared_lm",
        "Enc-dec shared, L+L",
        "LM, L",
        "about the parameters and the FLOPs",
    ),
    m(
        "shared_plm",
        "Enc-dec shared, L+L",
        "Prefix LM, L",
        "about the parameters and the FLOPs",
    ),
    m(
        "su1",
        "Prefix LM, L",
        "LM, L",
        "everything but the mask (Su's first experiment)",
    ),
    m("half", "Enc-dec, L/2+L/2", "LM, L", "about the parameters (half the FLOPs)"),
    m("depth", "LM, 2L", "LM, L", "nothing: twice the parameters and the FLOPs"),
];
// ANCHOR_END: matchups

#[derive(Debug, Clone, Serialize)]
pub struct MatchupResult {
    #[serde(flatten)]
    pub matchup: Matchup,
    /// `a − b` on every metric, by metric key.
    pub differences: BTreeMap<&'static str, Difference>,
}

/// One of Su's encoders over its seeds.
#[derive(Debug, Clone, Serialize)]
pub struct EncoderResult {
    pub heads: Heads,
    pub name: &'static str,
    pub curve: Vec<Point>,
    pub heldout_loss: Spread,
    /// Mean over heads, layers and measured rows; spread over seeds.
    pub effective_rank: Spread,
    /// The same at initialisation, before any training.
    pub effective_rank_init: Spread,
    pub rank_1e3: Spread,
    /// Mean effective rank of the heads of each direction ("both", "forward",
    /// "backward").
    pub effective_rank_by_direction: BTreeMap<&'static str, Spread>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuResult {
    pub encoders: Vec<EncoderResult>,
    /// Held-out MLM loss, forward/backward minus bidirectional.
    pub loss_difference: Difference,
    /// Tokens per measured attention matrix, and the head dimension.
    pub matrix_size: usize,
    pub head_dim: usize,
    /// Effective rank of uniform causal attention over `matrix_size` positions.
    pub uniform_causal_effective_rank: f64,
}

/// Expected accuracy (%) of a uniformly random pick.
#[derive(Debug, Clone, Serialize)]
pub struct Chance {
    pub zero_shot: f64,
    pub finetuning_families: f64,
}

/// Wall-clock seconds on the machine that ran them.
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    pub pretraining_seconds: f64,
    pub finetuning_seconds: f64,
    pub su_seconds: f64,
    pub total_seconds: f64,
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub data: DataStats,
    pub costs: Vec<Cost>,
    pub chance: Chance,
    pub contenders: Vec<ContenderResult>,
    pub matchups: Vec<MatchupResult>,
    pub su: SuResult,
    #[serde(skip)]
    pub timings: Timings,
}

/// Per contender and metric: the values of every seed and item (a single item for
/// an accuracy over the suite).
type Kept = BTreeMap<(&'static str, Metric), Vec<Vec<f64>>>;

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// Mean over seeds of the curves, point by point.
fn mean_curve(curves: &[Vec<Point>]) -> Vec<Point> {
    (0..curves[0].len())
        .map(|i| Point {
            heldout_loss: round_dp(
                mean(&curves.iter().map(|c| c[i].heldout_loss).collect::<Vec<_>>()),
                4,
            ),
            ..curves[0][i].clone()
        })
        .collect()
}

fn su_experiment(data: &Data, s: &Settings) -> anyhow::Result<(SuResult, f64)> {
    let mut seconds = 0.0;
    let (mut encoders, mut rows) = (Vec::new(), Vec::new());
    for &heads in Heads::VARIANTS {
        let (mut curves, mut losses, mut er, mut r3) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut er_init = Vec::new();
        let mut by_dir: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
        let mut seed_rows = Vec::new();
        for seed in 0..s.seeds as u64 {
            let e = train_encoder(data, s, heads, seed)?;
            seconds += e.seconds;
            curves.push(e.points.clone());
            losses.push(mean(&e.row_losses));
            er.push(mean(
                &e.heads.iter().map(|h| h.effective_rank).collect::<Vec<_>>(),
            ));
            er_init.push(mean(
                &e.init_heads.iter().map(|h| h.effective_rank).collect::<Vec<_>>(),
            ));
            r3.push(mean(&e.heads.iter().map(|h| h.rank_1e3).collect::<Vec<_>>()));
            let mut dirs: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
            for h in &e.heads {
                dirs.entry(h.direction).or_default().push(h.effective_rank);
            }
            for (d, v) in dirs {
                by_dir.entry(d).or_default().push(mean(&v));
            }
            eprintln!(
                "ch05: Su's experiment 2, {} seed {seed}: held-out MLM loss {:.3}, effective rank {:.1}",
                heads.label(),
                losses.last().unwrap_or(&0.0),
                er.last().unwrap_or(&0.0)
            );
            seed_rows.push(e.row_losses);
        }
        rows.push(seed_rows);
        encoders.push(EncoderResult {
            heads,
            name: heads.label(),
            curve: mean_curve(&curves),
            heldout_loss: Spread::of(&losses, 4),
            effective_rank: Spread::of(&er, 2),
            effective_rank_init: Spread::of(&er_init, 2),
            rank_1e3: Spread::of(&r3, 2),
            effective_rank_by_direction: by_dir
                .into_iter()
                .map(|(d, v)| (d, Spread::of(&v, 2)))
                .collect(),
        });
    }
    let loss_difference = paired(
        (Heads::ForwardBackward.label(), Heads::Bidirectional.label()),
        "mlm_loss",
        &rows[1],
        &rows[0],
    );
    let su = SuResult {
        encoders,
        loss_difference,
        matrix_size: s.world.row_len,
        head_dim: s.d_model / s.n_heads,
        uniform_causal_effective_rank: uniform_causal_effective_rank(
            s.world.row_len,
        )?,
    };
    Ok((su, seconds))
}

/// Run the experiment.
pub fn compute(s: &Settings) -> anyhow::Result<Report> {
    let start = Instant::now();
    let data = data::build(s)?;
    let sp = &data.world.tok.specials;
    let vocab = data.world.tok.vocab_size();
    let costs = costs(
        s,
        vocab,
        &pretraining_pairs(&data.world.rows[..s.world.batch], 0),
        sp,
    )?;
    let held: Vec<_> = data
        .world
        .eval
        .scene
        .iter()
        .filter(|i| i.family.is_held_out())
        .cloned()
        .collect();
    let own: Vec<_> = data
        .world
        .eval
        .kind
        .iter()
        .filter(|i| !i.family.is_held_out())
        .cloned()
        .collect();
    let chance = Chance {
        zero_shot: round_dp(
            mean_over(&random_baselines(&held), &TaskFamily::held_out()),
            2,
        ),
        finetuning_families: round_dp(
            mean_over(&random_baselines(&own), &TaskFamily::training()),
            2,
        ),
    };
    let (mut t_pre, mut t_ft) = (0.0, 0.0);
    let mut kept = Kept::new();
    let mut contenders = Vec::new();
    for (c, cost) in CONTENDERS.iter().zip(&costs) {
        let (mut curves, mut flops_per_token) = (Vec::new(), 0);
        for seed in 0..s.seeds as u64 {
            let pre = pretrain(&data, s, c, seed)?;
            t_pre += pre.seconds;
            let end = pre.points.last().expect("the last step is evaluated");
            flops_per_token = end.forward_flops / end.tokens_seen as u64;
            curves.push(pre.points.clone());
            let rows = pre.row_losses.clone();
            let ft = finetune(&data, s, c, pre, seed)?;
            t_ft += ft.seconds;
            let exact: Vec<f64> = ft
                .listing
                .exact
                .iter()
                .map(|&e| if e { 100.0 } else { 0.0 })
                .collect();
            eprintln!(
                "ch05: {} seed {seed}: held-out loss {:.3}, listing {:.0}% exact, {:.0}% of steps, loss {:.3} \
                 [{t_pre:.0} s pretraining, {t_ft:.0} s finetuning]",
                c.name,
                mean(&rows),
                mean(&exact),
                mean(&ft.listing.steps),
                mean(&ft.listing.loss)
            );
            let (held, own) = (&ft.suite.held_out, &ft.suite.finetuning_families);
            let zero_shot =
                held.accuracy(&(0..held.instances()).collect::<Vec<_>>());
            let finetuned = own.accuracy(&(0..own.instances()).collect::<Vec<_>>());
            for (metric, values) in [
                (Metric::HeldoutLoss, rows),
                (Metric::ListingExact, exact),
                (Metric::ListingSteps, ft.listing.steps),
                (Metric::ListingLoss, ft.listing.loss),
                (Metric::ZeroShot, vec![zero_shot]),
                (Metric::FinetuningFamilies, vec![finetuned]),
            ] {
                kept.entry((c.name, metric)).or_default().push(values);
            }
        }
        let mut metrics = BTreeMap::new();
        for &metric in Metric::VARIANTS {
            let per_seed: Vec<f64> =
                kept[&(c.name, metric)].iter().map(|x| mean(x)).collect();
            let spread =
                Spread::of(&per_seed, if metric.lower_is_better() { 4 } else { 2 });
            metrics.insert(metric.name(), spread);
        }
        let zero_shot = &kept[&(c.name, Metric::ZeroShot)];
        let chance_level = vec![vec![chance.zero_shot]; zero_shot.len()];
        contenders.push(ContenderResult {
            contender: *c,
            parameters: cost.parameters,
            forward_flops_per_token: flops_per_token,
            curve: mean_curve(&curves),
            metrics,
            zero_shot_vs_chance: paired(
                (c.name, "chance"),
                "zero_shot",
                zero_shot,
                &chance_level,
            ),
        });
    }
    let matchups = MATCHUPS
        .iter()
        .map(|m| {
            let differences = Metric::VARIANTS
                .iter()
                .map(|&metric| {
                    let (a, b) = (&kept[&(m.a, metric)], &kept[&(m.b, metric)]);
                    (metric.name(), paired((m.a, m.b), metric.name(), a, b))
                })
                .collect();
            MatchupResult { matchup: *m, differences }
        })
        .collect();
    let (su, t_su) = su_experiment(&data, s)?;
    Ok(Report {
        settings: s.clone(),
        data: data.stats(s),
        costs,
        chance,
        contenders,
        matchups,
        su,
        timings: Timings {
            pretraining_seconds: round_dp(t_pre, 1),
            finetuning_seconds: round_dp(t_ft, 1),
            su_seconds: round_dp(t_su, 1),
            total_seconds: round_dp(start.elapsed().as_secs_f64(), 1),
        },
    })
}
