//! Outputs: results.json, the tables and the figures.

use std::collections::BTreeMap;

use transformer::chapter::{Outputs, Table};
use transformer::corpus::TaskFamily;
use transformer::io::thousands;
use transformer::plot::{Architecture, Group, IntervalChart, LineChart, Series};

use crate::*;

/// One row of Wang et al. (2022)'s Tables 3 and 8 (facts.md §2.3): a cell, its
/// average accuracy (%) on EAI-Eval and T0-Eval after 168B tokens of pretraining,
/// and after 13B more of multitask finetuning. `None`: the paper reports no 168B
/// number for MLM-only models ("not suitable for direct use").
pub struct PaperRow {
    pub cell: &'static str,
    pub pretrained: Option<(f64, f64)>,
    pub finetuned: (f64, f64),
}

pub const PAPER: [PaperRow; 6] = [
    PaperRow {
        cell: "CD:FLM",
        pretrained: Some((44.2, 42.4)),
        finetuned: (50.4, 51.4),
    },
    PaperRow {
        cell: "ND:PLM",
        pretrained: Some((43.5, 41.8)),
        finetuned: (48.9, 54.0),
    },
    PaperRow {
        cell: "ED:PLM",
        pretrained: Some((39.9, 41.7)),
        finetuned: (44.2, 45.8),
    },
    PaperRow { cell: "CD:MLM", pretrained: None, finetuned: (47.1, 50.3) },
    PaperRow { cell: "ND:MLM", pretrained: None, finetuned: (51.0, 55.2) },
    PaperRow { cell: "ED:MLM", pretrained: None, finetuned: (51.3, 60.6) },
];

fn costs_table(r: &Report) -> String {
    let mut t =
        Table::new(&["Cell", "Layers", "Parameters", "Forward FLOPs per token"])
            .right_from(1);
    for c in &r.costs {
        t.row([
            c.cell.clone(),
            c.layers.clone(),
            thousands(c.parameters as u64),
            thousands(c.forward_flops_per_token),
        ]);
    }
    t.markdown()
}

/// Our held-out accuracy (scene suite, summed score) beside the paper's averages,
/// laid out like its Tables 3 and 8.
fn zero_shot_table(r: &Report) -> String {
    let mut t = Table::new(&[
        "Cell",
        "Ours, pretrained",
        "Paper EAI / T0",
        "Ours, finetuned",
        "Paper EAI / T0",
    ])
    .right_from(1);
    for (c, p) in r.cells.iter().zip(PAPER) {
        debug_assert_eq!(c.cell, p.cell);
        let pre = p.pretrained.map_or("not reported".to_string(), |(e, t0)| {
            format!("{e:.1} / {t0:.1}")
        });
        let (e, t0) = p.finetuned;
        t.row([
            c.cell.clone(),
            c.scene.pretrained.show(),
            pre,
            c.scene.finetuned.show(),
            format!("{e:.1} / {t0:.1}"),
        ]);
    }
    let chance = format!("{:.1}", r.chance_scene.held_out);
    t.row([
        "Chance".to_string(),
        chance.clone(),
        "32.9 / 41.7".into(),
        chance,
        "32.9 / 41.7".into(),
    ]);
    t.markdown()
}

/// The other two scores on the held-out families, and the finetuning families
/// themselves.
fn scores_table(r: &Report, scene: bool) -> String {
    let (chance, training_chance) = if scene {
        (r.chance_scene.held_out, r.chance_scene.training_families)
    } else {
        (r.chance_kind.held_out, r.chance_kind.training_families)
    };
    let mut t = Table::new(&[
        "Cell",
        "Pre, per byte",
        "Pre, calibrated",
        "MTF, per byte",
        "MTF, calibrated",
        "MTF, own families",
    ])
    .right_from(1);
    for c in &r.cells {
        let x = if scene { &c.scene } else { &c.kind };
        t.row([
            c.cell.clone(),
            x.pretrained_per_byte.show(),
            x.pretrained_calibrated.show(),
            x.finetuned_per_byte.show(),
            x.finetuned_calibrated.show(),
            x.finetuned_training_families.show(),
        ]);
    }
    let c = format!("{chance:.1}");
    t.row([
        "Chance".to_string(),
        c.clone(),
        c.clone(),
        c.clone(),
        c,
        format!("{training_chance:.1}"),
    ]);
    t.markdown()
}

fn verdict_of(c: &Comparison) -> String {
    if c.within_noise {
        "within noise".to_string()
    } else if c.mean > 0.0 {
        format!("{} ahead", c.a)
    } else {
        format!("{} ahead", c.b)
    }
}

fn comparison_table(cs: &[Comparison]) -> String {
    let mut t = Table::new(&[
        "Comparison",
        "Score",
        "Per seed",
        "Mean",
        "95% interval",
        "Reading",
    ])
    .right(2..=4);
    for c in cs {
        let per_seed: Vec<String> =
            c.per_seed.iter().map(|x| format!("{x:+.1}")).collect();
        t.row([
            format!("{} − {}", c.a, c.b),
            c.score.clone(),
            per_seed.join(", "),
            format!("{:+.1}", c.mean),
            format!("[{:+.1}, {:+.1}]", c.ci_low, c.ci_high),
            verdict_of(c),
        ]);
    }
    t.markdown()
}

/// Every cell's lead over chance (percentage points and 95% interval), one column
/// per score.
fn chance_table(r: &Report, suite: &str) -> String {
    let mut t = Table::new(&["Cell", "Phase", "Summed", "Per byte", "Calibrated"])
        .right_from(2);
    for phase in ["pretrained", "finetuned"] {
        for cell in Cell::ALL {
            let mut row = vec![cell.name(), phase.to_string()];
            for &score in Score::VARIANTS {
                let c = r
                    .chance_comparisons
                    .iter()
                    .find(|x| {
                        x.phase == phase
                            && x.suite == suite
                            && x.comparison.a == cell.name()
                            && x.comparison.score == score.name()
                    })
                    .map(|x| &x.comparison)
                    .expect("every comparison is computed");
                let mark = if c.within_noise {
                    ""
                } else if c.mean > 0.0 {
                    " ▲"
                } else {
                    " ▼"
                };
                row.push(format!(
                    "{:+.1} [{:+.1}, {:+.1}]{mark}",
                    c.mean, c.ci_low, c.ci_high
                ));
            }
            t.row(row);
        }
    }
    t.markdown()
}

fn adaptation_table(r: &Report) -> String {
    let mut t = Table::new(&[
        "Recipe",
        "Tokens before finetuning",
        "Held-out, finetuned",
        "per byte",
    ])
    .right_from(1);
    for x in &r.adaptation.recipes {
        t.row([
            x.name.clone(),
            thousands(x.tokens_seen as u64),
            x.finetuned.show(),
            x.finetuned_per_byte.show(),
        ]);
    }
    t.markdown()
}

/// The colour an architecture takes in every figure of the book.
pub fn architecture(arch: Arch) -> Architecture {
    match arch {
        Arch::Causal => Architecture::CausalDecoder,
        Arch::NonCausal => Architecture::NonCausalDecoder,
        Arch::EncDec => Architecture::EncoderDecoder,
    }
}

/// The group of the cell called `name` ("CD:FLM"): in its architecture's colour,
/// with open markers for the span-corruption cells so that the two cells of one
/// architecture stay apart.
fn cell_group(name: &str, values: Vec<(f64, f64, f64)>) -> Group {
    let group = Group::new(name, values);
    match Cell::ALL.into_iter().find(|c| c.name() == name) {
        Some(c) => group
            .architecture(architecture(c.arch))
            .hollow(c.objective == Objective::SpanMlm),
        None => group,
    }
}

/// One group per cell, its `values` over `categories` (mean, min and max over
/// seeds, as accuracies in %), against the chance `levels`.
fn cells_chart(
    r: &Report,
    categories: &[String],
    values: impl Fn(&CellResult) -> Vec<(f64, f64, f64)>,
    levels: &[f64],
    y_label: &str,
    y_max: f64,
) -> anyhow::Result<String> {
    let groups: Vec<Group> =
        r.cells.iter().map(|c| cell_group(&c.cell, values(c))).collect();
    IntervalChart {
        title: "",
        categories,
        groups: &groups,
        y_label,
        reference: Some((levels, "chance (a uniformly random pick)")),
        y_range: (0.0, y_max),
        y_decimals: 0,
    }
    .to_svg()
}

/// Accuracy per family, mean and range over seeds, one group per cell, chance
/// marked.
fn family_chart(
    r: &Report,
    families: &[TaskFamily],
    pick: impl Fn(&CellResult) -> &BTreeMap<TaskFamily, Spread>,
    chance: &Chance,
) -> anyhow::Result<String> {
    let categories: Vec<String> =
        families.iter().map(|f| f.name().to_string()).collect();
    let values = |c: &CellResult| {
        let by = pick(c);
        families.iter().map(|f| (by[f].mean, by[f].min, by[f].max)).collect()
    };
    let levels: Vec<f64> = families.iter().map(|f| chance.per_family[f]).collect();
    cells_chart(
        r,
        &categories,
        values,
        &levels,
        "accuracy (%), mean and range over seeds",
        105.0,
    )
}

/// Held-out accuracy on the scene suite at each evaluation of pretraining: mean and
/// range over seeds, one group per cell, chance dashed.
fn curve_chart(r: &Report) -> anyhow::Result<String> {
    let points = &r.cells[0].seeds[0].pretraining;
    let categories: Vec<String> = points
        .iter()
        .map(|p| format!("{}k tokens", (p.tokens_seen as f64 / 1000.0).round()))
        .collect();
    let values = |c: &CellResult| {
        (0..points.len())
            .map(|i| {
                let s = Spread::of(
                    &c.seeds
                        .iter()
                        .map(|s| s.pretraining[i].summary.scene.held_out)
                        .collect::<Vec<_>>(),
                    2,
                );
                (s.mean, s.min, s.max)
            })
            .collect()
    };
    let chance = vec![r.chance_scene.held_out; points.len()];
    cells_chart(
        r,
        &categories,
        values,
        &chance,
        "held-out accuracy (%), mean and range over seeds",
        100.0,
    )
}

/// Span-corruption training loss of non-causal MLM adaptation and of ND:MLM from
/// scratch, step by step, mean over seeds.
fn adaptation_chart(r: &Report) -> anyhow::Result<String> {
    let a = &r.adaptation;
    let steps = |curve: &[f64]| -> Vec<(f64, f64)> {
        curve.iter().enumerate().map(|(i, &y)| ((i + 1) as f64, y)).collect()
    };
    // The adapted model in the colour of the causal decoder it started as.
    let series = [
        Series::new(
            "CD:FLM + ND:MLM adaptation (steps after pretraining)",
            steps(&a.adapted_curve),
        )
        .architecture(Architecture::CausalDecoder),
        Series::new("ND:MLM from scratch", steps(&a.scratch_curve))
            .architecture(Architecture::NonCausalDecoder),
    ];
    LineChart {
        title: "",
        x_label: "training step with span corruption",
        y_label: "training loss (nats), mean over seeds",
        log_x: false,
        log_y: false,
        series: &series,
    }
    .to_svg()
}

pub fn outputs(r: &Report) -> anyhow::Result<Outputs> {
    let mut out = Outputs::new(r)?;
    out.timings(&r.timings)?;
    out.file("costs.md", costs_table(r))?;
    out.file("zero_shot.md", zero_shot_table(r))?;
    out.file("kind_scores.md", scores_table(r, false))?;
    out.file("scene_scores.md", scores_table(r, true))?;
    out.file(
        "pretrained_comparisons.md",
        comparison_table(&r.pretrained_comparisons),
    )?;
    out.file(
        "finetuned_comparisons.md",
        comparison_table(&r.finetuned_comparisons),
    )?;
    out.file(
        "adaptation_comparisons.md",
        comparison_table(&r.adaptation_comparisons),
    )?;
    out.file("kind_vs_chance.md", chance_table(r, "kind"))?;
    out.file("scene_vs_chance.md", chance_table(r, "scene"))?;
    out.file("adaptation.md", adaptation_table(r))?;
    let held = TaskFamily::held_out();
    out.file(
        "per_family_pretrained.svg",
        family_chart(
            r,
            &held,
            |c| &c.scene.per_family_pretrained,
            &r.chance_scene,
        )?,
    )?;
    out.file(
        "per_family_finetuned.svg",
        family_chart(r, &held, |c| &c.scene.per_family_finetuned, &r.chance_scene)?,
    )?;
    let own = TaskFamily::training();
    out.file(
        "finetuning_families.svg",
        family_chart(r, &own, |c| &c.kind.per_family_finetuned, &r.chance_kind)?,
    )?;
    out.file("accuracy_vs_tokens.svg", curve_chart(r)?)?;
    out.file("adaptation_loss.svg", adaptation_chart(r)?)?;
    for c in &r.cells {
        out.headline(format!(
            "{}: held-out {} after pretraining, {} after finetuning (chance {:.1})",
            c.cell,
            c.kind.pretrained.show(),
            c.kind.finetuned.show(),
            r.chance_kind.held_out
        ));
    }
    let claims = crate::claims::claims(r);
    out.file("in_short.md", crate::claims::in_short(r, &claims))?;
    out.claims(claims);
    out.open_first("finetuning_families.svg");
    Ok(out)
}
