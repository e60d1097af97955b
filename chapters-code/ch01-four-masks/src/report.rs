//! Report and outputs: assemble what the page quotes, its tables and its figures.

use transformer::chapter::round_dp;
use transformer::chapter::{Outputs, Table};
use transformer::io::thousands;
use transformer::plot::Heatmap;

use crate::costs::{Family, T5Accounting, families};
use crate::maps::{AttentionMap, attention_maps};
use crate::models::{Models, example};
use crate::settings::Settings;
use crate::sharing::{Sharing, sharing};
use serde::Serialize;

/// Everything the page quotes, rounded for display; written to `results.json` and
/// snapshotted.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub model: ModelShape,
    pub families: Vec<Family>,
    pub t5: T5Accounting,
    pub sharing: Sharing,
    /// Allowed (query, key) pairs per attention map, read from the models'
    /// probabilities.
    pub allowed_pairs: Vec<(String, usize)>,
}

/// The shape every family shares, for the prose.
#[derive(Debug, Clone, Serialize)]
pub struct ModelShape {
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub n_layers: usize,
    pub source_len: usize,
    pub target_len: usize,
}

/// Everything one run computed: the report, the attention maps and the tables.
pub struct Computed {
    pub report: Report,
    pub maps: Vec<AttentionMap>,
    pub tables: Vec<(&'static str, String)>,
}

/// The families table, in Markdown.
pub fn families_table(families: &[Family], s: &Settings) -> String {
    let flops = format!("Forward FLOPs per token ({} tokens)", s.seq_len);
    let mut t = Table::new(&[
        "Family",
        "Examples",
        "Attention",
        "Usual pretraining objective",
        "Generates left to right?",
        "Parameters",
        &flops,
    ])
    .right_from(5);
    for f in families {
        t.row([
            f.name.to_string(),
            f.examples.to_string(),
            f.attention.to_string(),
            f.objective.to_string(),
            f.generates_left_to_right.to_string(),
            thousands(f.cost.params as u64),
            thousands(f.cost.flops_per_token.round() as u64),
        ]);
    }
    t.markdown()
}

/// T5's accounting, in Markdown.
pub fn t5_table(t5: &T5Accounting, s: &Settings) -> String {
    let l = t5.layers;
    let (src, tgt) = (s.prefix_len, s.seq_len - s.prefix_len);
    let flops = format!("Forward FLOPs on {src} input + {tgt} output tokens");
    let mut t =
        Table::new(&["Model", "Layers", "Parameters", &flops]).right_from(2);
    let rows = [
        (
            format!("Decoder-only, {l} layers"),
            format!("{l}"),
            t5.params_decoder_l,
            t5.flops_decoder_l,
        ),
        (
            format!("Decoder-only, {} layers", 2 * l),
            format!("{}", 2 * l),
            t5.params_decoder_2l,
            t5.flops_decoder_2l,
        ),
        (
            "Encoder-decoder".to_string(),
            format!("{l} + {l}"),
            t5.params_encoder_decoder,
            t5.flops_encoder_decoder,
        ),
    ];
    for (name, layers, p, f) in rows {
        t.row([name, layers, thousands(p as u64), thousands(f)]);
    }
    t.markdown()
}

/// The sharing table: per position, whether its mask row differs and how far its
/// outputs moved.
pub fn sharing_table(sh: &Sharing) -> String {
    let layers = sh.rows.first().map_or(0, |r| r.diff_per_layer.len());
    let mut header = vec!["Position".to_string(), "Mask row differs?".to_string()];
    header.extend((1..layers).map(|l| format!("Max change after layer {l}")));
    header.push("Max change in the logits".to_string());
    let mut t = Table::new(&header).right_from(2);
    for r in &sh.rows {
        let mut cells = vec![
            r.label.clone(),
            if r.mask_row_differs { "yes" } else { "no" }.to_string(),
        ];
        cells.extend(r.diff_per_layer.iter().map(|&d| {
            if d == 0.0 {
                "0 (identical)".to_string()
            } else if d >= 0.01 {
                format!("{d:.3}")
            } else {
                format!("{d:.1e}")
            }
        }));
        t.row(cells);
    }
    t.markdown()
}

/// Run the whole chapter.
pub fn compute(s: &Settings) -> anyhow::Result<Computed> {
    let models = Models::new(&s.config)?;
    let maps = attention_maps(&models, s)?;
    let (families, t5) = families(&models, s)?;
    let mut sharing = sharing(&models, s)?;
    sharing.same_rows_max_diff_layer1 =
        round_dp(sharing.same_rows_max_diff_layer1, 6);
    sharing.max_logit_diff = round_dp(sharing.max_logit_diff, 4);
    let mut families = families;
    for f in &mut families {
        f.cost.flops_per_token = round_dp(f.cost.flops_per_token, 1);
    }
    let tables = vec![
        ("families.md", families_table(&families, s)),
        ("t5_accounting.md", t5_table(&t5, s)),
        ("sharing.md", sharing_table(&sharing)),
    ];
    let allowed_pairs = maps
        .iter()
        .map(|m| {
            (
                m.file.trim_end_matches(".svg").to_string(),
                m.probs.iter().flatten().flatten().count(),
            )
        })
        .collect();
    let cfg = &s.config;
    let model = ModelShape {
        vocab_size: cfg.vocab_size,
        d_model: cfg.d_model,
        n_heads: cfg.n_heads,
        d_ff: cfg.d_ff,
        n_layers: cfg.n_layers,
        source_len: s.prefix_len,
        target_len: s.seq_len - s.prefix_len,
    };
    let report =
        Report { settings: s.clone(), model, families, t5, sharing, allowed_pairs };
    Ok(Computed { report, maps, tables })
}

/// The outputs: `results.json`, the attention maps and dependence maps as figures,
/// the tables.
pub fn outputs(c: &Computed) -> anyhow::Result<Outputs> {
    let mut out = Outputs::new(&results_json(&c.report))?;
    for m in &c.maps {
        let svg = Heatmap {
            title: &m.title,
            rows: &m.rows,
            cols: &m.cols,
            values: &m.probs,
            x_label: "key (attended to)",
            y_label: "query (attending)",
        }
        .to_svg()?;
        out.file(m.file, svg)?;
    }
    let (_, labels) = example(&c.report.settings);
    for d in &c.report.sharing.dependence {
        let svg = Heatmap {
            title: &d.title,
            rows: &labels,
            cols: &labels,
            values: &d.effect,
            x_label: "input token changed",
            y_label: "output position",
        }
        .to_svg()?;
        out.file(d.file, svg)?;
    }
    for (file, text) in &c.tables {
        out.file(file, text.as_str())?;
    }
    let f = &c.report.families;
    out.headline(format!(
        "parameters: encoder-only {}, causal decoder {}, encoder-decoder {} (the same stack plus {}% cross-attention)",
        thousands(f[0].cost.params as u64),
        thousands(f[2].cost.params as u64),
        thousands(f[1].cost.params as u64),
        c.report.t5.cross_attention_percent
    ));
    out.headline(format!(
        "one set of weights, two masks: {} of {} positions change after layer 1, all {} in the logits",
        c.report.sharing.changed_after_layer1, c.report.settings.seq_len, c.report.sharing.changed_in_logits
    ));
    out.claims(crate::claims::claims(&c.report, &c.maps));
    out.open_first("prefix_lm.svg");
    Ok(out)
}

/// The report as the JSON the book's `{{#value ch01.…}}` reads: lists of pairs
/// become maps.
pub fn results_json(report: &Report) -> serde_json::Value {
    let mut v = serde_json::to_value(report).expect("the report serialises");
    let allowed: serde_json::Map<String, serde_json::Value> = report
        .allowed_pairs
        .iter()
        .map(|(k, n)| (k.clone(), (*n).into()))
        .collect();
    v["allowed_pairs"] = allowed.into();
    let families: serde_json::Map<String, serde_json::Value> = report
        .families
        .iter()
        .zip(["encoder_only", "encoder_decoder", "causal", "prefix_lm"])
        .map(|(f, key)| {
            (key.to_string(), serde_json::to_value(&f.cost).expect("serialises"))
        })
        .collect();
    v["families"] = families.into();
    v
}
