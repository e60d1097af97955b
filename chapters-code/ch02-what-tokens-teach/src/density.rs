//! Signal density over the whole corpus: the fraction of positions that receive a
//! loss.

use std::fmt::Write as _;

use anyhow::bail;
use serde::Serialize;
use transformer::chapter::round_dp;
use transformer::objectives::{self, LmBatch, MlmConfig, SpanConfig};
use transformer::rng;
use transformer::tokenizer::BpeTokenizer;

use crate::*;

/// Measured and expected fraction of positions that receive a loss, for one
/// objective.
#[derive(Debug, Clone, Serialize)]
pub struct Density {
    pub rows: usize,
    pub tokens_read: usize,
    pub supervised: usize,
    pub measured: f64,
    pub theory: f64,
}

/// Span corruption's lengths, over the whole corpus, against the closed form.
#[derive(Debug, Clone, Serialize)]
pub struct SpanLengths {
    pub row_len: usize,
    pub rows: usize,
    pub noise_tokens: usize,
    pub spans: usize,
    pub encoder_len: usize,
    pub target_len: usize,
    /// Per original token: dropped tokens that are targets, sentinels in the
    /// target, the whole target (with `[EOS]`) and the whole encoder input (with
    /// `[EOS]`).
    pub noise_fraction: f64,
    pub sentinel_fraction: f64,
    pub target_fraction: f64,
    pub encoder_fraction: f64,
    pub theory_target_fraction: f64,
    pub theory_encoder_fraction: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DensityReport {
    pub full_lm: Density,
    pub prefix_lm: Density,
    pub masked_lm: Density,
    pub unilm: Density,
    pub span: SpanLengths,
    pub span_long: SpanLengths,
}

fn density(batches: &[LmBatch], pad: u32, theory: f64) -> Density {
    let read: usize = batches.iter().map(|b| b.tokens_seen(pad)).sum();
    let sup: usize = batches.iter().map(LmBatch::tokens_supervised).sum();
    let rows = batches.iter().map(|b| b.input.len()).sum();
    Density {
        rows,
        tokens_read: read,
        supervised: sup,
        measured: round_dp(sup as f64 / read as f64, 4),
        theory: round_dp(theory, 4),
    }
}

// ANCHOR: measure_density
/// Apply every objective to every packed row of the corpus and count.
pub fn measure_density(
    tok: &BpeTokenizer,
    docs: &[String],
    seq_len: usize,
) -> anyhow::Result<DensityReport> {
    let sp = &tok.specials;
    let vocab = tok.vocab_size() as u32;
    let mut r = rng::stream(SEED, "ch02.density");
    // Rows of t + 1 tokens: the LM objectives read t and predict the next; MLM
    // reads the first t.
    let rows = tok.pack(docs, seq_len + 1)?;
    let short: Vec<Vec<u32>> = rows.iter().map(|x| x[..seq_len].to_vec()).collect();
    let mlm = MlmConfig::default();
    let (mut f, mut p, mut m, mut u) = (vec![], vec![], vec![], vec![]);
    for (chunk, short) in rows.chunks(64).zip(short.chunks(64)) {
        f.push(objectives::full_lm(chunk, sp));
        p.push(objectives::prefix_lm(chunk, &mut r, sp));
        m.push(objectives::masked_lm(short, &mut r, sp, vocab, &mlm));
        u.push(objectives::unilm_seq2seq(short, &mut r, sp, vocab, &mlm));
    }
    let t = seq_len as f64;
    Ok(DensityReport {
        full_lm: density(&f, sp.pad, 1.0),
        prefix_lm: density(&p, sp.pad, (t + 1.0) / (2.0 * t)),
        masked_lm: density(&m, sp.pad, mlm.rate),
        unilm: density(&u, sp.pad, mlm.rate),
        span: span_lengths(tok, docs, seq_len, &mut r)?,
        span_long: span_lengths(tok, docs, 512, &mut r)?,
    })
}
// ANCHOR_END: measure_density

fn span_lengths(
    tok: &BpeTokenizer,
    docs: &[String],
    len: usize,
    r: &mut rng::Rng,
) -> anyhow::Result<SpanLengths> {
    let cfg = SpanConfig::default();
    let rows = tok.pack(docs, len)?;
    if rows.is_empty() {
        bail!("the corpus holds fewer than {len} tokens");
    }
    let b = objectives::span_corruption(&rows, r, &tok.specials, &cfg)?;
    let n = (rows.len() * len) as f64;
    let enc: usize = b.encoder_input.iter().map(Vec::len).sum();
    let tgt: usize = b.decoder_target.iter().map(Vec::len).sum();
    let sentinels = b
        .decoder_target
        .iter()
        .flatten()
        .filter(|&&x| tok.specials.sentinel_index(x).is_some())
        .count();
    let noise = tgt - sentinels - rows.len();
    let (one_noise, one_spans) = objectives::span_counts(len, &cfg);
    let rate = cfg.rate;
    let spans_per_token = rate / cfg.mean_span;
    Ok(SpanLengths {
        row_len: len,
        rows: rows.len(),
        noise_tokens: one_noise,
        spans: one_spans,
        encoder_len: b.encoder_input[0].len(),
        target_len: b.decoder_target[0].len(),
        noise_fraction: round_dp(noise as f64 / n, 4),
        sentinel_fraction: round_dp(sentinels as f64 / n, 4),
        target_fraction: round_dp(tgt as f64 / n, 4),
        encoder_fraction: round_dp(enc as f64 / n, 4),
        theory_target_fraction: round_dp(
            rate + spans_per_token + 1.0 / len as f64,
            4,
        ),
        theory_encoder_fraction: round_dp(
            1.0 - rate + spans_per_token + 1.0 / len as f64,
            4,
        ),
    })
}

/// The density table: measured beside the theory of facts.md §3.
pub fn density_table(d: &DensityReport, seq_len: usize) -> String {
    let mut t = String::from(
        "| Objective | Supervised positions per token read (measured) | Theory | What the theory says |\n|---|---:|---:|---|\n",
    );
    let rows = [
        ("Full LM (causal)", &d.full_lm, "every position predicts the next token"),
        (
            "Prefix LM",
            &d.prefix_lm,
            "only the suffix; split point uniform, so (t + 1) / 2t",
        ),
        ("Masked LM (BERT)", &d.masked_lm, "15% of the positions chosen"),
        (
            "Seq-to-seq cloze (UniLM)",
            &d.unilm,
            "15% of the positions chosen, under a prefix mask",
        ),
    ];
    for (name, x, why) in rows {
        let _ =
            writeln!(t, "| {name} | {:.3} | {:.3} | {why} |", x.measured, x.theory);
    }
    for s in [&d.span, &d.span_long] {
        let _ = writeln!(
            t,
            "| Span corruption (T5), rows of {} | {:.3} targets ({:.3} dropped tokens + {:.3} sentinels + [EOS]) | {:.3} | 0.15 + 0.05 sentinels + 1/{} |",
            s.row_len,
            s.target_fraction,
            s.noise_fraction,
            s.sentinel_fraction,
            s.theory_target_fraction,
            s.row_len
        );
    }
    let _ = seq_len;
    t
}

/// The span-corruption length table.
pub fn span_table(d: &DensityReport) -> String {
    let mut t = String::from(
        "| Row length n | Dropped tokens | Spans | Encoder input (measured) | Encoder input (0.9n + 1) | Decoder target (measured) | Decoder target (0.2n + 1) |\n|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in [&d.span, &d.span_long] {
        let n = s.row_len as f64;
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {:.1} | {} | {:.1} |",
            s.row_len,
            s.noise_tokens,
            s.spans,
            s.encoder_len,
            0.9 * n + 1.0,
            s.target_len,
            0.2 * n + 1.0
        );
    }
    t
}
