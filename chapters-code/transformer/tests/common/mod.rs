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

/// A tensor of `shape` with independent normal entries of standard deviation
/// `std`, from `seed`.
pub fn random(seed: u64, shape: &[usize], std: f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(
        transformer::rng::normal_vec(&mut transformer::rng::seeded(seed), n, std),
        shape,
        &transformer::DEVICE,
    )
    .unwrap()
}

pub fn random_ids(rng: &mut Rng, b: usize, t: usize, vocab: usize) -> Tensor {
    let v: Vec<u32> =
        (0..b * t).map(|_| rng.random_range(0..vocab as u32)).collect();
    Tensor::from_vec(v, (b, t), &transformer::DEVICE).unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    transformer::layers::max_abs_diff(a, b).unwrap()
}
