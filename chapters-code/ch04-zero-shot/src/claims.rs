//! What the page says about the runs, computed from them; the book's build fails on a claim
//! that does not hold. `in_short` writes the page's opening summary from the same claims.

use transformer::chapter::Claims;
use transformer::corpus::TaskFamily;
use transformer::io::thousands;

use crate::*;

fn chance_rows<'a>(
    r: &'a Report,
    phase: &'a str,
    suite: &'a str,
    score: Score,
) -> impl Iterator<Item = &'a Comparison> {
    r.chance_comparisons
        .iter()
        .filter(move |c| c.phase == phase && c.suite == suite && c.comparison.score == score.name())
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
            "none of the {} pretraining rows contains a prompt marker, and none of the {} finetuning examples \
             belongs to a held-out family or asks a held-out question",
            thousands(l.pretraining_rows_scanned as u64),
            thousands(l.finetuning_examples_scanned as u64)
        ),
    );

    // The summed score on the kind suite: every model gives every held-out question one kind of answer.
    let held = TaskFamily::held_out();
    let mut constant = true;
    let mut favourite = std::collections::BTreeSet::new();
    for cell in &r.cells {
        for by in [&cell.kind.per_family_pretrained, &cell.kind.per_family_finetuned] {
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
            "under the summed score, every cell in every seed, before and after finetuning, answers every held-out \
             question of the kind suite with the same kind of answer: the one `{fav}` asks for, so `{fav}` scores \
             100% and the other two held-out families 0%"
        ),
    );

    // The real task, the scene suite: who is above chance, under each score.
    for (phase, name) in
        [("pretrained", "scene_pretrained_above_chance"), ("finetuned", "scene_finetuned_above_chance")]
    {
        let mut parts = Vec::new();
        let mut summed_none = true;
        for score in Score::ALL {
            let ups: Vec<String> = chance_rows(r, phase, "scene", score)
                .filter(|x| above(x))
                .map(|x| {
                    format!("{} ({:+.1} points, interval [{:+.1}, {:+.1}])", x.a, x.mean, x.ci_low, x.ci_high)
                })
                .collect();
            if score == Score::Summed {
                summed_none = ups.is_empty();
            }
            parts.push(format!("{}: {}", score.name(), list(&ups)));
        }
        let when = if phase == "pretrained" { "after pretraining" } else { "after finetuning" };
        c.add(
            name,
            summed_none,
            format!(
                "on the scene suite's held-out families {when}, no cell is above chance under the summed score; the \
                 cells whose 95% interval lies above chance, by score, are {}",
                parts.join("; ")
            ),
        );
    }

    // Finetuning teaches its own families to the LM-pretrained decoders only.
    let own =
        |name: &str| &r.cells.iter().find(|x| x.cell == name).expect("cell").kind.finetuned_training_families;
    let lm = ["CD:FLM", "ND:PLM"];
    let rest: Vec<&CellResult> = r.cells.iter().filter(|x| !lm.contains(&x.cell.as_str())).collect();
    let lm_min = lm.iter().map(|n| own(n).min).fold(f64::INFINITY, f64::min);
    let rest_max = rest.iter().map(|x| x.kind.finetuned_training_families.max).fold(0.0, f64::max);
    c.add(
        "lm_decoders_learn_the_finetuning_families",
        lm_min >= 95.0 && rest_max <= 60.0,
        format!(
            "after {} finetuning steps, the two decoders pretrained as language models answer the finetuning families' \
             kind-suite questions with the right kind of answer in every seed (CD:FLM {}, ND:PLM {}, lowest seed \
             {:.1}%), while the four other cells stay at most {:.1}% in every seed, against {:.1}% for chance",
            r.settings.mtf_steps,
            own("CD:FLM").show(),
            own("ND:PLM").show(),
            lm_min,
            rest_max,
            r.chance_kind.training_families
        ),
    );

    // CD:FLM after pretraining, ED:MLM after finetuning: can the data separate them from the rest?
    let separated = |cs: &[Comparison]| cs.iter().filter(|x| !x.within_noise).count();
    let pre_sep = separated(&r.pretrained_comparisons);
    c.add(
        "cd_flm_not_separable_after_pretraining",
        pre_sep == 0,
        format!(
            "after pretraining, none of the {} comparisons of CD:FLM with another cell on the kind suite's held-out \
             families (five cells, three scores) has a 95% interval that excludes zero",
            r.pretrained_comparisons.len()
        ),
    );
    let ft_ahead = r.finetuned_comparisons.iter().filter(|x| above(x)).count();
    c.add(
        "ed_mlm_not_ahead_after_finetuning",
        ft_ahead == 0,
        format!(
            "after finetuning, ED:MLM is ahead of another cell in none of the {} comparisons on the kind suite's \
             held-out families",
            r.finetuned_comparisons.len()
        ),
    );

    // Phase 3.
    let a = &r.adaptation;
    match a.scratch_steps_to_match {
        Some(n) => c.add(
            "adaptation_reaches_the_mlm_loss_faster",
            n > a.adapt_steps,
            format!(
                "non-causal MLM adaptation of the pretrained CD:FLM reaches a span-corruption loss of {:.3} in {} steps; \
                 ND:MLM trained from scratch needs {n} steps to reach it, {:.1} times as many (the paper: 3.3 times)",
                a.adapted_mlm_loss,
                a.adapt_steps,
                n as f64 / a.adapt_steps as f64
            ),
        ),
        None => c.add(
            "adaptation_reaches_the_mlm_loss_faster",
            a.adapted_mlm_loss < a.scratch_mlm_loss,
            format!(
                "non-causal MLM adaptation reaches a span-corruption loss of {:.3} in {} steps, lower than ND:MLM from \
                 scratch reaches in its whole run ({:.3})",
                a.adapted_mlm_loss, a.adapt_steps, a.scratch_mlm_loss
            ),
        ),
    };
    let adapt_sep = separated(&r.adaptation_comparisons);
    c.add(
        "adaptation_gains_nothing_held_out",
        adapt_sep == 0,
        format!(
            "after finetuning, none of the {} comparisons of the adapted model with its controls (more CD:FLM, ND:MLM \
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
        ch.next().map_or(String::new(), |f| f.to_uppercase().collect::<String>() + ch.as_str())
    };
    format!(
        "- **The real task is out of reach at this scale.** {}. {}.\n\
         - **The models answer by habit.** {}.\n\
         - **What does separate the cells is how fast they learn the prompted format.** {}.\n\
         - **Adaptation is cheap.** {}; {}.\n\
         - **So the ranking rests on the paper.** Our {} tiny models, trained on {} tokens each, cannot reproduce \
         either of its findings; the [verdict](#verdict) weighs the paper's numbers.\n",
        cap(text("scene_pretrained_above_chance")),
        cap(text("scene_finetuned_above_chance")),
        cap(text("summed_kind_is_one_answer")),
        cap(text("lm_decoders_learn_the_finetuning_families")),
        cap(text("adaptation_reaches_the_mlm_loss_faster")),
        text("adaptation_gains_nothing_held_out"),
        r.cells.len() * r.settings.seeds,
        thousands(r.data.pretraining_tokens as u64),
    )
}
