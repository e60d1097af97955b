//! The BERT encoder on a tiny random model that our own code writes (safetensors +
//! config.json + tokenizer.json): it loads, matches an independent plain-loop
//! implementation of the same equations, ignores padding, and rejects bad input
//! with errors.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use real_models::Error;
use real_models::bert::SentenceEncoder;
use real_models::fixtures::*;

fn tiny() -> (tempfile::TempDir, SentenceEncoder) {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), 7).unwrap();
    let enc = SentenceEncoder::load(dir.path()).unwrap();
    (dir, enc)
}

#[test]
fn embeddings_have_unit_norm_and_the_right_shape() {
    let (_dir, enc) = tiny();
    let e =
        enc.embed_vecs(&["A man is eating food.", "the horse", "a man"]).unwrap();
    assert_eq!(e.len(), 3);
    for row in &e {
        assert_eq!(row.len(), BERT_HIDDEN);
        let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
}

#[test]
fn padding_changes_nothing() {
    // A short sentence alone and padded in a batch with a long one: the attention
    // mask and the masked mean pooling must make the two embeddings equal.
    let (_dir, enc) = tiny();
    let alone = enc.embed_vecs(&["a man"]).unwrap();
    let batched = enc
        .embed_vecs(&["a man", "a man is riding the horse and eating bread ."])
        .unwrap();
    let diff = alone[0]
        .iter()
        .zip(&batched[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-5, "padding changed the embedding by {diff}");
}

#[test]
fn matches_a_plain_loop_reference() {
    let (dir, enc) = tiny();
    let ids: Vec<u32> = enc
        .tokenizer
        .encode("a man is eating bread .", true)
        .unwrap()
        .get_ids()
        .to_vec();
    let got = enc.embed_vecs(&["a man is eating bread ."]).unwrap().remove(0);
    let w = candle_core::safetensors::load(
        dir.path().join("model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let want = reference_embedding(&w, &ids);
    let diff =
        got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(diff < 1e-4, "candle and the plain-loop reference differ by {diff}");
}

#[test]
fn bad_input_gives_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        SentenceEncoder::load(dir.path()),
        Err(Error::NotFetched { .. })
    ));

    write_tiny_bert(dir.path(), 1).unwrap();
    let cfg = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        cfg.replace("\"gelu\"", "\"relu\""),
    )
    .unwrap();
    let err =
        SentenceEncoder::load(dir.path()).err().expect("relu must be rejected");
    assert!(err.to_string().contains("relu"), "{err}");

    std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
    assert!(matches!(SentenceEncoder::load(dir.path()), Err(Error::Config { .. })));

    // Weights that lack a tensor.
    write_tiny_bert(dir.path(), 1).unwrap();
    let path = dir.path().join("model.safetensors");
    let mut w = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    w.remove("encoder.layer.1.output.dense.weight");
    candle_core::safetensors::save(&w, &path).unwrap();
    let err = SentenceEncoder::load(dir.path())
        .err()
        .expect("missing weight must be an error");
    assert!(err.to_string().contains("output.dense.weight"), "{err}");

    // More tokens than learned positions.
    write_tiny_bert(dir.path(), 1).unwrap();
    let enc = SentenceEncoder::load(dir.path()).unwrap();
    let long = vec!["a"; 2 * BERT_POSITIONS].join(" ");
    assert!(
        enc.embed(&[&long]).is_ok(),
        "truncation keeps inputs within the positions"
    );
}

// ---- A plain-loop BERT: the same equations, written without candle's tensor ops.
// ----

struct W<'a>(&'a HashMap<String, Tensor>);

impl W<'_> {
    fn v(&self, name: &str) -> Vec<f32> {
        self.0[name].flatten_all().unwrap().to_vec1().unwrap()
    }
    fn row(&self, name: &str, i: usize) -> Vec<f32> {
        self.0[name].get(i).unwrap().to_vec1().unwrap()
    }
    /// `y = W x + b` with W stored `[out, in]`.
    fn linear(&self, name: &str, x: &[f32]) -> Vec<f32> {
        let w = self.v(&format!("{name}.weight"));
        let b = self.v(&format!("{name}.bias"));
        let n_in = x.len();
        b.iter()
            .enumerate()
            .map(|(o, bo)| {
                bo + (0..n_in).map(|i| w[o * n_in + i] * x[i]).sum::<f32>()
            })
            .collect()
    }
    fn layer_norm(&self, name: &str, x: &[f32]) -> Vec<f32> {
        let (g, b) =
            (self.v(&format!("{name}.weight")), self.v(&format!("{name}.bias")));
        let n = x.len() as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
        x.iter()
            .enumerate()
            .map(|(i, v)| (v - mean) / (var + 1e-12).sqrt() * g[i] + b[i])
            .collect()
    }
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
fn erf(x: f32) -> f32 {
    let (s, x) = (x.signum(), x.abs() as f64);
    let t = 1.0 / (1.0 + 0.3275911 * x);
    let p = t
        * (0.254829592
            + t * (-0.284496736
                + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    s * (1.0 - p * (-x * x).exp()) as f32
}

fn reference_embedding(weights: &HashMap<String, Tensor>, ids: &[u32]) -> Vec<f32> {
    let w = W(weights);
    let (d, h) = (BERT_HIDDEN, BERT_HEADS);
    let hd = d / h;
    let mut x: Vec<Vec<f32>> = ids
        .iter()
        .enumerate()
        .map(|(p, &id)| {
            let e: Vec<f32> = (0..d)
                .map(|j| {
                    w.row("embeddings.word_embeddings.weight", id as usize)[j]
                        + w.row("embeddings.position_embeddings.weight", p)[j]
                        + w.row("embeddings.token_type_embeddings.weight", 0)[j]
                })
                .collect();
            w.layer_norm("embeddings.LayerNorm", &e)
        })
        .collect();
    for l in 0..BERT_LAYERS {
        let p = |s: &str| format!("encoder.layer.{l}.{s}");
        let q: Vec<Vec<f32>> =
            x.iter().map(|t| w.linear(&p("attention.self.query"), t)).collect();
        let k: Vec<Vec<f32>> =
            x.iter().map(|t| w.linear(&p("attention.self.key"), t)).collect();
        let v: Vec<Vec<f32>> =
            x.iter().map(|t| w.linear(&p("attention.self.value"), t)).collect();
        let mut att = vec![vec![0.0f32; d]; x.len()];
        for head in 0..h {
            let r = head * hd..(head + 1) * hd;
            for i in 0..x.len() {
                let s: Vec<f32> = (0..x.len())
                    .map(|j| {
                        r.clone().map(|c| q[i][c] * k[j][c]).sum::<f32>()
                            / (hd as f32).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f32::MIN, f32::max);
                let e: Vec<f32> = s.iter().map(|v| (v - m).exp()).collect();
                let z: f32 = e.iter().sum();
                for c in r.clone() {
                    att[i][c] = (0..x.len()).map(|j| e[j] / z * v[j][c]).sum();
                }
            }
        }
        x = x
            .iter()
            .zip(&att)
            .map(|(xi, ai)| {
                let o = w.linear(&p("attention.output.dense"), ai);
                let hsum: Vec<f32> =
                    xi.iter().zip(&o).map(|(a, b)| a + b).collect();
                let hn = w.layer_norm(&p("attention.output.LayerNorm"), &hsum);
                let f: Vec<f32> = w
                    .linear(&p("intermediate.dense"), &hn)
                    .iter()
                    .map(|&u| 0.5 * u * (1.0 + erf(u / std::f32::consts::SQRT_2)))
                    .collect();
                let y = w.linear(&p("output.dense"), &f);
                let ysum: Vec<f32> =
                    hn.iter().zip(&y).map(|(a, b)| a + b).collect();
                w.layer_norm(&p("output.LayerNorm"), &ysum)
            })
            .collect();
    }
    let mean: Vec<f32> = (0..d)
        .map(|j| x.iter().map(|t| t[j]).sum::<f32>() / x.len() as f32)
        .collect();
    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
    mean.iter().map(|v| v / norm).collect()
}
