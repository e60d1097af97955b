//! The one seeded random number generator.
//!
//! candle's CPU generator cannot be seeded, so every random number in the book
//! (data, masking, initialisation) comes from a ChaCha generator built here from an
//! explicit seed.

use rand::{RngCore, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// The generator used everywhere: ChaCha with 8 rounds, fast and reproducible
/// across platforms.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator from a seed. Two calls with the same seed give the same stream.
pub fn seeded(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// An independent stream for one purpose (for example "init" or "data"), derived
/// from a seed and a label, so that adding draws to one stream never shifts
/// another.
pub fn stream(seed: u64, label: &str) -> Rng {
    // FNV-1a over the label, mixed with the seed: stable across platforms and Rust
    // versions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in label.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut r = seeded(seed ^ h);
    // Discard one word so streams with nearby seeds do not start alike.
    r.next_u64();
    r
}

/// `n` samples from N(0, std²) as `f32`.
pub fn normal_vec(rng: &mut Rng, n: usize, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            (z * std) as f32
        })
        .collect()
}

/// `n` samples from N(0, 1) as `f64`, for the linear-algebra experiments.
pub fn normal_vec_f64(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_labels_differ() {
        let a = normal_vec(&mut stream(7, "init"), 16, 1.0);
        let b = normal_vec(&mut stream(7, "init"), 16, 1.0);
        let c = normal_vec(&mut stream(7, "data"), 16, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn normal_samples_have_the_requested_spread() {
        let v = normal_vec(&mut seeded(1), 20_000, 0.5);
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>()
            / v.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.02, "std {}", var.sqrt());
    }
}
