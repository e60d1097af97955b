//! The report: the whole chapter, run in the page's order.

use anyhow::{Context, bail};
use serde::Serialize;
use transformer::chapter::{Spread, Table, round_dp};
use transformer::corpus::{self};
use transformer::rng;
use transformer::tokenizer::BpeTokenizer;

use crate::*;

#[derive(Debug, Clone, Serialize)]
pub struct ModelShape {
    pub params: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub vocab_size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainingReport {
    pub model: ModelShape,
    pub steps: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub tokens_seen: usize,
    pub full_lm: Run,
    pub prefix_lm: Run,
    pub masked_lm: Run,
    /// Supervised tokens of the full LM per supervised token of the masked LM.
    pub supervision_ratio_flm_to_mlm: f64,
    pub supervision_ratio_flm_to_plm: f64,
    /// Held-out second-half loss, prefix LM minus full LM (negative: the prefix LM
    /// is better).
    pub second_half_gap_plm_minus_flm: f64,
    /// The same comparison over every seed.
    pub seeds: SeedsReport,
    /// Held-out masked-LM loss of a model that knows only the training corpus's
    /// token frequencies: the floor a masked LM must beat to have learned anything
    /// else.
    pub unigram_baseline_masked_lm: f64,
}

/// Every objective trained from every seed: final losses with their spread, and the
/// two decoders compared at equal tokens seen and at equal supervised positions,
/// seed by seed.
#[derive(Debug, Clone, Serialize)]
pub struct SeedsReport {
    pub seeds: Vec<u64>,
    /// Objective → held-out loss on its own objective at the end.
    pub final_loss: std::collections::BTreeMap<&'static str, Spread>,
    /// Decoder → held-out next-token loss on the second half at the end.
    pub second_half: std::collections::BTreeMap<&'static str, Spread>,
    /// Prefix LM minus full LM on the second half at the end (equal tokens seen),
    /// per seed.
    pub gap_equal_seen: Vec<f64>,
    pub gap_equal_seen_stats: Spread,
    /// Positions the prefix LM received a loss on in its whole run.
    pub prefix_supervised: usize,
    /// The full LM's second-half loss when it had received that many losses, per
    /// seed (`None` when its evaluations do not reach back that far, as in very
    /// short runs).
    pub full_at_prefix_supervision: Option<Spread>,
    /// Full LM (at equal supervision) minus prefix LM (at the end), per seed:
    /// positive means the prefix LM is ahead at an equal number of supervised
    /// positions.
    pub gap_equal_supervised: Vec<f64>,
    pub gap_equal_supervised_stats: Option<Spread>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub corpus: CorpusStats,
    pub example_text: String,
    pub example_tokens: usize,
    pub objectives: Vec<ObjectiveView>,
    pub density: DensityReport,
    pub training: TrainingReport,
}

/// Everything one run computed.
pub struct Computed {
    pub report: Report,
    pub tokenizer_json: String,
    pub tables: Vec<(&'static str, String)>,
    pub sample_document: String,
}

/// Run the whole chapter.
pub fn compute(s: &Settings) -> anyhow::Result<Computed> {
    let docs = corpus::documents(SEED, s.documents);
    let held = corpus::documents(SEED + 1, s.held_out_documents);
    let tok = BpeTokenizer::train(docs.iter(), s.vocab_size, SENTINELS)
        .context("training the tokenizer")?;
    let stats = corpus_stats(&docs, &tok)?;
    let views = objective_views(&tok)?;
    let density = measure_density(&tok, &docs, s.seq_len)?;
    let train_rows = tok.pack(&docs, s.seq_len + 1)?;
    let mut eval_rows = tok.pack(&held, s.seq_len + 1)?;
    eval_rows.truncate(64);
    if train_rows.is_empty() || eval_rows.is_empty() {
        bail!("the corpus is too small for rows of {} tokens", s.seq_len + 1);
    }
    // Seed 0 is the run the figures show; every seed runs every objective.
    let seeds: Vec<u64> = (0..s.seeds as u64).map(|k| SEED + k).collect();
    let mut by_seed = Vec::new();
    for &seed in &seeds {
        let mut runs = Vec::new();
        for &objective in Objective::VARIANTS {
            runs.push(train_run(
                s,
                &tok,
                &train_rows,
                &eval_rows,
                objective,
                seed,
            )?);
        }
        let runs: [Run; 3] = runs.try_into().expect("three runs");
        by_seed.push(runs);
    }
    let seeds_report = seeds_report(&seeds, &by_seed)?;
    let held_out_mlm = Objective::MaskedLm.batch(
        &eval_rows,
        &mut rng::stream(SEED, "ch02.eval"),
        &tok,
    );
    let unigram_baseline_masked_lm =
        round_dp(unigram_loss(&train_rows, &held_out_mlm, tok.vocab_size()), 3);
    let [full_lm, prefix_lm, masked_lm] = by_seed.swap_remove(0);
    let cfg = s.model_config(tok.vocab_size());
    let training = TrainingReport {
        model: ModelShape {
            params: cfg.decoder_only_params(),
            d_model: cfg.d_model,
            n_layers: cfg.n_layers,
            n_heads: cfg.n_heads,
            vocab_size: cfg.vocab_size,
        },
        steps: s.steps,
        batch: s.batch,
        seq_len: s.seq_len,
        tokens_seen: full_lm.tokens_seen,
        supervision_ratio_flm_to_mlm: round_dp(
            full_lm.tokens_supervised as f64 / masked_lm.tokens_supervised as f64,
            2,
        ),
        supervision_ratio_flm_to_plm: round_dp(
            full_lm.tokens_supervised as f64 / prefix_lm.tokens_supervised as f64,
            2,
        ),
        second_half_gap_plm_minus_flm: round_dp(
            prefix_lm.final_second_half_loss.unwrap_or(0.0)
                - full_lm.final_second_half_loss.unwrap_or(0.0),
            3,
        ),
        full_lm,
        prefix_lm,
        masked_lm,
        seeds: seeds_report,
        unigram_baseline_masked_lm,
    };
    let examples = [
        EXAMPLE,
        "\"Which is bigger, the lamp or the cup?\" asked Zoe.",
        "First, Omar washes the bowl. Then Omar paints the kite.",
    ];
    let tables = vec![
        ("encodings.md", encodings_table(&tok, &examples)?),
        ("objectives.md", objectives_html(&tok, &views)),
        ("density.md", density_table(&density, s.seq_len)),
        ("span_lengths.md", span_table(&density)),
        (
            "training.md",
            training_table(&[
                training.full_lm.clone(),
                training.prefix_lm.clone(),
                training.masked_lm.clone(),
            ]),
        ),
        ("tasks.md", tasks_table()),
        ("seeds.md", seeds_table(&training.seeds)),
    ];
    let example_tokens = tok.encode(EXAMPLE)?.len();
    let report = Report {
        settings: s.clone(),
        corpus: stats,
        example_text: EXAMPLE.to_string(),
        example_tokens,
        objectives: views,
        density,
        training,
    };
    Ok(Computed {
        report,
        tokenizer_json: tok.to_json()?,
        tables,
        sample_document: docs[0].clone(),
    })
}

fn seeds_report(seeds: &[u64], runs: &[[Run; 3]]) -> anyhow::Result<SeedsReport> {
    let mut final_loss = std::collections::BTreeMap::new();
    for (i, objective) in Objective::VARIANTS.iter().enumerate() {
        final_loss.insert(
            objective.name(),
            Spread::of(
                &runs.iter().map(|r| r[i].final_loss).collect::<Vec<_>>(),
                3,
            ),
        );
    }
    let half = |r: &Run| {
        r.final_second_half_loss.context("a decoder run has a second-half loss")
    };
    let full: Vec<f64> =
        runs.iter().map(|r| half(&r[0])).collect::<anyhow::Result<_>>()?;
    let prefix: Vec<f64> =
        runs.iter().map(|r| half(&r[1])).collect::<anyhow::Result<_>>()?;
    let mut second_half = std::collections::BTreeMap::new();
    second_half.insert(Objective::FullLm.name(), Spread::of(&full, 3));
    second_half.insert(Objective::PrefixLm.name(), Spread::of(&prefix, 3));
    let gap_equal_seen: Vec<f64> =
        prefix.iter().zip(&full).map(|(p, f)| round_dp(p - f, 3)).collect();
    let prefix_supervised = runs[0][1].tokens_supervised;
    let at: Option<Vec<f64>> = runs
        .iter()
        .map(|r| second_half_at_supervised(&r[0], r[1].tokens_supervised))
        .collect();
    let gap_equal_supervised: Vec<f64> =
        at.iter().flatten().zip(&prefix).map(|(a, p)| round_dp(a - p, 3)).collect();
    Ok(SeedsReport {
        seeds: seeds.to_vec(),
        final_loss,
        second_half,
        gap_equal_seen_stats: Spread::of(&gap_equal_seen, 3),
        gap_equal_seen,
        prefix_supervised,
        full_at_prefix_supervision: at.as_deref().map(|xs| Spread::of(xs, 3)),
        gap_equal_supervised_stats: at
            .is_some()
            .then(|| Spread::of(&gap_equal_supervised, 3)),
        gap_equal_supervised,
    })
}

/// Final losses over seeds, as "mean ± std".
pub fn seeds_table(s: &SeedsReport) -> String {
    let mut t = Table::new(&[
        "Objective",
        "Held-out loss (own objective)",
        "Held-out loss on the second half",
    ])
    .right_from(1);
    for &objective in Objective::VARIANTS {
        let own = &s.final_loss[objective.name()];
        let half = s
            .second_half
            .get(objective.name())
            .map_or("n/a".to_string(), |h| format!("{:.3} ± {:.3}", h.mean, h.std));
        t.row([
            objective.label().to_string(),
            format!("{:.3} ± {:.3}", own.mean, own.std),
            half,
        ]);
    }
    t.markdown()
}
