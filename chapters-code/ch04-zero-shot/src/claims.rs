//! What the page says about the runs, computed from them; the book's build fails on
//! a claim that does not hold. `in_short` writes the page's opening summary from
//! the same claims.

use transformer::chapter::Claims;
use transformer::corpus::TaskFamily;
use transformer::io::thousands;

use crate::*;
use transformer::{Named, VariantArray};

fn chance_rows<'a>(
    r: &'a Report,
    phase: &'a str,
    suite: &'a str,
    score: Score,
) -> impl Iterator<Item = &'a Comparison> {
    r.chance_comparisons
        .iter()
        .filter(move |c| {
            c.phase == phase
                && c.suite == suite
                && c.comparison.score == score.name()
        })
        .map(|c| &c.comparison)
}

fn above(c: &Comparison) -> bool {
    !c.within_noise && c.mean > 0.0
}

fn list(names: &[String]) -> String {
    match names {
        [] => "none".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

pub fn claims(r: &Report) -> Claims {
    let mut c = Claims::new();
    let l = &r.leakage;
    c.add(
        "no_leakage",
        l.pretraining_rows_with_prompts == 0 && l.finetuning_examples_held_out == 0,
        format!(
            "None of the {} rows of pretraining and adaptation text contains a prompt marker, and none of the {} \
             finetuning examples belongs to a held-out family or asks a held-out question",
            thousands(l.pretraining_rows_scanned as u64),
            thousands(l.finetuning_examples_scanned as u64)
        ),
    );

    // The summed score on the kind suite: every model gives every held-out question
    // one kind of answer.
    let held = TaskFamily::held_out();
    let mut constant = true;
    let mut favourite = std::collections::BTreeSet::new();
    for cell in &r.cells {
        for by in
            [&cell.kind.per_family_pretrained, &cell.kind.per_family_finetuned]
        {
            for f in &held {
                let s = by[f];
                constant &= s.min == s.max && (s.mean == 0.0 || s.mean == 100.0);
                if s.mean == 100.0 {
                    favourite.insert(f.name());
                }
            }
        }
    }
    constant &= favourite.len() == 1;
    let fav = favourite.iter().next().copied().unwrap_or("none");
    c.add(
        "summed_kind_is_one_answer",
        constant,
        format!(
            "Under the summed score, every cell in every seed, before and after finetuning, answers every held-out \
             question of the kind suite with the same kind of answer: the one `{fav}` asks for, so `{fav}` scores \
             100% and the other two held-out families 0%"
        ),
    );

    // The real task, the scene suite: who is above chance, under each score.
    for (phase, name) in [
        ("pretrained", "scene_pretrained_above_chance"),
        ("finetuned", "scene_finetuned_above_chance"),
    ] {
        let mut parts = Vec::new();
        let (mut summed_none, mut total) = (true, 0);
        for &score in Score::VARIANTS {
            let rows: Vec<&Comparison> =
                chance_rows(r, phase, "scene", score).collect();
            total += rows.len();
            let ups: Vec<String> = rows
                .iter()
                .filter(|x| above(x))
                .map(|x| {
                    format!(
                        "{} ({:+.1} points, interval [{:+.1}, {:+.1}])",
                        x.a, x.mean, x.ci_low, x.ci_high
                    )
                })
                .collect();
            if score == Score::Summed {
                summed_none = ups.is_empty();
            }
            if !ups.is_empty() {
                parts.push(format!(
                    "under the {} score, {}",
                    score.name(),
                    list(&ups)
                ));
            }
        }
        let when = if phase == "pretrained" {
            "after pretraining"
        } else {
            "after finetuning"
        };
        let text = if parts.is_empty() {
            format!(
                "On the scene suite's held-out families {when}, no cell is above chance under any of the three \
                 scores: all {total} intervals reach down to chance or below"
            )
        } else {
            format!(
                "On the scene suite's held-out families {when}, no cell is above chance under the summed score; \
                 the only intervals above chance are {}",
                parts.join("; ")
            )
        };
        c.add(name, summed_none, text);
    }

    // Finetuning teaches its own families to the LM-pretrained decoders only.
    let own = |name: &str| {
        &r.cells
            .iter()
            .find(|x| x.cell == name)
            .expect("cell")
            .kind
            .finetuned_training_families
    };
    let lm = ["CD:FLM", "ND:PLM"];
    let rest: Vec<&CellResult> =
        r.cells.iter().filter(|x| !lm.contains(&x.cell.as_str())).collect();
    let lm_min = lm.iter().map(|n| own(n).min).fold(f64::INFINITY, f64::min);
    let rest_max = rest
        .iter()
        .map(|x| x.kind.finetuned_training_families.max)
        .fold(0.0, f64::max);
    c.add(
        "lm_decoders_learn_the_finetuning_families",
        lm_min >= 95.0 && rest_max <= 60.0,
        format!(
            "Within {} finetuning steps, the two decoders pretrained as language models answer the finetuning families' \
             kind-suite questions with the right kind of answer (CD:FLM {}, ND:PLM {}; at least {:.1}% in every \
             seed), while the four other cells reach at most {:.1}% in any seed (averaged over the five families), against {:.1}% for chance",
            r.settings.mtf_steps,
            own("CD:FLM").show(),
            own("ND:PLM").show(),
            lm_min,
            rest_max,
            r.chance_kind.training_families
        ),
    );

    // The 100% above is about the kind of answer only: on the scene suite the same
    // families stay near chance.
    let gap = r
        .cells
        .iter()
        .map(|x| {
            (x.scene.finetuned_training_families.mean
                - r.chance_scene.training_families)
                .abs()
        })
        .fold(0.0, f64::max);
    c.add(
        "finetuning_families_scene_near_chance",
        gap < 5.0,
        format!(
            "On the scene suite, where the options are all of the right kind, every cell's mean accuracy on the \
             finetuning families after finetuning is within {gap:.1} points of chance ({:.1}%)",
            r.chance_scene.training_families
        ),
    );

    // CD:FLM after pretraining, ED:MLM after finetuning: can the data separate them
    // from the rest?
    let separated =
        |cs: &[Comparison]| cs.iter().filter(|x| !x.within_noise).count();
    let zeros = |cs: &[Comparison]| {
        cs.iter()
            .filter(|x| x.ci_low.abs() < TOLERANCE && x.ci_high.abs() < TOLERANCE)
            .count()
    };
    let pre_sep = separated(&r.pretrained_comparisons);
    c.add(
        "cd_flm_not_separable_after_pretraining",
        pre_sep == 0,
        format!(
            "After pretraining, none of the {} comparisons of CD:FLM with another cell on the kind suite's held-out \
             families (five cells, three scores) has a 95% interval that excludes zero; {} of them are exactly zero, \
             because under the summed score every cell answers alike",
            r.pretrained_comparisons.len(),
            zeros(&r.pretrained_comparisons)
        ),
    );
    let ft_ahead = r.finetuned_comparisons.iter().filter(|x| above(x)).count();
    c.add(
        "ed_mlm_not_ahead_after_finetuning",
        ft_ahead == 0,
        format!(
            "After finetuning, ED:MLM is ahead of another cell in none of the {} comparisons on the kind suite's \
             held-out families ({} of them exactly zero)",
            r.finetuned_comparisons.len(),
            zeros(&r.finetuned_comparisons)
        ),
    );

    // Phase 3.
    let a = &r.adaptation;
    let reached_final = a.adapted_mlm_loss <= a.scratch_mlm_loss;
    match a.scratch_steps_to_match {
        Some(n) => c.add(
            "adaptation_reaches_the_mlm_loss_faster",
            n > a.adapt_steps,
            format!(
                "After {} steps of non-causal MLM adaptation, the pretrained CD:FLM's span-corruption loss is {:.3} \
                 (mean over seeds of the last tenth of its steps); ND:MLM trained from scratch needs {n} steps to get \
                 there, {:.1} times as many, and ends its {} steps at {:.3}, {} the adapted model",
                a.adapt_steps,
                a.adapted_mlm_loss,
                n as f64 / a.adapt_steps as f64,
                r.settings.pretrain_steps,
                a.scratch_mlm_loss,
                if reached_final { "above" } else { "below" }
            ),
        ),
        None => c.add(
            "adaptation_reaches_the_mlm_loss_faster",
            a.adapted_mlm_loss < a.scratch_mlm_loss,
            format!(
                "After {} steps of non-causal MLM adaptation, the pretrained CD:FLM's span-corruption loss ({:.3}) is \
                 lower than ND:MLM from scratch reaches in its whole run ({:.3})",
                a.adapt_steps, a.adapted_mlm_loss, a.scratch_mlm_loss
            ),
        ),
    };
    let adapt_sep = separated(&r.adaptation_comparisons);
    c.add(
        "adaptation_gains_nothing_held_out",
        adapt_sep == 0,
        format!(
            "After finetuning, none of the {} comparisons of the adapted model with its controls (more CD:FLM, ND:MLM \
             from scratch, CD:FLM alone) on the kind suite's held-out families excludes zero",
            r.adaptation_comparisons.len()
        ),
    );
    c
}

/// The page's opening summary, written from the claims.
pub fn in_short(r: &Report, c: &Claims) -> String {
    let text = |name: &str| c.get(name).map_or(String::new(), |x| x.text.clone());
    let cap = |s: String| {
        let mut ch = s.chars();
        ch.next().map_or(String::new(), |f| {
            f.to_uppercase().collect::<String>() + ch.as_str()
        })
    };
    format!(
        "- **The article's claim holds in a regime**: the paper found the causal decoder best only before \
         multitask finetuning, by under a point; the [verdict](#verdict) says why.\n\
         - **The real task is out of reach at this scale.** {}. {}.\n\
         - **The models answer by habit.** {}.\n\
         - **What does separate the cells is learning the prompted format.** {}. {}.\n\
         - **Adaptation carries what pretraining learned, but not to the held-out tasks.** {}. {}.\n\
         - **So the ranking rests on the paper.** Our {} tiny models, trained on {} tokens each, cannot reproduce \
         either of its findings.\n",
        cap(text("scene_pretrained_above_chance")),
        cap(text("scene_finetuned_above_chance")),
        cap(text("summed_kind_is_one_answer")),
        cap(text("lm_decoders_learn_the_finetuning_families")),
        cap(text("finetuning_families_scene_near_chance")),
        cap(text("adaptation_reaches_the_mlm_loss_faster")),
        text("adaptation_gains_nothing_held_out"),
        r.cells.len() * r.settings.seeds,
        thousands(r.data.pretraining_tokens as u64),
    )
}
