//! The matrix multiplications alone: the machine's GEMM peak (a 512³ `f32`
//! product with the `gemm` crate the library uses) and the products of one
//! training step of the reference model, each timed alone at its shape. Their sum
//! estimates how long a step must spend multiplying matrices, whatever else is
//! fused. An estimate, not an exact floor: each product here runs on its own, on
//! every thread, with contiguous operands, where the library runs a linear
//! layer's two backward products side by side and reads the attention's heads
//! with strides.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// One matrix product `m × k` by `k × n`, with the operands' memory layouts the
/// library's kernels use.
#[derive(Debug, Clone, Copy)]
struct Shape {
    what: &'static str,
    m: usize,
    n: usize,
    k: usize,
    /// The left operand is stored transposed (column-major), as `dyᵀ` in `dW = dyᵀ
    /// x`.
    lhs_t: bool,
    /// The right operand is stored transposed, as `Wᵀ` in `y = x Wᵀ`.
    rhs_t: bool,
    /// How many such products one training step runs.
    per_step: usize,
    /// One of many small products that run side by side, each on one thread (the
    /// attention's per-head products), rather than one product on every thread.
    small: bool,
}

/// What the `gemm` mode measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GemmResult {
    /// The kernel family `gemm` picks on this processor.
    pub kernel: String,
    /// GFLOP/s of a 512³ product on one thread and on every thread.
    pub peak_1_thread: f64,
    pub peak: f64,
    /// Milliseconds one training step spends in its products, each timed alone at
    /// its shape, and the GFLOP/s that makes: with the operands in cache (repeated
    /// products), and cold (the large products' operands evicted from this
    /// thread's caches before each run; a rough bound, since the other core's
    /// caches are left as they are).
    pub step_ms: f64,
    pub step_gflops: f64,
    pub step_ms_cold: f64,
    pub rows: Vec<GemmRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GemmRow {
    pub what: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub per_step: usize,
    /// On every thread, or on one for the small per-head products (which run
    /// side by side).
    pub gflops: f64,
}

/// The kernel family `gemm` selects at run time on this processor.
pub fn kernel() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return "AVX2";
        }
    }
    "generic"
}

/// The model whose training step is measured.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub batch: usize,
    pub seq: usize,
    pub d: usize,
    pub heads: usize,
    pub d_ff: usize,
    pub vocab: usize,
    pub layers: usize,
}

impl Model {
    /// The model of `cfg`, trained on batches of `batch` sequences of `seq` tokens.
    pub fn of(cfg: &transformer::Config, batch: usize, seq: usize) -> Self {
        Model {
            batch,
            seq,
            d: cfg.d_model,
            heads: cfg.n_heads,
            d_ff: cfg.d_ff,
            vocab: cfg.vocab_size,
            layers: cfg.n_layers,
        }
    }
}

/// The products of one training step of `m` (with a separate output head, as in
/// `Config::tiny`), in the library's operand layouts.
fn step_shapes(m: Model) -> Vec<Shape> {
    let rows = m.batch * m.seq;
    let linear = |what, d_in: usize, d_out: usize, per_step| {
        let big = |m, n, k, lhs_t, rhs_t| Shape {
            what,
            m,
            n,
            k,
            lhs_t,
            rhs_t,
            per_step,
            small: false,
        };
        // y = x Wᵀ, dx = dy W, dW = dyᵀ x.
        [
            big(rows, d_out, d_in, false, true),
            big(rows, d_in, d_out, false, false),
            big(d_out, d_in, rows, true, false),
        ]
    };
    let (t, hd) = (m.seq, m.d / m.heads);
    let per_head = m.batch * m.heads * m.layers;
    let head = |m, n, k, lhs_t, rhs_t| Shape {
        what: "attention",
        m,
        n,
        k,
        lhs_t,
        rhs_t,
        per_step: per_head,
        small: true,
    };
    [
        linear("qkv", m.d, 3 * m.d, m.layers).to_vec(),
        linear("out", m.d, m.d, m.layers).to_vec(),
        linear("mlp up", m.d, m.d_ff, m.layers).to_vec(),
        linear("mlp down", m.d_ff, m.d, m.layers).to_vec(),
        linear("head", m.d, m.vocab, 1).to_vec(),
        // Per (sequence, head): S = Q Kᵀ and O = P V; dV = Pᵀ dO, dP = dO Vᵀ,
        // dQ = dS K, dK = dSᵀ Q.
        vec![
            head(t, t, hd, false, true),
            head(t, hd, t, false, false),
            head(t, hd, t, true, false),
            head(t, t, hd, false, true),
            head(t, hd, t, false, false),
            head(t, hd, t, true, false),
        ],
    ]
    .concat()
}

/// Bytes written between the runs of a cold measurement: more than the caches
/// this product's operands could stay in.
const EVICT_BYTES: usize = 64 << 20;

/// Operands of `s`'s shape and layout, filled with small repeating values.
fn operands(s: &Shape) -> (Vec<f32>, Vec<f32>) {
    let lhs = (0..s.m * s.k).map(|i| (i % 7) as f32 * 0.1).collect();
    let rhs = (0..s.k * s.n).map(|i| (i % 5) as f32 * 0.1).collect();
    (lhs, rhs)
}

/// `dst (m × n, row-major) = lhs · rhs`, the operands laid out as `s` says, on
/// `threads` threads.
fn product(s: &Shape, lhs: &[f32], rhs: &[f32], dst: &mut [f32], threads: usize) {
    let (m, n, k) = (s.m, s.n, s.k);
    assert!(lhs.len() == m * k && rhs.len() == k * n && dst.len() == m * n);
    // (row stride, column stride) of each operand.
    let (lrs, lcs) = if s.lhs_t { (1, m) } else { (k, 1) };
    let (rrs, rcs) = if s.rhs_t { (1, k) } else { (n, 1) };
    let par = match threads {
        1 => gemm::Parallelism::None,
        t => gemm::Parallelism::Rayon(t),
    };
    // SAFETY: `lhs` holds m·k values and `rhs` k·n (asserted), and the strides
    // address exactly those; `dst` holds m·n values with row stride n and is
    // borrowed exclusively, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lcs as isize,
            lrs as isize,
            rhs.as_ptr(),
            rcs as isize,
            rrs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    };
}

/// Seconds of the best of `reps` runs of one product on `threads` threads; with
/// `cold`, [`EVICT_BYTES`] are written before each run, so its operands come from
/// memory, as they mostly do inside a training step.
fn time_product(s: &Shape, threads: usize, reps: usize, cold: bool) -> f64 {
    let (lhs, rhs) = operands(s);
    let mut dst = vec![0f32; s.m * s.n];
    let mut evict = vec![0u8; if cold { EVICT_BYTES } else { 0 }];
    let mut best = f64::INFINITY;
    for r in 0..reps {
        // One byte per 64-byte cache line is enough to claim the line.
        for (i, b) in evict.iter_mut().enumerate().step_by(64) {
            *b = b.wrapping_add((i + r) as u8);
        }
        std::hint::black_box(&evict);
        let start = Instant::now();
        product(s, &lhs, &rhs, &mut dst, threads);
        best = best.min(start.elapsed().as_secs_f64());
    }
    std::hint::black_box(&dst);
    best
}

fn gflops(s: &Shape, secs: f64) -> f64 {
    2.0 * (s.m * s.n * s.k) as f64 / secs / 1e9
}

/// Measure the peak and the step's products on `threads` threads.
pub fn measure(model: Model, threads: usize) -> GemmResult {
    let cube = Shape {
        what: "512³",
        m: 512,
        n: 512,
        k: 512,
        lhs_t: false,
        rhs_t: false,
        per_step: 0,
        small: false,
    };
    let peak_1_thread = gflops(&cube, time_product(&cube, 1, 20, false));
    let peak = gflops(&cube, time_product(&cube, threads, 20, false));
    let shapes = step_shapes(model);
    let (mut step_secs, mut cold_secs) = (0.0, 0.0);
    let mut step_flops = 0.0;
    let rows = shapes
        .iter()
        .map(|s| {
            // The small products run on one thread each, `threads` at a time.
            let (on, reps, share) = match s.small {
                true => (1, 200, 1.0 / threads as f64),
                false => (threads, 50, 1.0),
            };
            let secs = time_product(s, on, reps, false);
            step_secs += secs * s.per_step as f64 * share;
            // The per-head products read what the head's previous product just
            // wrote: they stay warm in the cold estimate too.
            let cold = if s.small { secs } else { time_product(s, on, 5, true) };
            cold_secs += cold * s.per_step as f64 * share;
            step_flops += 2.0 * (s.m * s.n * s.k * s.per_step) as f64;
            GemmRow {
                what: s.what.to_string(),
                m: s.m,
                n: s.n,
                k: s.k,
                per_step: s.per_step,
                gflops: gflops(s, secs),
            }
        })
        .collect();
    GemmResult {
        kernel: kernel().to_string(),
        peak_1_thread,
        peak,
        step_ms: step_secs * 1e3,
        step_gflops: step_flops / step_secs / 1e9,
        step_ms_cold: cold_secs * 1e3,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;
    use transformer::{Config, DEVICE, DecoderOnly, MaskKind, ParamStore};

    /// Every layout gives the product a plain triple loop computes.
    #[test]
    fn products_read_their_operands_in_the_layouts_given() {
        for (lhs_t, rhs_t) in
            [(false, false), (false, true), (true, false), (true, true)]
        {
            let s = Shape {
                what: "t",
                m: 5,
                n: 3,
                k: 4,
                lhs_t,
                rhs_t,
                per_step: 1,
                small: false,
            };
            let (lhs, rhs) = operands(&s);
            let mut dst = vec![0f32; 15];
            product(&s, &lhs, &rhs, &mut dst, 1);
            let a = |i: usize, p: usize| {
                if lhs_t { lhs[p * s.m + i] } else { lhs[i * s.k + p] }
            };
            let b = |p: usize, j: usize| {
                if rhs_t { rhs[j * s.k + p] } else { rhs[p * s.n + j] }
            };
            for i in 0..s.m {
                for j in 0..s.n {
                    let want: f32 = (0..s.k).map(|p| a(i, p) * b(p, j)).sum();
                    assert!(
                        (dst[i * s.n + j] - want).abs() < 1e-5,
                        "{lhs_t} {rhs_t} ({i}, {j})"
                    );
                }
            }
        }
    }

    /// The products listed for a step are the model's: three times the FLOPs its
    /// forward pass counts (forward, and two products in the backward pass).
    #[test]
    fn the_listed_products_are_three_times_the_forward_pass() {
        let cfg = Config::tiny();
        let store = ParamStore::new(0);
        let model = DecoderOnly::new(&cfg, store.vb().pp("gpt")).unwrap();
        let (batch, seq) = (2, cfg.max_len);
        let ids =
            Tensor::zeros((batch, seq), candle_core::DType::U32, &DEVICE).unwrap();
        let ((), forward) = transformer::flops::count(|| {
            model.forward(&ids, &MaskKind::Causal).unwrap();
        });
        let m = Model::of(&cfg, batch, seq);
        let shapes = step_shapes(m);
        let listed: usize =
            shapes.iter().map(|s| 2 * s.m * s.n * s.k * s.per_step).sum();
        assert_eq!(listed as u64, 3 * forward);
        // And each linear layer's three products have the right shapes and layouts:
        // y = x Wᵀ, dx = dy W, dW = dyᵀ x.
        let rows = batch * seq;
        let up: Vec<_> = shapes
            .iter()
            .filter(|s| s.what == "mlp up")
            .map(|s| (s.m, s.n, s.k, s.lhs_t, s.rhs_t))
            .collect();
        let (d, f) = (cfg.d_model, cfg.d_ff);
        assert_eq!(
            up,
            [
                (rows, f, d, false, true),
                (rows, d, f, false, false),
                (f, d, rows, true, false)
            ]
        );
    }
}
