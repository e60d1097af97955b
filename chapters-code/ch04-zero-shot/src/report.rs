//! The whole experiment: data, the six cells over every seed through the three
//! phases, and the comparisons the page draws from them.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use transformer::chapter::round_dp;
use transformer::corpus::TaskFamily;

use crate::*;
use transformer::{Named, VariantArray};

/// One seed of one cell.
#[derive(Debug, Clone, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    /// Evaluations during pretraining (the last is the pretrained model).
    pub pretraining: Vec<Point>,
    /// After multitask finetuning.
    pub finetuned: Summary,
    /// Mean training loss over the last tenth of pretraining (each cell on its own
    /// objective).
    pub final_pretraining_loss: f64,
}

/// Accuracy (%) over seeds of one cell on one suite.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteSpread {
    /// Held-out families after pretraining, summed and per-byte scores.
    pub pretrained: Spread,
    pub pretrained_per_byte: Spread,
    pub pretrained_calibrated: Spread,
    /// Held-out families after multitask finetuning.
    pub finetuned: Spread,
    pub finetuned_per_byte: Spread,
    pub finetuned_calibrated: Spread,
    /// The finetuning families themselves (new instances), after finetuning.
    pub finetuned_training_families: Spread,
    /// Every family after pretraining and after finetuning (summed scores).
    pub per_family_pretrained: BTreeMap<TaskFamily, Spread>,
    pub per_family_finetuned: BTreeMap<TaskFamily, Spread>,
}

/// One cell over every seed.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    pub cell: String,
    pub seeds: Vec<SeedResult>,
    pub kind: SuiteSpread,
    pub scene: SuiteSpread,
}

/// One recipe of phase 3 (or its comparison points from phases 1 and 2).
#[derive(Debug, Clone, Serialize)]
pub struct Recipe {
    /// A short key (`nc_adaptation`).
    pub key: String,
    pub name: String,
    /// Tokens of pretraining text seen before finetuning (pretraining plus
    /// adaptation).
    pub tokens_seen: usize,
    /// Held-out accuracy (%) on the kind suite after finetuning.
    pub finetuned: Spread,
    pub finetuned_per_byte: Spread,
}

/// Phase 3: the paper's adaptation against its controls.
#[derive(Debug, Clone, Serialize)]
pub struct Adaptation {
    pub recipes: Vec<Recipe>,
    /// Mean span-corruption training loss over the last tenth of adaptation,
    /// averaged over seeds, and the same for ND:MLM trained from scratch over the
    /// last tenth of its run.
    pub adapted_mlm_loss: f64,
    pub scratch_mlm_loss: f64,
    /// The step at which ND:MLM from scratch (a 10-step moving mean, averaged over
    /// seeds) first reaches the adapted model's final loss; `None` if it never
    /// does.
    pub scratch_steps_to_match: Option<usize>,
    pub adapt_steps: usize,
    /// Per seed: the adapted model's final loss and the from-scratch model's final
    /// loss.
    pub adapted_mlm_loss_per_seed: Vec<f64>,
    pub scratch_mlm_loss_per_seed: Vec<f64>,
    /// Mean over seeds of each step's training loss (span corruption), for the
    /// figure: the adaptation run and ND:MLM from scratch.
    pub adapted_curve: Vec<f64>,
    pub scratch_curve: Vec<f64>,
}

/// One cell against chance on the held-out families.
#[derive(Debug, Clone, Serialize)]
pub struct ChanceComparison {
    pub phase: String,
    pub suite: String,
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// Wall-clock seconds of the phases on the machine that ran them.
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    /// Of all the phases' seconds, those spent evaluating.
    pub evaluation_seconds: f64,
    pub pretraining_seconds: f64,
    pub finetuning_seconds: f64,
    pub adaptation_seconds: f64,
    pub total_seconds: f64,
}

/// The expected accuracy (%) of a uniformly random pick.
#[derive(Debug, Clone, Serialize)]
pub struct Chance {
    pub per_family: BTreeMap<TaskFamily, f64>,
    pub held_out: f64,
    pub training_families: f64,
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub data: DataStats,
    pub costs: Vec<CellCost>,
    pub leakage: Leakage,
    pub chance_kind: Chance,
    pub chance_scene: Chance,
    pub cells: Vec<CellResult>,
    pub adaptation: Adaptation,
    /// Kind suite, held-out families, each score: CD:FLM against every other cell
    /// after pretraining.
    pub pretrained_comparisons: Vec<Comparison>,
    /// The same after finetuning, for ED:MLM against every other cell.
    pub finetuned_comparisons: Vec<Comparison>,
    /// Kind suite after finetuning: non-causal MLM adaptation against its controls.
    pub adaptation_comparisons: Vec<Comparison>,
    /// Every cell against chance, for both phases, both suites and every score.
    pub chance_comparisons: Vec<ChanceComparison>,
    #[serde(skip)]
    pub timings: Timings,
}

/// Every evaluation kept for the bootstrap, by (phase, recipe), one per seed.
type Kept = BTreeMap<(&'static str, String), Vec<Evaluations>>;

fn spread(xs: impl Iterator<Item = f64>) -> Spread {
    Spread::of(&xs.collect::<Vec<_>>(), 2)
}

fn mean_tail(xs: &[f64], frac: f64) -> f64 {
    let k = ((xs.len() as f64 * frac).ceil() as usize).clamp(1, xs.len());
    xs[xs.len() - k..].iter().sum::<f64>() / k as f64
}

/// The mean of the families' chance levels, unrounded (for the comparisons).
fn chance_of(items: &[EvalItem], fs: &[TaskFamily]) -> f64 {
    let per_family = random_baselines(items);
    fs.iter().map(|f| per_family[f]).sum::<f64>() / fs.len() as f64
}

fn chance(items: &[EvalItem]) -> Chance {
    let per_family = random_baselines(items);
    let mean = |fs: &[TaskFamily]| round_dp(chance_of(items, fs), 2);
    Chance {
        held_out: mean(&TaskFamily::held_out()),
        training_families: mean(&TaskFamily::training()),
        per_family: per_family
            .into_iter()
            .map(|(f, x)| (f, round_dp(x, 2)))
            .collect(),
    }
}

fn suite_spread(
    seeds: &[SeedResult],
    pre: &[Evaluation],
    ft: &[Evaluation],
    items: &[EvalItem],
    pick: impl Fn(&Summary) -> &SuiteSummary,
) -> SuiteSpread {
    let last = |r: &SeedResult| {
        pick(&r.pretraining.last().expect("evaluated").summary).clone()
    };
    let per_family = |es: &[Evaluation]| -> BTreeMap<TaskFamily, Spread> {
        let accs: Vec<BTreeMap<TaskFamily, f64>> =
            es.iter().map(|e| family_accuracy(e, items, Score::Summed)).collect();
        TaskFamily::VARIANTS
            .iter()
            .map(|&f| (f, spread(accs.iter().map(|a| a[&f]))))
            .collect()
    };
    SuiteSpread {
        pretrained: spread(seeds.iter().map(|r| last(r).held_out)),
        pretrained_per_byte: spread(
            seeds.iter().map(|r| last(r).held_out_per_byte),
        ),
        pretrained_calibrated: spread(
            seeds.iter().map(|r| last(r).held_out_calibrated),
        ),
        finetuned: spread(seeds.iter().map(|r| pick(&r.finetuned).held_out)),
        finetuned_per_byte: spread(
            seeds.iter().map(|r| pick(&r.finetuned).held_out_per_byte),
        ),
        finetuned_calibrated: spread(
            seeds.iter().map(|r| pick(&r.finetuned).held_out_calibrated),
        ),
        finetuned_training_families: spread(
            seeds.iter().map(|r| pick(&r.finetuned).training_families),
        ),
        per_family_pretrained: per_family(pre),
        per_family_finetuned: per_family(ft),
    }
}

/// Run the experiment.
pub fn compute(
    s: &Settings,
    checkpoints: &std::path::Path,
) -> anyhow::Result<Report> {
    let start = Instant::now();
    let data = data::build(s)?;
    let leakage = scan_for_leakage(&data, s)?;
    let costs = costs(
        &s.model_config(data.tok.vocab_size()),
        &data.rows[..s.batch],
        &data.tok.specials,
    )?;
    let mut kept: Kept = BTreeMap::new();
    let mut cells: Vec<CellResult> = Vec::new();
    let (mut t_pre, mut t_mtf, mut t_adapt, mut t_eval) = (0.0, 0.0, 0.0, 0.0);
    let mut scratch_losses: Vec<Vec<f64>> = Vec::new();
    let cd_flm = Cell::new(Arch::Causal, Objective::FullLm);
    let nd_mlm = Cell::new(Arch::NonCausal, Objective::SpanMlm);
    let ed_mlm = Cell::new(Arch::EncDec, Objective::SpanMlm);
    for cell in Cell::ALL {
        let mut seeds = Vec::new();
        for seed in 0..s.seeds as u64 {
            let pre = pretrain(&data, s, cell, seed)?;
            t_pre += pre.seconds;
            t_eval += pre.eval_seconds;
            pre.store.save(&checkpoint_path(checkpoints, cell, seed))?;
            if cell == nd_mlm {
                scratch_losses.push(pre.losses.clone());
            }
            let points = pre.points.clone();
            let final_loss = round_dp(mean_tail(&pre.losses, 0.1), 3);
            kept.entry(("pretrained", cell.name()))
                .or_default()
                .push(pre.last.clone());
            let ft = finetune(&data, s, pre, cell.arch, seed)?;
            t_mtf += ft.seconds;
            t_eval += ft.eval_seconds;
            let finetuned = summarise(&ft.last, &data.eval);
            kept.entry(("finetuned", cell.name())).or_default().push(ft.last);
            let p = &points.last().expect("evaluated").summary;
            eprintln!(
                "ch04: {} seed {seed}: held-out {:.1}% (kind) / {:.1}% (scene) pretrained, {:.1}% / {:.1}% finetuned; \
                 calibrated {:.1} / {:.1}, {:.1} / {:.1} [{t_pre:.0} s pretraining, {t_mtf:.0} s finetuning, \
                 {t_eval:.0} s of it evaluating]",
                cell.name(),
                p.kind.held_out,
                p.scene.held_out,
                finetuned.kind.held_out,
                finetuned.scene.held_out,
                p.kind.held_out_calibrated,
                p.scene.held_out_calibrated,
                finetuned.kind.held_out_calibrated,
                finetuned.scene.held_out_calibrated,
            );
            seeds.push(SeedResult {
                seed,
                pretraining: points,
                finetuned,
                final_pretraining_loss: final_loss,
            });
        }
        let pre = &kept[&("pretrained", cell.name())];
        let ft = &kept[&("finetuned", cell.name())];
        let kinds = |es: &[Evaluations]| {
            es.iter().map(|e| e.kind.clone()).collect::<Vec<_>>()
        };
        let scenes = |es: &[Evaluations]| {
            es.iter().map(|e| e.scene.clone()).collect::<Vec<_>>()
        };
        cells.push(CellResult {
            cell: cell.name(),
            kind: suite_spread(
                &seeds,
                &kinds(pre),
                &kinds(ft),
                &data.eval.kind,
                |x| &x.kind,
            ),
            scene: suite_spread(
                &seeds,
                &scenes(pre),
                &scenes(ft),
                &data.eval.scene,
                |x| &x.scene,
            ),
            seeds,
        });
    }

    // Phase 3, from each seed's pretrained CD:FLM.
    let mut adapt_losses: Vec<Vec<f64>> = Vec::new();
    let mut summaries: BTreeMap<&str, Vec<Summary>> = BTreeMap::new();
    for seed in 0..s.seeds as u64 {
        let from = checkpoint_path(checkpoints, cd_flm, seed);
        for (name, cell) in [("nc_adaptation", nd_mlm), ("flm_control", cd_flm)] {
            let adapted = adapt(&data, s, &from, cell, seed)?;
            t_adapt += adapted.seconds;
            t_eval += adapted.eval_seconds;
            if name == "nc_adaptation" {
                adapt_losses.push(adapted.losses.clone());
            }
            let ft = finetune(&data, s, adapted, cell.arch, seed)?;
            t_mtf += ft.seconds;
            t_eval += ft.eval_seconds;
            summaries
                .entry(name)
                .or_default()
                .push(summarise(&ft.last, &data.eval));
            kept.entry(("finetuned", name.to_string())).or_default().push(ft.last);
        }
    }
    let finetuned_of = |c: Cell| -> Vec<Summary> {
        cells
            .iter()
            .find(|r| r.cell == c.name())
            .expect("every cell ran")
            .seeds
            .iter()
            .map(|r| r.finetuned.clone())
            .collect()
    };
    summaries.insert("cd_flm", finetuned_of(cd_flm));
    summaries.insert("nd_mlm", finetuned_of(nd_mlm));
    let pre_tokens = s.pretrain_steps * s.batch * s.row_len;
    let adapt_tokens = pre_tokens + s.adapt_steps * s.batch * s.row_len;
    let recipes = [
        ("cd_flm", "CD:FLM → CD:MTF", pre_tokens),
        ("flm_control", "CD:FLM + more CD:FLM → CD:MTF", adapt_tokens),
        ("nd_mlm", "ND:MLM from scratch → ND:MTF", pre_tokens),
        ("nc_adaptation", "CD:FLM + ND:MLM adaptation → ND:MTF", adapt_tokens),
    ]
    .into_iter()
    .map(|(key, name, tokens)| Recipe {
        key: key.to_string(),
        name: name.to_string(),
        tokens_seen: tokens,
        finetuned: spread(summaries[key].iter().map(|x| x.kind.held_out)),
        finetuned_per_byte: spread(
            summaries[key].iter().map(|x| x.kind.held_out_per_byte),
        ),
    })
    .collect();
    let mean_of_tails = |ls: &[Vec<f64>]| {
        ls.iter().map(|l| mean_tail(l, 0.1)).sum::<f64>() / ls.len() as f64
    };
    let adapted_mlm_loss = mean_of_tails(&adapt_losses);
    let scratch_mean: Vec<f64> = (0..s.pretrain_steps)
        .map(|i| {
            scratch_losses.iter().map(|l| l[i]).sum::<f64>()
                / scratch_losses.len() as f64
        })
        .collect();
    let scratch_steps_to_match = (10..=scratch_mean.len()).find(|&i| {
        scratch_mean[i - 10..i].iter().sum::<f64>() / 10.0 <= adapted_mlm_loss
    });
    let adaptation = Adaptation {
        recipes,
        adapted_mlm_loss: round_dp(adapted_mlm_loss, 3),
        scratch_mlm_loss: round_dp(mean_of_tails(&scratch_losses), 3),
        scratch_steps_to_match,
        adapt_steps: s.adapt_steps,
        adapted_mlm_loss_per_seed: adapt_losses
            .iter()
            .map(|l| round_dp(mean_tail(l, 0.1), 3))
            .collect(),
        scratch_mlm_loss_per_seed: scratch_losses
            .iter()
            .map(|l| round_dp(mean_tail(l, 0.1), 3))
            .collect(),
        adapted_curve: (0..s.adapt_steps)
            .map(|i| {
                round_dp(
                    adapt_losses.iter().map(|l| l[i]).sum::<f64>()
                        / adapt_losses.len() as f64,
                    3,
                )
            })
            .collect(),
        scratch_curve: scratch_mean.iter().map(|&x| round_dp(x, 3)).collect(),
    };

    // Paired comparisons on the held-out families, under each score.
    let (chance_kind, chance_scene) =
        (chance(&data.eval.kind), chance(&data.eval.scene));
    let held = TaskFamily::held_out();
    let hits =
        |phase: &'static str, name: &str, scene: bool, score: Score| -> Vec<Hits> {
            kept[&(phase, name.to_string())]
                .iter()
                .map(|e| {
                    let (ev, items) = if scene {
                        (&e.scene, &data.eval.scene)
                    } else {
                        (&e.kind, &data.eval.kind)
                    };
                    Hits::new(ev, items, &held, score)
                })
                .collect()
        };
    let reps = s.bootstrap;
    let lead_against =
        |phase: &'static str, lead: &str, others: &[String]| -> Vec<Comparison> {
            let mut out = Vec::new();
            for &score in Score::VARIANTS {
                let a = hits(phase, lead, false, score);
                for b in others {
                    out.push(compare(
                        lead,
                        &a,
                        Against::Cell(b, &hits(phase, b, false, score)),
                        score.name(),
                        reps,
                        SEED,
                    ));
                }
            }
            out
        };
    let names = |skip: Cell| -> Vec<String> {
        Cell::ALL.iter().filter(|&&c| c != skip).map(|c| c.name()).collect()
    };
    let pretrained_comparisons =
        lead_against("pretrained", &cd_flm.name(), &names(cd_flm));
    let finetuned_comparisons =
        lead_against("finetuned", &ed_mlm.name(), &names(ed_mlm));
    let mut adaptation_comparisons = lead_against(
        "finetuned",
        "nc_adaptation",
        &["flm_control".to_string(), nd_mlm.name(), cd_flm.name()],
    );
    // Shown with the recipes' names, as in the adaptation table.
    let label = |key: &str| match key {
        "nc_adaptation" => "CD:FLM + ND:MLM".to_string(),
        "flm_control" => "CD:FLM + CD:FLM".to_string(),
        other => other.to_string(),
    };
    for c in &mut adaptation_comparisons {
        c.a = label(&c.a);
        c.b = label(&c.b);
    }
    let mut chance_comparisons = Vec::new();
    for (phase, scene) in [
        ("pretrained", false),
        ("finetuned", false),
        ("pretrained", true),
        ("finetuned", true),
    ] {
        let items = if scene { &data.eval.scene } else { &data.eval.kind };
        let level = chance_of(items, &held);
        for cell in Cell::ALL {
            for &score in Score::VARIANTS {
                let h = hits(phase, &cell.name(), scene, score);
                chance_comparisons.push(ChanceComparison {
                    phase: phase.to_string(),
                    suite: if scene { "scene" } else { "kind" }.to_string(),
                    comparison: compare(
                        &cell.name(),
                        &h,
                        Against::Chance(level),
                        score.name(),
                        reps,
                        SEED,
                    ),
                });
            }
        }
    }
    Ok(Report {
        settings: s.clone(),
        data: data.stats(s),
        costs,
        leakage,
        chance_kind,
        chance_scene,
        cells,
        adaptation,
        pretrained_comparisons,
        finetuned_comparisons,
        adaptation_comparisons,
        chance_comparisons,
        timings: Timings {
            evaluation_seconds: t_eval,
            pretraining_seconds: t_pre,
            finetuning_seconds: t_mtf,
            adaptation_seconds: t_adapt,
            total_seconds: start.elapsed().as_secs_f64(),
        },
    })
}
