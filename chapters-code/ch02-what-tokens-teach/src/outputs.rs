//! Outputs: results.json, the tokenizer, the figures and the tables.

use transformer::chapter::Outputs;
use transformer::io::thousands;
use transformer::plot::{Architecture, Dash, LineChart, Series};

use crate::*;

/// The model each objective trains, whose colour its curves take in every figure.
fn architecture(objective: Objective) -> Architecture {
    match objective {
        Objective::FullLm => Architecture::CausalDecoder,
        Objective::PrefixLm => Architecture::NonCausalDecoder,
        Objective::MaskedLm => Architecture::Encoder,
    }
}

fn series(
    run: &Run,
    x: impl Fn(&EvalPoint) -> usize,
    y: impl Fn(&EvalPoint) -> Option<f64>,
) -> Series {
    Series::new(
        run.objective.label(),
        run.evals.iter().filter_map(|e| y(e).map(|v| (x(e) as f64, v))).collect(),
    )
    .architecture(architecture(run.objective))
}

/// `results.json`, the figures, the tables and `tokenizer.json`.
pub fn outputs(chapter: &Computed) -> anyhow::Result<Outputs> {
    let mut out = Outputs::new(&chapter.report)?;
    let t = &chapter.report.training;
    let runs = [&t.full_lm, &t.prefix_lm, &t.masked_lm];
    let mut own: Vec<Series> = runs
        .iter()
        .map(|r| series(r, |e| e.tokens_seen, |e| Some(e.loss)))
        .collect();
    let span = t.masked_lm.evals.iter().map(|e| e.tokens_seen as f64);
    let (x0, x1) =
        (span.clone().fold(f64::INFINITY, f64::min), span.fold(0.0, f64::max));
    own.push(
        Series::new(
            "unigram baseline for the masked LM (token frequencies only)",
            vec![
                (x0, t.unigram_baseline_masked_lm),
                (x1, t.unigram_baseline_masked_lm),
            ],
        )
        .dash(Dash::Dashed),
    );
    let svg = LineChart {
        title: "Held-out loss (each on its own objective) against tokens seen",
        x_label: "tokens seen",
        y_label: "held-out loss (nats)",
        log_x: false,
        log_y: false,
        series: &own,
    }
    .to_svg()?;
    out.file("loss_vs_seen.svg", svg)?;
    let sup: Vec<Series> = runs
        .iter()
        .map(|r| series(r, |e| e.tokens_supervised, |e| Some(e.loss)))
        .collect();
    let svg = LineChart {
        title: "The same curves against tokens that received a loss",
        x_label: "tokens supervised",
        y_label: "held-out loss (nats)",
        log_x: true,
        log_y: false,
        series: &sup,
    }
    .to_svg()?;
    out.file("loss_vs_supervised.svg", svg)?;
    let half: Vec<Series> = runs[..2]
        .iter()
        .map(|r| series(r, |e| e.tokens_seen, |e| e.second_half_loss))
        .collect();
    let svg = LineChart {
        title: "One yardstick for both decoders: loss on the second half of held-out rows",
        x_label: "tokens seen",
        y_label: "next-token loss on the second half (nats)",
        log_x: false,
        log_y: false,
        series: &half,
    }
    .to_svg()?;
    out.file("second_half_loss.svg", svg)?;
    for (file, text) in &chapter.tables {
        out.file(file, text.as_str())?;
    }
    out.file("sample_document.md", sample_md(&chapter.sample_document))?;
    out.file("tokenizer.json", chapter.tokenizer_json.as_str())?;
    for r in runs {
        out.headline(format!(
            "{:>34}: held-out loss {:.3} on its own objective, {} of {} tokens supervised",
            r.objective.label(),
            r.final_loss,
            thousands(r.tokens_supervised as u64),
            thousands(r.tokens_seen as u64)
        ));
    }
    out.claims(crate::claims::claims(&chapter.report));
    out.open_first("loss_vs_seen.svg");
    Ok(out)
}
