//! The report: the whole chapter, run in the page's order.

use anyhow::{Context, bail};
use serde::Serialize;
use transformer::chapter::round_dp;
use transformer::corpus::{self};
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
    /// Held-out second-half loss, prefix LM minus full LM (negative: the prefix LM is better).
    pub second_half_gap_plm_minus_flm: f64,
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
    let tok = BpeTokenizer::train(docs.iter(), s.vocab_size, SENTINELS).context("training the tokenizer")?;
    let stats = corpus_stats(&docs, &tok)?;
    let views = objective_views(&tok)?;
    let density = measure_density(&tok, &docs, s.seq_len)?;
    let train_rows = tok.pack(&docs, s.seq_len + 1)?;
    let mut eval_rows = tok.pack(&held, s.seq_len + 1)?;
    eval_rows.truncate(64);
    if train_rows.is_empty() || eval_rows.is_empty() {
        bail!("the corpus is too small for rows of {} tokens", s.seq_len + 1);
    }
    let mut runs = Vec::new();
    for objective in Objective::ALL {
        runs.push(train_run(s, &tok, &train_rows, &eval_rows, objective)?);
    }
    let [full_lm, prefix_lm, masked_lm]: [Run; 3] = runs.try_into().expect("three runs");
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
            prefix_lm.final_second_half_loss.unwrap_or(0.0) - full_lm.final_second_half_loss.unwrap_or(0.0),
            3,
        ),
        full_lm,
        prefix_lm,
        masked_lm,
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
    Ok(Computed { report, tokenizer_json: tok.to_json()?, tables, sample_document: docs[0].clone() })
}
