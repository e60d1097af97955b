//! Chapter 2: what each token teaches.
//!
//! The article dismisses BERT because it is trained by masked-language modelling and praises
//! GPT's next-token prediction. Part of the difference is plain arithmetic: how many positions
//! of a sequence receive a loss. This crate generates the book's synthetic corpus, trains its
//! BPE tokenizer, runs every objective of the shared library over the whole corpus to measure
//! that fraction, and trains the same small model under full LM, prefix LM and masked LM for the
//! same number of tokens seen.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use candle_core::Tensor;
use serde::Serialize;
use transformer::config::Config;
use transformer::corpus::{self, TaskFamily};
use transformer::io::{round, thousands};
use transformer::loss::masked_cross_entropy;
use transformer::objectives::{self, LmBatch, MlmConfig, SpanConfig};
use transformer::plot::{LineChart, Series};
use transformer::rng;
use transformer::tokenizer::{BpeTokenizer, Specials};
use transformer::train::{self, StepLoss, TrainConfig, TrainLog};
use transformer::{DecoderOnly, MaskKind, ParamStore, PositionKind};

/// The seed of the corpus, the tokenizer's training text, the models and the masking.
pub const SEED: u64 = 2;
/// Sentinels in the tokenizer: enough for T5's rate and span length on rows of up to 600 tokens.
pub const SENTINELS: u32 = 32;

/// The two sizes the command line offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// A small corpus and a tiny model, for the tests (a few seconds).
    Quick,
    /// What the book shows (about two minutes on two cores).
    Default,
}

/// What one run of the chapter uses.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub preset: Preset,
    /// Pretraining documents (the tokenizer's training text and the training stream).
    pub documents: usize,
    /// Held-out documents, drawn from another seed.
    pub held_out_documents: usize,
    pub vocab_size: usize,
    /// Tokens a model reads per row.
    pub seq_len: usize,
    pub batch: usize,
    pub steps: usize,
    pub eval_every: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub lr: f64,
}

/// Settings that cannot describe the experiment.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("--steps must be at least 1")]
    NoSteps,
    #[error(
        "--vocab-size must be between {min} and 8192 (256 bytes and {specials} special tokens come first), got {got}"
    )]
    Vocab { got: usize, min: usize, specials: u32 },
    #[error("--documents must be at least 50, got {0}")]
    TooFewDocuments(usize),
}

impl Settings {
    /// Settings from a preset, with optional overrides; every value is checked.
    pub fn new(
        preset: Preset,
        steps: Option<usize>,
        vocab_size: Option<usize>,
        documents: Option<usize>,
    ) -> Result<Self, SettingsError> {
        let mut s = match preset {
            Preset::Quick => Settings {
                preset,
                documents: 300,
                held_out_documents: 40,
                vocab_size: 448,
                seq_len: 32,
                batch: 8,
                steps: 24,
                eval_every: 8,
                d_model: 32,
                n_layers: 1,
                lr: 3e-3,
            },
            Preset::Default => Settings {
                preset,
                documents: 4000,
                held_out_documents: 200,
                vocab_size: 1024,
                seq_len: 64,
                batch: 16,
                steps: 200,
                eval_every: 20,
                d_model: 64,
                n_layers: 2,
                lr: 3e-3,
            },
        };
        if let Some(n) = steps {
            if n == 0 {
                return Err(SettingsError::NoSteps);
            }
            s.steps = n;
            s.eval_every = s.eval_every.min(n);
        }
        if let Some(v) = vocab_size {
            let min = 256 + Specials::with_sentinels(SENTINELS).first_regular() as usize + 1;
            if !(min..=8192).contains(&v) {
                return Err(SettingsError::Vocab { got: v, min, specials: min as u32 - 257 });
            }
            s.vocab_size = v;
        }
        if let Some(d) = documents {
            if d < 50 {
                return Err(SettingsError::TooFewDocuments(d));
            }
            s.documents = d;
        }
        Ok(s)
    }

    /// The model shared by the three training runs.
    pub fn model_config(&self, vocab_size: usize) -> Config {
        Config {
            vocab_size,
            d_model: self.d_model,
            n_heads: 4,
            n_kv_heads: 4,
            d_ff: 4 * self.d_model,
            n_layers: self.n_layers,
            max_len: self.seq_len,
            positions: PositionKind::Learned,
            tie_embeddings: false,
        }
    }
}

/// The corpus and the tokenizer, counted.
#[derive(Debug, Clone, Serialize)]
pub struct CorpusStats {
    pub documents: usize,
    pub words: usize,
    pub distinct_words: usize,
    pub characters: usize,
    pub tokens: usize,
    pub vocab_size: usize,
    pub special_tokens: u32,
    pub merges: usize,
    pub tokens_per_word: f64,
    pub characters_per_token: f64,
    pub words_per_document: f64,
    pub round_trip_exact: bool,
    pub task_families: usize,
    pub held_out_families: usize,
}

// ANCHOR: corpus_stats
/// Count the corpus, and check that every document decodes back to itself.
pub fn corpus_stats(docs: &[String], tok: &BpeTokenizer) -> anyhow::Result<CorpusStats> {
    let (mut words, mut characters, mut tokens, mut exact) = (0, 0, 0, true);
    let mut vocabulary = std::collections::BTreeSet::new();
    for d in docs {
        let ids = tok.encode(d)?;
        exact &= tok.decode(&ids)? == *d;
        tokens += ids.len();
        characters += d.chars().count();
        for w in corpus::words(d) {
            words += 1;
            vocabulary.insert(w.to_lowercase());
        }
    }
    let special = tok.specials.first_regular();
    Ok(CorpusStats {
        documents: docs.len(),
        words,
        distinct_words: vocabulary.len(),
        characters,
        tokens,
        vocab_size: tok.vocab_size(),
        special_tokens: special,
        merges: tok.vocab_size() - 256 - special as usize,
        tokens_per_word: round(tokens as f64 / words as f64, 3),
        characters_per_token: round(characters as f64 / tokens as f64, 2),
        words_per_document: round(words as f64 / docs.len() as f64, 1),
        round_trip_exact: exact,
        task_families: TaskFamily::ALL.len(),
        held_out_families: TaskFamily::held_out().len(),
    })
}
// ANCHOR_END: corpus_stats

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('|', "&#124;")
}

/// A token as a table cell shows it: a leading space as `␣`, specials by name.
fn shown(tok: &BpeTokenizer, id: u32) -> String {
    escape(&tok.token_text(id).replace(' ', "␣"))
}

/// A table of example encodings: text, its tokens, and the counts.
pub fn encodings_table(tok: &BpeTokenizer, texts: &[&str]) -> anyhow::Result<String> {
    let mut t = String::from("| Text | Tokens | Words | Tokens |\n|---|---|---:|---:|\n");
    for text in texts {
        let ids = tok.encode(text)?;
        let pieces: Vec<String> =
            ids.iter().map(|&i| format!("`{}`", tok.token_text(i).replace(' ', "␣"))).collect();
        writeln!(
            t,
            "| {} | {} | {} | {} |",
            escape(text),
            pieces.join(" "),
            corpus::words(text).count(),
            ids.len()
        )?;
    }
    Ok(t)
}

/// One objective applied to the example sentence: what the model reads, what it must predict.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectiveView {
    pub name: &'static str,
    pub mask: String,
    /// Rows of token ids: (label, ids, supervised flags).
    #[serde(skip)]
    pub rows: Vec<(&'static str, Vec<u32>, Vec<bool>)>,
    pub read: usize,
    pub supervised: usize,
}

/// Example sentence used for the figure of every objective.
pub const EXAMPLE: &str = "Ada keeps a small red cup in the kitchen, and Ben owns the big box.";

// ANCHOR: one_sentence
/// The example under every objective, each with its own seeded draw.
pub fn objective_views(tok: &BpeTokenizer) -> anyhow::Result<Vec<ObjectiveView>> {
    let sp = &tok.specials;
    let vocab = tok.vocab_size() as u32;
    let mut row = vec![sp.bos];
    row.extend(tok.encode(EXAMPLE)?);
    row.push(sp.eos);
    let rows = [row.clone()];
    let mut r = rng::stream(SEED, "ch02.example");
    let lm = |b: &LmBatch, name: &'static str| {
        let w: Vec<bool> = b.weight[0].iter().map(|&x| x > 0.0).collect();
        ObjectiveView {
            name,
            mask: mask_name(&b.mask),
            read: b.input[0].len(),
            supervised: w.iter().filter(|&&x| x).count(),
            rows: vec![
                ("reads", b.input[0].clone(), vec![false; w.len()]),
                ("predicts", b.target[0].clone(), w),
            ],
        }
    };
    let mut views = vec![
        lm(&objectives::full_lm(&rows, sp), "Full language modelling (GPT)"),
        lm(&objectives::prefix_lm(&rows, &mut r, sp), "Prefix language modelling"),
        lm(
            &objectives::masked_lm(&rows, &mut r, sp, vocab, &MlmConfig::default()),
            "Masked language modelling (BERT)",
        ),
        lm(
            &objectives::unilm_seq2seq(&rows, &mut r, sp, vocab, &MlmConfig::default()),
            "Sequence-to-sequence cloze (UniLM)",
        ),
    ];
    let s = objectives::span_corruption(&rows, &mut r, sp, &SpanConfig::default())?;
    let n = s.decoder_target[0].len();
    views.push(ObjectiveView {
        name: "Span corruption (T5)",
        mask: "encoder bidirectional, decoder causal".into(),
        read: s.encoder_input[0].len() + s.decoder_input[0].len(),
        supervised: n,
        rows: vec![
            ("encoder reads", s.encoder_input[0].clone(), vec![false; s.encoder_input[0].len()]),
            ("decoder reads", s.decoder_input[0].clone(), vec![false; n]),
            ("decoder predicts", s.decoder_target[0].clone(), vec![true; n]),
        ],
    });
    Ok(views)
}
// ANCHOR_END: one_sentence

fn mask_name(m: &MaskKind) -> String {
    match m {
        MaskKind::Bidirectional => "bidirectional".into(),
        MaskKind::Causal => "causal".into(),
        MaskKind::Prefix(k) => format!("prefix, bidirectional over the first {} tokens", k[0]),
    }
}

/// The views as a coloured HTML table: supervised targets orange, everything else grey.
pub fn objectives_html(tok: &BpeTokenizer, views: &[ObjectiveView]) -> String {
    let mut h = String::from("<div class=\"ch02-objectives\">\n\n");
    for v in views {
        let _ = writeln!(
            h,
            "<p><strong>{}</strong> ({}; reads {} tokens, loss on {})</p>",
            escape(v.name),
            escape(&v.mask),
            v.read,
            v.supervised
        );
        h.push_str("<table style=\"border-collapse:collapse;font-size:0.8em\">\n");
        for (label, ids, sup) in &v.rows {
            let _ = write!(h, "<tr><th style=\"text-align:left;padding:2px 6px\">{label}</th>");
            for (i, &id) in ids.iter().enumerate() {
                let predicts = label.ends_with("predicts");
                let style = if predicts && sup[i] {
                    "background:#e69f00;color:#000"
                } else if predicts {
                    "background:#eeeeee;color:#999"
                } else if tok.specials.is_special(id) {
                    "background:#cde6f5;color:#000"
                } else {
                    "background:#ffffff;color:#000"
                };
                let text = if predicts && !sup[i] { "·".to_string() } else { shown(tok, id) };
                let _ = write!(
                    h,
                    "<td style=\"{style};border:1px solid #bbb;padding:2px 4px;font-family:monospace\">{text}</td>"
                );
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n\n");
    }
    h.push_str("</div>\n");
    h
}

/// Measured and expected fraction of positions that receive a loss, for one objective.
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
    /// Per original token: dropped tokens that are targets, sentinels in the target, the whole
    /// target (with `[EOS]`) and the whole encoder input (with `[EOS]`).
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
        measured: round(sup as f64 / read as f64, 4),
        theory: round(theory, 4),
    }
}

// ANCHOR: measure_density
/// Apply every objective to every packed row of the corpus and count.
pub fn measure_density(tok: &BpeTokenizer, docs: &[String], seq_len: usize) -> anyhow::Result<DensityReport> {
    let sp = &tok.specials;
    let vocab = tok.vocab_size() as u32;
    let mut r = rng::stream(SEED, "ch02.density");
    // Rows of t + 1 tokens: the LM objectives read t and predict the next; MLM reads the first t.
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
    let sentinels =
        b.decoder_target.iter().flatten().filter(|&&x| tok.specials.sentinel_index(x).is_some()).count();
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
        noise_fraction: round(noise as f64 / n, 4),
        sentinel_fraction: round(sentinels as f64 / n, 4),
        target_fraction: round(tgt as f64 / n, 4),
        encoder_fraction: round(enc as f64 / n, 4),
        theory_target_fraction: round(rate + spans_per_token + 1.0 / len as f64, 4),
        theory_encoder_fraction: round(1.0 - rate + spans_per_token + 1.0 / len as f64, 4),
    })
}

/// The density table: measured beside the theory of facts.md §3.
pub fn density_table(d: &DensityReport, seq_len: usize) -> String {
    let mut t = String::from(
        "| Objective | Supervised positions per token read (measured) | Theory | What the theory says |\n|---|---:|---:|---|\n",
    );
    let rows = [
        ("Full LM (causal)", &d.full_lm, "every position predicts the next token"),
        ("Prefix LM", &d.prefix_lm, "only the suffix; split point uniform, so (t + 1) / 2t"),
        ("Masked LM (BERT)", &d.masked_lm, "15% of the positions chosen"),
        ("Seq-to-seq cloze (UniLM)", &d.unilm, "15% of the positions chosen, under a prefix mask"),
    ];
    for (name, x, why) in rows {
        let _ = writeln!(t, "| {name} | {:.3} | {:.3} | {why} |", x.measured, x.theory);
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

/// Which objective a training run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    FullLm,
    PrefixLm,
    MaskedLm,
}

impl Objective {
    pub const ALL: [Objective; 3] = [Objective::FullLm, Objective::PrefixLm, Objective::MaskedLm];

    pub fn key(self) -> &'static str {
        match self {
            Objective::FullLm => "full_lm",
            Objective::PrefixLm => "prefix_lm",
            Objective::MaskedLm => "masked_lm",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Objective::FullLm => "full LM (causal decoder)",
            Objective::PrefixLm => "prefix LM (prefix decoder)",
            Objective::MaskedLm => "masked LM (bidirectional encoder)",
        }
    }

    // ANCHOR: build_batch
    /// The batch this objective builds from rows of `t + 1` tokens (MLM reads the first `t`).
    pub fn batch(self, rows: &[Vec<u32>], r: &mut rng::Rng, tok: &BpeTokenizer) -> LmBatch {
        let sp = &tok.specials;
        match self {
            Objective::FullLm => objectives::full_lm(rows, sp),
            Objective::PrefixLm => objectives::prefix_lm(rows, r, sp),
            Objective::MaskedLm => {
                let short: Vec<Vec<u32>> = rows.iter().map(|x| x[..x.len() - 1].to_vec()).collect();
                objectives::masked_lm(&short, r, sp, tok.vocab_size() as u32, &MlmConfig::default())
            }
        }
    }
    // ANCHOR_END: build_batch
}

/// One evaluation of one run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalPoint {
    pub step: usize,
    pub tokens_seen: usize,
    pub tokens_supervised: usize,
    /// Held-out loss under the run's own objective.
    pub loss: f64,
    /// Held-out next-token loss on the second half of each row, the first half given as the
    /// prefix (a causal model reads it causally, a prefix model bidirectionally). `None` for
    /// the masked LM, which cannot be scored this way.
    pub second_half_loss: Option<f64>,
}

/// One training run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub objective: Objective,
    pub evals: Vec<EvalPoint>,
    pub tokens_seen: usize,
    pub tokens_supervised: usize,
    pub supervised_fraction: f64,
    pub final_loss: f64,
    pub final_second_half_loss: Option<f64>,
    #[serde(skip)]
    pub seconds: f64,
}

fn loss_of(model: &DecoderOnly, b: &LmBatch) -> anyhow::Result<Tensor> {
    let (x, y, w) = b.tensors()?;
    let logits = model.forward(&x, &b.mask)?;
    Ok(masked_cross_entropy(&logits, &y, &w)?)
}

/// The fixed second-half evaluation batch: prefix of `t / 2` tokens, loss from position
/// `t/2 − 1` on (exactly the positions a prefix model may be scored on).
fn second_half(rows: &[Vec<u32>], tok: &BpeTokenizer, objective: Objective) -> LmBatch {
    let mut b = objectives::full_lm(rows, &tok.specials);
    let t = b.input[0].len();
    let k = t / 2;
    for w in &mut b.weight {
        for x in &mut w[..k - 1] {
            *x = 0.0;
        }
    }
    if objective == Objective::PrefixLm {
        b.mask = MaskKind::prefix(k);
    }
    b
}

// ANCHOR: train_run
/// Train the shared model shape under one objective: the same initial weights, the same rows
/// in the same order and the same number of tokens seen for every objective.
pub fn train_run(
    s: &Settings,
    tok: &BpeTokenizer,
    train_rows: &[Vec<u32>],
    eval_rows: &[Vec<u32>],
    objective: Objective,
) -> anyhow::Result<Run> {
    let store = ParamStore::new(SEED);
    let model = DecoderOnly::new(&store, "model", &s.model_config(tok.vocab_size()))?;
    let cfg = TrainConfig {
        steps: s.steps,
        lr: s.lr,
        warmup: (s.steps / 10).max(1),
        eval_every: s.eval_every,
        seed: SEED,
        progress: false,
        ..TrainConfig::default()
    };
    let pad = tok.specials.pad;
    let step_fn = |step: usize, r: &mut rng::Rng| -> anyhow::Result<StepLoss> {
        let rows: Vec<Vec<u32>> =
            (0..s.batch).map(|j| train_rows[(step * s.batch + j) % train_rows.len()].clone()).collect();
        let b = objective.batch(&rows, r, tok);
        Ok(StepLoss {
            loss: loss_of(&model, &b)?,
            tokens_seen: b.tokens_seen(pad),
            tokens_supervised: b.tokens_supervised(),
        })
    };
    // Held-out batches are drawn once, with a fixed seed, so every evaluation scores the
    // same corrupted rows.
    let held_out = objective.batch(eval_rows, &mut rng::stream(SEED, "ch02.eval"), tok);
    let half = second_half(eval_rows, tok, objective);
    let mut halves = Vec::new();
    let eval_fn = |_step: usize| -> anyhow::Result<f64> {
        if objective != Objective::MaskedLm {
            halves.push(f64::from(loss_of(&model, &half)?.to_scalar::<f32>()?));
        }
        Ok(f64::from(loss_of(&model, &held_out)?.to_scalar::<f32>()?))
    };
    let log = train::train(&store, &cfg, step_fn, eval_fn)?;
    Ok(summarise(objective, &log, &halves))
}
// ANCHOR_END: train_run

fn summarise(objective: Objective, log: &TrainLog, halves: &[f64]) -> Run {
    let evals: Vec<EvalPoint> = log
        .evals
        .iter()
        .enumerate()
        .map(|(i, e)| EvalPoint {
            step: e.step,
            tokens_seen: e.tokens_seen,
            tokens_supervised: e.tokens_supervised,
            loss: round(e.value, 3),
            second_half_loss: halves.get(i).map(|&x| round(x, 3)),
        })
        .collect();
    let last = log.steps.last().expect("at least one step");
    let final_eval = evals.last().expect("the last step is evaluated");
    Run {
        objective,
        tokens_seen: last.tokens_seen,
        tokens_supervised: last.tokens_supervised,
        supervised_fraction: round(last.tokens_supervised as f64 / last.tokens_seen as f64, 3),
        final_loss: final_eval.loss,
        final_second_half_loss: final_eval.second_half_loss,
        evals,
        seconds: log.seconds,
    }
}

/// The training comparison as a table.
pub fn training_table(runs: &[Run]) -> String {
    let mut t = String::from(
        "| Objective | Tokens seen | Tokens supervised | Supervised fraction | Held-out loss (own objective) | Held-out loss on the second half |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in runs {
        let half = r.final_second_half_loss.map_or("n/a".to_string(), |x| format!("{x:.3}"));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.3} | {:.3} | {half} |",
            r.objective.label(),
            thousands(r.tokens_seen as u64),
            thousands(r.tokens_supervised as u64),
            r.supervised_fraction,
            r.final_loss
        );
    }
    t
}

/// A short description of the tasks chapter 4 draws from the same world.
pub fn tasks_table() -> String {
    let mut t = String::from("| Task family | Held out | Example question | Answer |\n|---|---|---|---|\n");
    for f in TaskFamily::ALL {
        let x = corpus::tasks(f, SEED, 1).remove(0);
        let _ = writeln!(
            t,
            "| `{}` | {} | {} | {} |",
            f.name(),
            if f.is_held_out() { "yes" } else { "no" },
            escape(&x.question),
            escape(&x.answer)
        );
    }
    t
}

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

/// Everything the chapter writes.
pub struct Chapter {
    pub report: Report,
    pub tokenizer_json: String,
    pub tables: Vec<(&'static str, String)>,
    pub sample_document: String,
}

/// Run the whole chapter.
pub fn run(s: &Settings) -> anyhow::Result<Chapter> {
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
        supervision_ratio_flm_to_mlm: round(
            full_lm.tokens_supervised as f64 / masked_lm.tokens_supervised as f64,
            2,
        ),
        supervision_ratio_flm_to_plm: round(
            full_lm.tokens_supervised as f64 / prefix_lm.tokens_supervised as f64,
            2,
        ),
        second_half_gap_plm_minus_flm: round(
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
    Ok(Chapter { report, tokenizer_json: tok.to_json()?, tables, sample_document: docs[0].clone() })
}

fn series(run: &Run, x: impl Fn(&EvalPoint) -> usize, y: impl Fn(&EvalPoint) -> Option<f64>) -> Series {
    Series {
        label: run.objective.label().to_string(),
        points: run.evals.iter().filter_map(|e| y(e).map(|v| (x(e) as f64, v))).collect(),
    }
}

/// Write `results.json`, the figures, the tables and `tokenizer.json` into `out`, atomically.
pub fn write(chapter: &Chapter, out: &Path) -> anyhow::Result<()> {
    let t = &chapter.report.training;
    let runs = [&t.full_lm, &t.prefix_lm, &t.masked_lm];
    let own: Vec<Series> = runs.iter().map(|r| series(r, |e| e.tokens_seen, |e| Some(e.loss))).collect();
    LineChart {
        title: "Held-out loss (each on its own objective) against tokens seen",
        x_label: "tokens seen",
        y_label: "held-out loss (nats)",
        log_x: false,
        log_y: false,
        series: &own,
    }
    .save(&out.join("loss_vs_seen.svg"))?;
    let sup: Vec<Series> =
        runs.iter().map(|r| series(r, |e| e.tokens_supervised, |e| Some(e.loss))).collect();
    LineChart {
        title: "The same curves against tokens that received a loss",
        x_label: "tokens supervised",
        y_label: "held-out loss (nats)",
        log_x: true,
        log_y: false,
        series: &sup,
    }
    .save(&out.join("loss_vs_supervised.svg"))?;
    let half: Vec<Series> =
        runs[..2].iter().map(|r| series(r, |e| e.tokens_seen, |e| e.second_half_loss)).collect();
    LineChart {
        title: "One yardstick for both decoders: loss on the second half of held-out rows",
        x_label: "tokens seen",
        y_label: "next-token loss on the second half (nats)",
        log_x: false,
        log_y: false,
        series: &half,
    }
    .save(&out.join("second_half_loss.svg"))?;
    for (file, text) in &chapter.tables {
        transformer::io::write_text(&out.join(file), text)?;
    }
    transformer::io::write_text(&out.join("sample_document.md"), &sample_md(&chapter.sample_document))?;
    transformer::io::write_text(&out.join("tokenizer.json"), &chapter.tokenizer_json)?;
    transformer::io::write_json(&out.join("results.json"), &chapter.report)
}

fn sample_md(doc: &str) -> String {
    let mut s = String::new();
    for line in doc.lines() {
        let _ = writeln!(s, "> {}\n>", escape(line));
    }
    s.trim_end_matches(">\n").trim_end().to_string() + "\n"
}
