// Chapter 5, exercise 1: what one input–output pair costs a decoder and an
// encoder-decoder. A reference solution.

use transformer::Config;

/// Per position and layer: the weight matrices of a block (QKV, output, MLP).
fn block(cfg: &Config) -> u64 {
    let (d, hd) = (cfg.d_model as u64, (cfg.d_model / cfg.n_heads) as u64);
    2 * (d * (cfg.n_heads + 2 * cfg.n_kv_heads) as u64 * hd
        + d * d
        + 2 * d * cfg.d_ff as u64)
}

/// Per query and layer: scores and weighted sum over `keys` keys.
fn attend(cfg: &Config, keys: usize) -> u64 {
    4 * keys as u64 * cfg.d_model as u64
}

fn head(cfg: &Config) -> u64 {
    2 * cfg.d_model as u64 * cfg.vocab_size as u64
}

/// Forward FLOPs of a decoder (`cfg.n_layers` layers) on one pair.
pub fn decoder_pair_flops(cfg: &Config, n: usize, m: usize) -> u64 {
    let t = n + m - 1;
    let l = cfg.n_layers as u64;
    t as u64 * (l * (block(cfg) + attend(cfg, t)) + head(cfg))
}

/// Forward FLOPs of an encoder-decoder (`cfg.n_layers` layers in each stack) on one
/// pair.
pub fn encoder_decoder_pair_flops(cfg: &Config, n: usize, m: usize) -> u64 {
    let (d, hd) = (cfg.d_model as u64, (cfg.d_model / cfg.n_heads) as u64);
    let l = cfg.n_layers as u64;
    let encoder = n as u64 * l * (block(cfg) + attend(cfg, n));
    let cross_kv = n as u64 * l * 2 * d * 2 * cfg.n_kv_heads as u64 * hd;
    let per_decoder_token = l
        * (block(cfg) + attend(cfg, m) + 2 * 2 * d * d + attend(cfg, n))
        + head(cfg);
    encoder + cross_kv + m as u64 * per_decoder_token
}
