//! The objectives: every one applied to the same sentence.

use std::fmt::Write as _;

use serde::Serialize;
use transformer::MaskKind;
use transformer::objectives::{self, LmBatch, MlmConfig, SpanConfig};
use transformer::rng;
use transformer::tokenizer::BpeTokenizer;

use crate::*;

/// One objective applied to the example sentence: what the model reads, what it
/// must predict.
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
pub const EXAMPLE: &str =
    "Ada keeps a small red cup in the kitchen, and Ben owns the big box.";

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
            &objectives::unilm_seq2seq(
                &rows,
                &mut r,
                sp,
                vocab,
                &MlmConfig::default(),
            ),
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
            (
                "encoder reads",
                s.encoder_input[0].clone(),
                vec![false; s.encoder_input[0].len()],
            ),
            ("decoder reads", s.decoder_input[0].clone(), vec![false; n]),
            ("decoder predicts", s.decoder_target[0].clone(), vec![true; n]),
        ],
    });
    Ok(views)
}

fn mask_name(m: &MaskKind) -> String {
    match m {
        MaskKind::Bidirectional => "bidirectional".into(),
        MaskKind::Causal => "causal".into(),
        MaskKind::Prefix(k) => {
            format!("prefix, bidirectional over the first {} tokens", k[0])
        }
        MaskKind::Padded(n) => {
            format!("bidirectional over the first {} tokens, padding unread", n[0])
        }
        MaskKind::ForwardBackward { heads, forward } => {
            format!(
                "{forward} of {heads} heads forward-causal, the others backward-causal"
            )
        }
    }
}

/// The views as coloured HTML tables: supervised targets orange, everything else
/// grey. An encoder-decoder's encoder row gets a table of its own: its positions do
/// not line up with the decoder's, and sharing columns would only widen both.
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
        let table = "<table style=\"border-collapse:collapse;font-size:0.8em\">\n";
        h.push_str(table);
        for (row, (label, ids, sup)) in v.rows.iter().enumerate() {
            let stack = |l: &str| l.split(' ').next().map(str::to_string);
            if row > 0 && stack(label) != stack(v.rows[row - 1].0) {
                h.push_str("</table>\n\n");
                h.push_str(table);
            }
            let _ = write!(
                h,
                "<tr><th style=\"text-align:left;padding:2px 6px\">{label}</th>"
            );
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
                let text = if predicts && !sup[i] {
                    "·".to_string()
                } else {
                    shown(tok, id)
                };
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
