//! Shared helpers for the integration tests (not a test file of its own).
#![allow(dead_code)]

use candle_core::Tensor;
use rand::Rng as _;
use transformer::rng::Rng;
use transformer::{Config, PositionKind};

pub fn small(positions: PositionKind, tie: bool, n_kv_heads: usize) -> Config {
    Config {
        vocab_size: 23,
        d_model: 16,
        n_heads: 4,
        n_kv_heads,
        d_ff: 32,
        n_layers: 2,
        max_len: 24,
        positions,
        tie_embeddings: tie,
        kernels: Default::default(),
    }
}

pub fn random_ids(rng: &mut Rng, b: usize, t: usize, vocab: usize) -> Tensor {
    let v: Vec<u32> =
        (0..b * t).map(|_| rng.random_range(0..vocab as u32)).collect();
    Tensor::from_vec(v, (b, t), &transformer::DEVICE).unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}
