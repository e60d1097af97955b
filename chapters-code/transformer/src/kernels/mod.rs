//! Fast CPU kernels with hand-written backward passes, for the layers that dominate
//! a training step on a CPU. Each is a candle custom op over contiguous `f32`
//! values:
//!
//! | function | forward | backward |
//! |---|---|---|
//! | [`linear`] | `y = x Wᵀ + b`, one gemm that starts from the bias | `dx = dy W`, `dW = dyᵀ x`, `db = Σ_rows dy` |
//! | [`layer_norm`] | `y = (x − mean) / √(var + ε) · gain + bias` | `dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))`, `dgain = Σ dy · x̂`, `dbias = Σ dy` |
//! | [`softmax`] | `softmax(scale · x + mask)` over the last dimension | `dx = scale · y ⊙ (dy − Σ dy ⊙ y)` |
//! | [`attention`] | `softmax(scale · Q Kᵀ + mask) V` straight from the fused QKV projection | `dV = Pᵀ dO`, `dS = scale · P ⊙ (dP − rowsum(dP ⊙ P))` with `dP = dO Vᵀ`, `dQ = dS K`, `dK = dSᵀ Q` |
//! | [`gelu`] | `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))` | `dy · (0.5 · (1 + t) + 0.5 · x · (1 − t²) · √(2/π) · (1 + 3 · 0.044715 · x²))` |
//! | [`nll`] | `lse(x) − x[target]` per row | `dx = dnll · (softmax(x) − onehot(target))` |
//! | [`AdamWStep`] | one in-place AdamW update of θ, m and v | (an update, no gradient) |
//! | [`sum_of_squares`] | `Σ x²` in `f64` | (no gradient) |
//!
//! One file per op (`linear.rs`, `layer_norm.rs`, `softmax.rs`, `attention.rs`,
//! `gelu.rs`, `cross_entropy.rs`, `adamw.rs`), over `products.rs`: strided
//! matrix views checked against their slices, and `gemm` calls into an output
//! that several tasks write at once, each its own rows or columns. These calls,
//! in `products.rs` and `attention.rs`, are nearly all of the project's `unsafe`
//! code (the rest: [`tune_process`]'s environment variable, `mallopt`, and
//! memory-mapped checkpoint loads); every `unsafe` block says, in a `// SAFETY:`
//! comment, which invariant makes it sound and which check guarantees it.
//!
//! Every entry point checks shapes, lengths, dtypes and head counts and returns an
//! error rather than a wrong answer; zero-size inputs give empty outputs, or an
//! error where the result is undefined (LayerNorm or softmax over an empty
//! dimension). The backward passes are checked in the tests against the plain
//! differentiable implementation and against finite differences.
//!
//! Work is split over rows in fixed-size chunks, and every reduction across rows
//! sums the chunks in a fixed order, so results are bit-identical on any number of
//! threads. The long sums along a row (softmax and cross-entropy normalisers, the
//! softmax backward's dot products) are taken in 16 lanes per block of 1,024
//! entries, the blocks added in `f64`: the loops vectorise, and the sums are more
//! accurate than the plain path's.
//!
//! Non-finite values: a NaN anywhere in a softmax row makes the whole row NaN, as
//! in the plain path. One difference is deliberate: a fully masked row (all −∞)
//! comes out as zeros (it attends to nothing), where the plain path gives NaN.
//!
//! A model runs these kernels when its configuration asks for them: the
//! [`Kernels`] in [`crate::Config::kernels`] (and in
//! [`crate::train::TrainConfig::kernels`] for the optimiser) are read once, when
//! a layer is built, as candle-transformers reads `use_flash_attn`. So the
//! reference forward passes that the book shows contain no switch, and a test
//! compares the two paths by building two models, with no process-wide state.
//! The loss has one implementation, [`nll`]; [`crate::loss::token_nll_reference`]
//! is the same formula in candle operations, for the tests and the benchmark.
//!
//! Speed also depends on two process-wide settings, which change no result:
//! [`tune_process`], called once at the start of the chapter harness's `main`
//! (and the benchmark's).

/// Which fused kernels a model, or the optimiser, runs instead of the reference
/// code written with candle operations. The default, [`Kernels::FUSED`], runs all
/// of them; [`Kernels::PLAIN`] none. Not serialised: it changes speed, and results
/// only in their last bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    /// [`linear`] instead of `candle_nn::Linear`'s matmul and bias add.
    pub linear: bool,
    /// [`layer_norm`] instead of the mean, variance and scaling written out.
    pub layer_norm: bool,
    /// [`softmax`] inside attention (scale, mask and softmax in one pass).
    pub softmax: bool,
    /// [`gelu`] instead of candle's `gelu`.
    pub gelu: bool,
    /// [`attention`] straight from the fused QKV projection, when neither a cache
    /// nor a trace is asked for.
    pub attention: bool,
    /// [`AdamWStep`], one in-place pass, instead of the update in tensor
    /// operations.
    pub adamw: bool,
}

impl Kernels {
    /// Every fused kernel.
    pub const FUSED: Kernels = Kernels {
        linear: true,
        layer_norm: true,
        softmax: true,
        gelu: true,
        attention: true,
        adamw: true,
    };
    /// None: the reference code only.
    pub const PLAIN: Kernels = Kernels {
        linear: false,
        layer_norm: false,
        softmax: false,
        gelu: false,
        attention: false,
        adamw: false,
    };
}

impl Default for Kernels {
    fn default() -> Self {
        Kernels::FUSED
    }
}

/// The two process-wide settings of [`tune_process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Give candle's element-wise pool no extra thread (unless
    /// `CANDLE_NUM_THREADS` is set).
    pub one_candle_thread: bool,
    /// Keep freed memory in the process (glibc only).
    pub keep_freed_memory: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { one_candle_thread: true, keep_freed_memory: true }
    }
}

/// Tune the process for training on a CPU. Results do not change: element-wise
/// operations compute the same values on any number of threads, and the
/// allocator's thresholds only decide when memory goes back to the system.
///
/// - candle 0.11 splits large element-wise operations over its own pool of
///   spinning threads, beside the rayon pool that runs the matrix
///   multiplications (and our kernels). On a machine with two cores the two pools
///   fight over them: a training step took 3 to 4 times longer. So candle's pool
///   gets no extra thread (its element-wise operations run on the calling
///   thread); the matrix multiplications and the fused kernels still use every
///   thread. candle sizes its pool when first used, so this must come before
///   candle's first large element-wise operation.
/// - Every operation allocates its output, and a training step frees and
///   allocates the same few hundred buffers again and again. glibc hands buffers
///   above 128 KiB back to the system when they are freed, so every step paid for
///   fresh pages (about a third of its time went to page faults). Keep freed
///   memory in the process instead.
///
/// candle reads its thread count from `CANDLE_NUM_THREADS`, and setting an
/// environment variable is unsound while another thread may read the
/// environment. So it is set only when this thread is the process's only one
/// (checked in `/proc/self/task`; elsewhere than Linux it is left alone, with a
/// note): call this first thing in `main`. `cargo run` and `cargo test` also get
/// `CANDLE_NUM_THREADS=1` from the workspace's `.cargo/config.toml`, so tests need
/// not call this.
pub fn tune_process(tuning: Tuning) {
    if tuning.keep_freed_memory {
        keep_freed_memory();
    }
    let wanted = tuning.one_candle_thread
        && std::env::var_os("CANDLE_NUM_THREADS").is_none();
    let set = wanted && single_threaded();
    if set {
        // SAFETY: `single_threaded` found this thread alone in the process, and
        // only this thread could start another: no thread can read the environment
        // while it changes.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    } else if wanted {
        eprintln!(
            "tune_process: CANDLE_NUM_THREADS left unset (other threads may run); \
             set it to 1 in the environment for steady speed"
        );
    }
    // Start candle's pool now, so that the setting takes effect here, and say so if
    // a candle operation already started it with more threads.
    let workers = candle_core::utils::barrier_pool().n_workers();
    if set && workers > 0 {
        eprintln!(
            "tune_process: candle's pool started earlier and keeps {workers} extra threads"
        );
    }
}

/// Whether the calling thread is the process's only one: a single entry in
/// `/proc/self/task` (Linux); `false` where that cannot be read.
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1)
}

fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is safe to call at any
    // time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

use std::sync::Mutex;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, InplaceOp2, Layout, Result,
    Shape, Storage, Tensor, bail,
};
use rayon::prelude::*;

mod adamw;
mod attention;
mod cross_entropy;
mod gelu;
mod layer_norm;
mod linear;
mod products;
mod softmax;

use self::products::*;
pub use self::{
    adamw::{AdamWStep, sum_of_squares},
    attention::attention,
    cross_entropy::nll,
    gelu::gelu,
    layer_norm::layer_norm,
    linear::linear,
    softmax::softmax,
};

/// Rows per parallel task. Fixed, so the split (and every sum across rows) never
/// depends on the number of threads.
const ROWS_PER_TASK: usize = 16;
/// Elements per parallel task of the element-wise kernels.
const ELEMS_PER_TASK: usize = 16 * 1024;

/// The contiguous `f32` values of a CPU storage (an error for any other dtype).
fn f32s<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let v = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("fused kernels need contiguous inputs"),
    }
}

/// Run `f` on the contiguous `f32` values of `t`.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => f(f32s(c, l)?),
        _ => bail!("fused kernels run on the CPU"),
    }
}

fn tensor(data: Vec<f32>, shape: &Shape) -> Result<Tensor> {
    Tensor::from_vec(data, shape.clone(), &crate::DEVICE)
}

/// Fail unless `t` holds `f32` values (the kernels compute in `f32` only).
fn check_f32(what: &str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        bail!("fused kernels: {what} is {:?}, expected f32", t.dtype());
    }
    Ok(())
}

/// `eˣ` to about one ulp (Cephes' polynomial on `x − k·ln 2`, then `2ᵏ` from the
/// exponent bits), branch-free so that loops over it vectorise. Exactly 0 below −87
/// (masked entries); NaN for NaN.
#[inline(always)]
fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let xc = x.clamp(-87.0, 88.0);
    // Round to the nearest integer with the 1.5 · 2²³ trick (no `round` call
    // needed).
    let k = (xc * LOG2E + 12_582_912.0) - 12_582_912.0;
    let r = xc - k * 0.693_359_4 - k * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((k as i32 + 127) << 23) as u32);
    if x < -87.0 { 0.0 } else { y * scale }
}

/// Lanes of the long sums along a row. A sequential `f32` sum neither vectorises
/// (the adds must run in order) nor stays accurate (its error grows with the row
/// length: 1.1e-4 on a softmax row of 65,536 entries). Sixteen independent `f32`
/// partial sums within blocks of [`BLOCK`] entries (64 adds per lane), the blocks
/// then added in `f64`, do both.
const LANES: usize = 16;
/// Entries per block of the long sums.
const BLOCK: usize = 1024;

/// The lanes added pairwise.
#[inline(always)]
fn reduce_lanes(mut acc: [f32; LANES]) -> f32 {
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0]
}

/// `Σ f(x)` over `xs`, in [`LANES`] partial sums per [`BLOCK`].
#[inline(always)]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut total = 0f64;
    for block in xs.chunks(BLOCK) {
        let mut acc = [0f32; LANES];
        let mut chunks = block.chunks_exact(LANES);
        for c in &mut chunks {
            for i in 0..LANES {
                acc[i] += f(c[i]);
            }
        }
        for (a, &x) in acc.iter_mut().zip(chunks.remainder()) {
            *a += f(x);
        }
        total += f64::from(reduce_lanes(acc));
    }
    total as f32
}

/// `Σ a ⊙ b`, in [`LANES`] partial sums per [`BLOCK`].
#[inline(always)]
fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut total = 0f64;
    for (a, b) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        let mut acc = [0f32; LANES];
        let (mut ca, mut cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        for (ca, cb) in (&mut ca).zip(&mut cb) {
            for i in 0..LANES {
                acc[i] += ca[i] * cb[i];
            }
        }
        for ((s, &a), &b) in acc.iter_mut().zip(ca.remainder()).zip(cb.remainder())
        {
            *s += a * b;
        }
        total += f64::from(reduce_lanes(acc));
    }
    total as f32
}

/// `v ← exp(v − max)` for every entry of `row`; returns their sum (as [`lane_sum`]
/// does).
#[inline(always)]
fn exp_in_place_sum(row: &mut [f32], max: f32) -> f32 {
    let mut total = 0f64;
    for block in row.chunks_mut(BLOCK) {
        let mut acc = [0f32; LANES];
        let mut chunks = block.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for i in 0..LANES {
                c[i] = exp_fast(c[i] - max);
                acc[i] += c[i];
            }
        }
        for (a, v) in acc.iter_mut().zip(chunks.into_remainder()) {
            *v = exp_fast(*v - max);
            *a += *v;
        }
        total += f64::from(reduce_lanes(acc));
    }
    total as f32
}

/// The largest entry of `row`, ignoring NaN (−∞ for an empty row or one of only NaN
/// and −∞), in [`LANES`] running maxima so that the loop vectorises (the result
/// does not depend on the order).
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    for (a, &x) in acc.iter_mut().zip(chunks.remainder()) {
        *a = a.max(x);
    }
    acc.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// One row of attention scores: scale, add the additive mask row (if any), then
/// softmax.
#[inline]
fn scale_mask_softmax(row: &mut [f32], scale: f32, mask: Option<&[f32]>) {
    match mask {
        Some(m) => row.iter_mut().zip(m).for_each(|(v, m)| *v = *v * scale + m),
        None => row.iter_mut().for_each(|v| *v *= scale),
    }
    softmax_in_place(row);
}

/// `row ← softmax(row)` in place. A row with a NaN becomes all NaN (as in the plain
/// path; a NaN fails every comparison, so `row_max` skips it, and `exp_fast` then
/// spreads it through the sum); a row that is entirely −∞ (fully masked) becomes
/// zeros, where the plain path gives NaN.
fn softmax_in_place(row: &mut [f32]) {
    let max = row_max(row);
    if max == f32::NEG_INFINITY {
        let fill = if row.iter().any(|v| v.is_nan()) { f32::NAN } else { 0.0 };
        row.fill(fill);
        return;
    }
    let inv = 1.0 / exp_in_place_sum(row, max);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `exp_fast` is within 2 ulp of `exp` over the whole range it computes
    /// (−87 to 88; softmax and cross-entropy only pass it `x − max ≤ 0`), on a grid
    /// that crosses every power of two many times; exactly 0 below −87; NaN for NaN.
    #[test]
    fn exp_fast_is_exp_to_two_ulp() {
        let mut worst = (0f64, 0f32);
        for i in 0..=175_000 {
            let x = (-87.0 + i as f32 * 0.001).min(88.0);
            let want = f64::from(x).exp();
            let got = f64::from(exp_fast(x));
            let ulp = f64::from(f32::EPSILON) * want;
            let e = (got - want).abs() / ulp;
            if e > worst.0 {
                worst = (e, x);
            }
        }
        let (worst, at) = worst;
        assert!(worst <= 2.0, "exp_fast is {worst:.2} ulp from exp at {at}");
        let at_edge = f64::from(exp_fast(-87.0));
        assert!((at_edge / (-87f64).exp() - 1.0).abs() < 1e-6, "{at_edge:e}");
        assert_eq!(exp_fast(-87.001), 0.0);
        assert_eq!(exp_fast(f32::NEG_INFINITY), 0.0);
        assert!(exp_fast(f32::NAN).is_nan());
    }

    /// The pairwise reduction adds every lane once.
    #[test]
    fn reduce_lanes_adds_every_lane() {
        let acc: [f32; LANES] = std::array::from_fn(|i| (1u32 << i) as f32);
        assert_eq!(reduce_lanes(acc), ((1u32 << LANES) - 1) as f32);
    }
}
