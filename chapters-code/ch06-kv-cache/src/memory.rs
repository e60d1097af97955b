//! Cache memory: multi-head, grouped-query and multi-query attention, ours and
//! published.

use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use transformer::chapter::round_dp;
use transformer::{Config, DecoderOnly, KvCache, ParamStore};
use transformer::{flops, rng};

use crate::*;

// ANCHOR: memory_formula
/// Bytes the KV cache holds per token: a key and a value vector per layer and per
/// key/value head.
pub fn kv_bytes_per_token(
    n_layers: u64,
    n_kv_heads: u64,
    head_dim: u64,
    bytes_per_element: u64,
) -> u64 {
    2 * n_layers * n_kv_heads * head_dim * bytes_per_element
}
// ANCHOR_END: memory_formula

/// A published model's attention shape, as facts.md §5.1 records it.
pub struct Published {
    pub key: &'static str,
    pub name: &'static str,
    pub layers: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub attention: &'static str,
}

/// Configurations from the fact sheet; every one stores its cache in 16-bit floats.
pub const PUBLISHED: [Published; 5] = [
    Published {
        key: "llama3_8b",
        name: "Llama-3-8B",
        layers: 32,
        kv_heads: 8,
        head_dim: 128,
        attention: "GQA-8",
    },
    Published {
        key: "llama3_8b_mha",
        name: "Llama-3-8B with MHA",
        layers: 32,
        kv_heads: 32,
        head_dim: 128,
        attention: "MHA (32)",
    },
    Published {
        key: "llama3_70b",
        name: "Llama-3-70B",
        layers: 80,
        kv_heads: 8,
        head_dim: 128,
        attention: "GQA-8",
    },
    Published {
        key: "gpt3_175b",
        name: "GPT-3 175B",
        layers: 96,
        kv_heads: 96,
        head_dim: 128,
        attention: "MHA (96)",
    },
    Published {
        key: "palm_540b",
        name: "PaLM 540B",
        layers: 118,
        kv_heads: 1,
        head_dim: 256,
        attention: "MQA",
    },
];

/// Cache sizes of one published configuration.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRow {
    pub name: String,
    pub attention: String,
    pub bytes_per_token: u64,
    pub kib_per_token: f64,
    pub gib_at_8k: f64,
    pub gb_at_8k: f64,
    pub gib_at_128k: f64,
}

pub fn memory_table() -> BTreeMap<String, MemoryRow> {
    PUBLISHED
        .iter()
        .map(|p| {
            let b = kv_bytes_per_token(p.layers, p.kv_heads, p.head_dim, 2);
            let gib = |n: u64| round_dp((b * n) as f64 / (1u64 << 30) as f64, 2);
            let row = MemoryRow {
                name: p.name.into(),
                attention: p.attention.into(),
                bytes_per_token: b,
                kib_per_token: round_dp(b as f64 / 1024.0, 1),
                gib_at_8k: gib(8192),
                gb_at_8k: round_dp((b * 8192) as f64 / 1e9, 2),
                gib_at_128k: gib(131_072),
            };
            (p.key.to_string(), row)
        })
        .collect()
}

/// Cache size and step cost of our model with `n_kv_heads` key/value heads.
#[derive(Debug, Clone, Serialize)]
pub struct KvHeadsRow {
    pub n_kv_heads: usize,
    pub kind: String,
    pub params: usize,
    pub bytes_per_token: u64,
    pub cache_bytes_formula: u64,
    /// The sum of `KvCache::bytes` over the layers, after filling the cache.
    pub cache_bytes_measured: u64,
    pub cache_ratio_to_mha: f64,
    pub flops_per_step: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KvHeadsTiming {
    pub n_kv_heads: usize,
    pub ms_per_step: f64,
    pub time_ratio_to_mha: f64,
}

// ANCHOR: kv_heads
/// Build the model with `g` key/value heads, fill its cache with `n` tokens, and
/// measure the cache and one decoding step.
pub fn kv_heads_point(
    base: &Config,
    g: usize,
    n: usize,
    repeats: usize,
    seed: u64,
) -> Result<(KvHeadsRow, f64)> {
    let cfg = Config { n_kv_heads: g, ..base.clone() };
    let store = ParamStore::new(seed);
    let model = DecoderOnly::new(&cfg, store.vb().pp("dec"))?;
    let tokens =
        random_tokens(&mut rng::stream(seed, "kv-heads"), n + 1, cfg.vocab_size);
    let cache = filled_cache(&model, &tokens[..n])?;
    let measured: usize = cache.iter().map(KvCache::bytes).sum();
    let per_token =
        kv_bytes_per_token(cfg.n_layers as u64, g as u64, cfg.head_dim() as u64, 4);
    let newest = ids(&tokens[n..])?;
    let step = || cached_step(&model, &cache, &newest);
    let (_, flops_per_step) = flops::count(step);
    let secs = time_median(repeats, || step().map(drop).map_err(Into::into))?;
    let kind = match g {
        _ if g == cfg.n_heads => "MHA",
        1 => "MQA",
        _ => "GQA",
    };
    let row = KvHeadsRow {
        n_kv_heads: g,
        kind: kind.into(),
        params: store.num_params(),
        bytes_per_token: per_token,
        cache_bytes_formula: per_token * n as u64,
        cache_bytes_measured: measured as u64,
        cache_ratio_to_mha: 0.0,
        flops_per_step,
    };
    Ok((row, secs))
}
// ANCHOR_END: kv_heads
