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
//! Each kernel is a [`Lever`] that can be switched off, so the benchmark can
//! measure what each one buys and the tests can compare the two paths.

use std::sync::atomic::{AtomicU32, Ordering};

/// One optimisation that can be switched on or off at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lever {
    /// No extra threads for candle's element-wise operations (see
    /// [`configure_threads`]). Process-wide: it takes effect when the first
    /// [`crate::ParamStore`] is created.
    CandleThreads,
    /// Keep freed memory in the process (see [`configure_threads`]); also
    /// process-wide.
    KeepMemory,
    Linear,
    LayerNorm,
    Softmax,
    Gelu,
    CrossEntropy,
    AdamW,
    /// Attention straight from the fused QKV projection's output, no head permutes
    /// or copies.
    Attention,
}

impl Lever {
    /// Every lever, in the order the benchmark switches them on.
    pub const ALL: [Lever; 9] = [
        Lever::CandleThreads,
        Lever::KeepMemory,
        Lever::Linear,
        Lever::LayerNorm,
        Lever::Softmax,
        Lever::Gelu,
        Lever::CrossEntropy,
        Lever::AdamW,
        Lever::Attention,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Lever::CandleThreads => "candle_threads",
            Lever::KeepMemory => "keep_memory",
            Lever::Linear => "linear",
            Lever::LayerNorm => "layer_norm",
            Lever::Softmax => "softmax",
            Lever::Gelu => "gelu",
            Lever::CrossEntropy => "cross_entropy",
            Lever::AdamW => "adamw",
            Lever::Attention => "attention",
        }
    }

    /// The lever called `name`.
    pub fn from_name(name: &str) -> Option<Lever> {
        Lever::ALL.into_iter().find(|l| l.name() == name)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

static ENABLED: AtomicU32 = AtomicU32::new(u32::MAX);

/// Is this lever switched on? (All are, unless switched off.)
pub fn enabled(lever: Lever) -> bool {
    ENABLED.load(Ordering::Relaxed) & lever.bit() != 0
}

/// Switch one lever on or off, for the whole process.
pub fn set(lever: Lever, on: bool) {
    if on {
        ENABLED.fetch_or(lever.bit(), Ordering::Relaxed);
    } else {
        ENABLED.fetch_and(!lever.bit(), Ordering::Relaxed);
    }
}

/// candle 0.11 splits large element-wise operations over its own pool of spinning
/// threads, beside the rayon pool that runs the matrix multiplications (and our
/// kernels). On a machine with two cores, the two pools fight over them: a training
/// step took 3 to 4 times longer. Unless the environment says otherwise, give
/// candle's pool no extra thread (its element-wise operations then run on the
/// calling thread); the matrix multiplications and the fused kernels still use
/// every thread. This must happen before candle's first large element-wise
/// operation, so [`crate::ParamStore::new`] calls it. Results do not change:
/// element-wise operations compute the same values on any number of threads.
pub fn configure_threads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if enabled(Lever::KeepMemory) {
            keep_freed_memory();
        }
        let wanted = enabled(Lever::CandleThreads) && std::env::var_os("CANDLE_NUM_THREADS").is_none();
        if wanted {
            // SAFETY: `set_var` is unsound only if another thread reads the
            // environment at the same time without std's lock (through libc's
            // `getenv`). This runs once (`ONCE`), from `ParamStore::new`; the
            // threads that may exist then (rayon's workers, other test threads) run
            // code from candle, rayon, gemm and this crate, which reads the
            // environment only through `std::env`, under the same lock as
            // `set_var`.
            unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
        }
        // candle sizes its pool when it is first used: start it now, so that the
        // setting takes effect here, and say so if a candle operation already
        // started it with more threads.
        let workers = candle_core::utils::barrier_pool().n_workers();
        if wanted && workers > 0 {
            eprintln!("configure_threads: candle's pool started earlier and keeps {workers} extra threads");
        }
    });
}

/// Every operation allocates its output, and a training step frees and allocates
/// the same few hundred buffers again and again. glibc hands buffers above 128 KiB
/// back to the system when they are freed, so every step paid for fresh pages
/// (about a third of its time went to page faults). Keep freed memory in the
/// process instead (glibc only; elsewhere nothing).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is safe to call at any
    // time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Switch every lever on or off.
pub fn set_all(on: bool) {
    ENABLED.store(if on { u32::MAX } else { 0 }, Ordering::Relaxed);
}

use std::sync::Mutex;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, InplaceOp2, Layout, Result,
    Shape, Storage, Tensor, bail,
};
use rayon::prelude::*;

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

/// LayerNorm over the last dimension: `y = (x − mean) / √(var + ε) · gain + bias`.
struct LayerNormOp {
    eps: f32,
}

/// Mean and 1/√(var + ε) of one row, in the same order of operations as the plain
/// version.
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = x.iter().sum::<f32>() / d;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
    (mean, 1.0 / (var + eps).sqrt())
}

/// The width `d` of a LayerNorm over `x` with these gain and bias; an error unless
/// `x` ends in `d > 0` and gain and bias hold `d` values each.
fn layer_norm_width(x: &[usize], gain: &Shape, bias: &Shape) -> Result<usize> {
    let d = gain.elem_count();
    if d == 0 || bias.elem_count() != d || x.last() != Some(&d) {
        bail!(
            "layer norm: input {x:?}, gain {gain:?} and bias {bias:?} do not fit (d > 0 needed)"
        );
    }
    Ok(d)
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = layer_norm_width(xl.dims(), gl.shape(), bl.shape())?;
        let (x, g, b) = (f32s(xs, xl)?, f32s(gs, gl)?, f32s(bs, bl)?);
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(x.par_chunks(d * ROWS_PER_TASK))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_mut(d).zip(x.chunks(d)) {
                    let (mean, rstd) = row_stats(x, self.eps);
                    for i in 0..d {
                        y[i] = (x[i] - mean) * rstd * g[i] + b[i];
                    }
                }
            });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    /// `dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))` with `dx̂ = dy ·
    /// gain`; `dgain = Σ dy · x̂`, `dbias = Σ dy` over rows, each in its
    /// parameter's shape.
    fn bwd(
        &self,
        x: &Tensor,
        gain: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let eps = self.eps;
        let d = layer_norm_width(x.dims(), gain.shape(), bias.shape())?;
        let (dx, dg, db) = with_f32(x, |x| {
            with_f32(gain, |g| {
                with_f32(dy, |dy| {
                    let mut dx = vec![0f32; x.len()];
                    let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
                        .par_chunks_mut(d * ROWS_PER_TASK)
                        .zip(
                            x.par_chunks(d * ROWS_PER_TASK)
                                .zip(dy.par_chunks(d * ROWS_PER_TASK)),
                        )
                        .map(|(dx, (x, dy))| {
                            let (mut dg, mut db) = (vec![0f32; d], vec![0f32; d]);
                            for ((dx, x), dy) in
                                dx.chunks_mut(d).zip(x.chunks(d)).zip(dy.chunks(d))
                            {
                                let (mean, rstd) = row_stats(x, eps);
                                let (mut s1, mut s2) = (0f32, 0f32);
                                for i in 0..d {
                                    let xhat = (x[i] - mean) * rstd;
                                    let dxhat = dy[i] * g[i];
                                    s1 += dxhat;
                                    s2 += dxhat * xhat;
                                    dg[i] += dy[i] * xhat;
                                    db[i] += dy[i];
                                }
                                let (m1, m2) = (s1 / d as f32, s2 / d as f32);
                                for i in 0..d {
                                    let xhat = (x[i] - mean) * rstd;
                                    dx[i] = rstd * (dy[i] * g[i] - m1 - xhat * m2);
                                }
                            }
                            (dg, db)
                        })
                        .collect();
                    let (mut dg, mut db) = (vec![0f32; d], vec![0f32; d]);
                    for (pg, pb) in &partial {
                        for i in 0..d {
                            dg[i] += pg[i];
                            db[i] += pb[i];
                        }
                    }
                    Ok((dx, dg, db))
                })
            })
        })?;
        Ok((
            Some(tensor(dx, x.shape())?),
            Some(tensor(dg, gain.shape())?),
            Some(tensor(db, bias.shape())?),
        ))
    }
}

/// Fused LayerNorm over the last dimension of `x`, with a hand-written backward
/// pass. `gain` and `bias` hold `d` values each (`[d]` or `[1, d]`), `d` the last
/// dimension of `x`, `d > 0`.
pub fn layer_norm(
    x: &Tensor,
    gain: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    layer_norm_width(x.dims(), gain.shape(), bias.shape())?;
    for (what, t) in [("the input", x), ("the gain", gain), ("the bias", bias)] {
        check_f32(what, t)?;
    }
    x.contiguous()?.apply_op3(
        &gain.contiguous()?,
        &bias.contiguous()?,
        LayerNormOp { eps: eps as f32 },
    )
}

/// `softmax(scale · x + mask)` over the last dimension of `x` (`[.., t_q, t_k]`).
/// The additive mask (0 or −∞) has shape `[rows, n, t_q, t_k]` with `rows` 1 or the
/// batch size and `n` 1 or the number of heads.
struct SoftmaxOp {
    scale: f32,
    mask: Option<Tensor>,
}

/// How the rows of a softmax input meet its mask.
#[derive(Clone, Copy)]
struct SoftmaxRows {
    t_q: usize,
    t_k: usize,
    /// Rows of scores per batch row (heads · `t_q`).
    per_batch: usize,
    /// Mask matrices per batch: 1 (shared by every batch row) or the batch size.
    mask_rows: usize,
    /// Mask matrices per batch row: 1 (shared by every head) or the number of
    /// heads.
    mask_heads: usize,
}

impl SoftmaxRows {
    /// The layout of scores `x` (`[t_k]`, `[t_q, t_k]`, `[n, t_q, t_k]` or `[.., h,
    /// t_q, t_k]`) and, if given, of the mask: `[t_q, t_k]` or `[m, n, t_q, t_k]`
    /// with `m` 1 or the batch size (the product of the dimensions before the
    /// heads; 1 below rank 4) and `n` 1 or the number of heads.
    fn new(x: &[usize], mask: Option<&[usize]>) -> Result<Self> {
        let (t_q, t_k) = match *x {
            [] => bail!("fused softmax: a scalar has no last dimension"),
            [t_k] => (1, t_k),
            [.., t_q, t_k] => (t_q, t_k),
        };
        if t_k == 0 {
            bail!(
                "fused softmax: no keys (input {x:?}); a softmax over nothing is undefined"
            );
        }
        let (batch, heads, per_batch) = match x.len() {
            4.. => (
                x[..x.len() - 3].iter().product(),
                x[x.len() - 3],
                x[x.len() - 3] * t_q,
            ),
            _ => (1, 1, x.iter().product::<usize>() / t_k),
        };
        let (mask_rows, mask_heads) = match mask {
            None => (1, 1),
            Some(&[q, k]) if (q, k) == (t_q, t_k) => (1, 1),
            Some(&[m, n, q, k])
                if (q, k) == (t_q, t_k)
                    && (m == 1 || m == batch)
                    && (n == 1 || n == heads) =>
            {
                (m, n)
            }
            Some(m) => bail!("fused softmax: mask {m:?} does not fit scores {x:?}"),
        };
        Ok(SoftmaxRows { t_q, t_k, per_batch, mask_rows, mask_heads })
    }

    /// The mask row of score row `row` (rows ordered `[batch, head, query]`).
    fn mask_row<'a>(&self, mask: &'a [f32], row: usize) -> &'a [f32] {
        let b = if self.mask_rows == 1 { 0 } else { row / self.per_batch };
        let h =
            if self.mask_heads == 1 { 0 } else { row % self.per_batch / self.t_q };
        &mask[((b * self.mask_heads + h) * self.t_q + row % self.t_q) * self.t_k..]
            [..self.t_k]
    }
}

fn softmax_rows(
    x: &[f32],
    mask: Option<&[f32]>,
    scale: f32,
    rows: SoftmaxRows,
) -> Vec<f32> {
    let t_k = rows.t_k;
    let mut y = x.to_vec();
    let rows_per_task = ROWS_PER_TASK * 4;
    y.par_chunks_mut(t_k * rows_per_task).enumerate().for_each(|(task, y)| {
        for (r, y) in y.chunks_mut(t_k).enumerate() {
            let m = mask.map(|m| rows.mask_row(m, task * rows_per_task + r));
            scale_mask_softmax(y, scale, m);
        }
    });
    y
}

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l)?;
        let rows =
            SoftmaxRows::new(l.dims(), self.mask.as_ref().map(|m| m.dims()))?;
        let y = match &self.mask {
            Some(m) => {
                with_f32(m, |m| Ok(softmax_rows(x, Some(m), self.scale, rows)))?
            }
            None => softmax_rows(x, None, self.scale, rows),
        };
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    /// `dx = scale · y ⊙ (dy − Σ dy ⊙ y)` per row.
    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let t_k = SoftmaxRows::new(x.dims(), None)?.t_k;
        let scale = self.scale;
        let dx = with_f32(y, |y| {
            with_f32(dy, |dy| {
                let mut dx = vec![0f32; y.len()];
                let chunk = t_k * ROWS_PER_TASK * 4;
                dx.par_chunks_mut(chunk)
                    .zip(y.par_chunks(chunk).zip(dy.par_chunks(chunk)))
                    .for_each(|(dx, (y, dy))| {
                        for ((dx, y), dy) in dx
                            .chunks_mut(t_k)
                            .zip(y.chunks(t_k))
                            .zip(dy.chunks(t_k))
                        {
                            let dot = lane_dot(y, dy);
                            for j in 0..t_k {
                                dx[j] = scale * y[j] * (dy[j] - dot);
                            }
                        }
                    });
                Ok(dx)
            })
        })?;
        Ok(Some(tensor(dx, x.shape())?))
    }
}

/// Fused `softmax(scale · x + mask)` over the last dimension, with a hand-written
/// backward. `x` is `[.., t_q, t_k]` with `t_k > 0`; the mask, if any, `[t_q, t_k]`
/// or `[m, n, t_q, t_k]` with `m` 1 or the batch size (for `x` of rank 4 or more,
/// the product of the dimensions before the heads) and `n` 1 or the number of
/// heads. Fully masked rows give zeros, where the plain path gives NaN.
pub fn softmax(x: &Tensor, scale: f64, mask: Option<&Tensor>) -> Result<Tensor> {
    SoftmaxRows::new(x.dims(), mask.map(|m| m.dims()))?;
    check_f32("the scores", x)?;
    if let Some(m) = mask {
        check_f32("the mask", m)?;
    }
    let mask = mask.map(|m| m.contiguous()).transpose()?;
    x.contiguous()?.apply_op1(SoftmaxOp { scale: scale as f32, mask })
}

/// `tanh`, as a rational approximation accurate to a few ulps in `f32` (the one
/// Eigen uses), branch-free so the compiler can vectorise it.
#[inline(always)]
fn tanh_fast(x: f32) -> f32 {
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = x2 * -2.760_768_5e-16 + 2.000_188e-13;
    p = x2 * p + -8.604_672e-11;
    p = x2 * p + 5.122_297e-8;
    p = x2 * p + 1.485_722_4e-5;
    p = x2 * p + 6.372_619_3e-4;
    p = x2 * p + 4.893_524_6e-3;
    p *= x;
    let mut q = x2 * 1.198_258_4e-6 + 1.185_347e-4;
    q = x2 * q + 2.268_434_6e-3;
    q = x2 * q + 4.893_525e-3;
    p / q
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

/// GELU with the tanh approximation: `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 ·
/// x³)))`.
struct GeluOp;

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l)?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(ELEMS_PER_TASK)
            .zip(x.par_chunks(ELEMS_PER_TASK))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = 0.5
                        * x
                        * (1.0
                            + tanh_fast(
                                SQRT_2_OVER_PI * x * (1.0 + GELU_C * x * x),
                            ));
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    /// `dy · (0.5 · (1 + t) + 0.5 · x · (1 − t²) · √(2/π) · (1 + 3 · 0.044715 ·
    /// x²))`.
    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_f32(x, |x| {
            with_f32(dy, |dy| {
                let mut dx = vec![0f32; x.len()];
                dx.par_chunks_mut(ELEMS_PER_TASK)
                    .zip(
                        x.par_chunks(ELEMS_PER_TASK)
                            .zip(dy.par_chunks(ELEMS_PER_TASK)),
                    )
                    .for_each(|(dx, (x, dy))| {
                        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                            let t = tanh_fast(
                                SQRT_2_OVER_PI * x * (1.0 + GELU_C * x * x),
                            );
                            let dt = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
                            *dx = dy
                                * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dt);
                        }
                    });
                Ok(dx)
            })
        })?;
        Ok(Some(tensor(dx, x.shape())?))
    }
}

/// Fused tanh-GELU with a hand-written backward pass.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    check_f32("the input", x)?;
    x.contiguous()?.apply_op1(GeluOp)
}

/// Negative log-likelihood of each target under `softmax(logits)`: `lse(x) −
/// x[target]`.
struct NllOp;

/// The vocabulary size of `logits` (`[.., v]`, `v > 0`), with `targets` shaped
/// `[..]`.
fn nll_vocab(logits: &[usize], targets: &[usize]) -> Result<usize> {
    match logits.split_last() {
        Some((&v, rows)) if v > 0 && rows == targets => Ok(v),
        _ => {
            bail!("cross-entropy: targets {targets:?} do not fit logits {logits:?}")
        }
    }
}

impl CustomOp2 for NllOp {
    fn name(&self) -> &'static str {
        "fused-nll"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(xs, xl)?;
        let targets = match tl.contiguous_offsets() {
            Some((a, b)) => &ts.as_slice::<u32>()?[a..b],
            None => bail!("targets must be contiguous"),
        };
        let v = nll_vocab(xl.dims(), tl.dims())?;
        if let Some(t) = targets.iter().find(|&&t| t as usize >= v) {
            bail!("cross-entropy: target {t} is outside the vocabulary of {v}");
        }
        let mut nll = vec![0f32; targets.len()];
        nll.par_chunks_mut(ROWS_PER_TASK)
            .zip(x.par_chunks(v * ROWS_PER_TASK))
            .enumerate()
            .for_each(|(task, (out, x))| {
                for (r, (out, x)) in out.iter_mut().zip(x.chunks(v)).enumerate() {
                    let max = row_max(x);
                    let lse = lane_sum(x, |a| exp_fast(a - max)).ln();
                    *out =
                        lse - (x[targets[task * ROWS_PER_TASK + r] as usize] - max);
                }
            });
        Ok((CpuStorage::F32(nll), tl.shape().clone()))
    }

    /// `dlogits = dnll · (softmax(logits) − onehot(target))`.
    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _nll: &Tensor,
        dnll: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let v = nll_vocab(logits.dims(), targets.dims())?;
        let targets: Vec<u32> = targets.flatten_all()?.to_vec1()?;
        let dx = with_f32(dnll, |dnll| {
            let mut dx = with_f32(logits, |x| Ok(x.to_vec()))?;
            dx.par_chunks_mut(v * ROWS_PER_TASK).enumerate().for_each(
                |(task, dx)| {
                    for (r, dx) in dx.chunks_mut(v).enumerate() {
                        let row = task * ROWS_PER_TASK + r;
                        let max = row_max(dx);
                        let k = dnll[row] / exp_in_place_sum(dx, max);
                        for d in dx.iter_mut() {
                            *d *= k;
                        }
                        dx[targets[row] as usize] -= dnll[row];
                    }
                },
            );
            Ok(dx)
        })?;
        Ok((Some(tensor(dx, logits.shape())?), None))
    }
}

/// Fused negative log-likelihood of `targets` (`[..]`, u32) under `logits` (`[..,
/// vocab]`).
pub fn nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    nll_vocab(logits.dims(), targets.dims())?;
    check_f32("the logits", logits)?;
    logits
        .contiguous()?
        .apply_op2(&targets.to_dtype(DType::U32)?.contiguous()?, NllOp)
}

/// One AdamW step on a parameter, in place and in one pass: the moments `m` and `v`
/// are updated and the parameter moves, with the gradient scaled by the clipping
/// factor. The parameter, its gradient and both moments must have the same number
/// of values.
pub struct AdamWStep<'a> {
    pub m: Mutex<&'a mut [f32]>,
    pub v: Mutex<&'a mut [f32]>,
    pub grad_scale: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub bias_correction1: f32,
    pub bias_correction2: f32,
    pub eps: f32,
    pub lr: f32,
    /// `lr · weight_decay` for matrices, 0 otherwise.
    pub decay: f32,
}

impl InplaceOp2 for AdamWStep<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        ts: &mut CpuStorage,
        tl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<()> {
        let g = f32s(gs, gl)?;
        let (a, b) = tl.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("non-contiguous parameter".into())
        })?;
        let theta = match ts {
            CpuStorage::F32(t) => &mut t[a..b],
            _ => bail!("parameters must be f32"),
        };
        let mut m = self
            .m
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
        let mut v = self
            .v
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
        let n = theta.len();
        if g.len() != n || m.len() != n || v.len() != n {
            bail!(
                "adamw: parameter {n}, gradient {}, moments {} and {} values differ",
                g.len(),
                m.len(),
                v.len()
            );
        }
        let c = self;
        theta
            .par_chunks_mut(ELEMS_PER_TASK)
            .zip(m.par_chunks_mut(ELEMS_PER_TASK))
            .zip(v.par_chunks_mut(ELEMS_PER_TASK).zip(g.par_chunks(ELEMS_PER_TASK)))
            .for_each(|((theta, m), (v, g))| {
                for i in 0..theta.len() {
                    let g = g[i] * c.grad_scale;
                    m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * g;
                    v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g * g;
                    let update = (m[i] / c.bias_correction1)
                        / ((v[i] / c.bias_correction2).sqrt() + c.eps);
                    theta[i] = theta[i] * (1.0 - c.decay) - c.lr * update;
                }
            });
        Ok(())
    }
}

/// Sum of squares of a tensor's values, in `f64`, in a fixed order.
pub fn sum_of_squares(t: &Tensor) -> Result<f64> {
    with_f32(t, |x| {
        let partial: Vec<f64> = x
            .par_chunks(ELEMS_PER_TASK)
            .map(|c| c.iter().map(|&a| f64::from(a) * f64::from(a)).sum::<f64>())
            .collect();
        Ok(partial.iter().sum())
    })
}

/// A read-only strided matrix inside a slice: element `(i, j)` is `data[offset +
/// i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    offset: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    fn new(data: &'a [f32], offset: usize, rs: usize, cs: usize) -> Self {
        View { data, offset, rs, cs }
    }

    /// A pointer to element `(0, 0)`, after checking that every element of a `rows
    /// × cols` matrix with these strides lies inside `data` (rows and cols both >
    /// 0).
    fn ptr(&self, rows: usize, cols: usize) -> *const f32 {
        assert!(
            in_bounds(
                self.data.len(),
                self.offset,
                (rows, cols),
                (self.rs, self.cs)
            ),
            "view out of bounds"
        );
        self.data[self.offset..].as_ptr()
    }
}

/// Does the `rows × cols` matrix (both > 0) at `offset` with strides `(rs, cs)` lie
/// inside a buffer of `len` elements? Saturating, so absurd strides fail instead of
/// wrapping around.
fn in_bounds(
    len: usize,
    offset: usize,
    (rows, cols): (usize, usize),
    (rs, cs): (usize, usize),
) -> bool {
    let last =
        (rows - 1).saturating_mul(rs).saturating_add((cols - 1).saturating_mul(cs));
    offset.saturating_add(last) < len
}

/// An output buffer that parallel tasks write in disjoint, strided parts. It holds
/// the buffer's exclusive borrow for its whole life, so nothing else can read or
/// write the buffer meanwhile, and in particular no input of a product can alias
/// it.
struct SharedOut<'a> {
    ptr: *mut f32,
    len: usize,
    _buf: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a `SharedOut` is only written through `gemm_into`, whose contract makes
// every caller write elements that no other thread reads or writes at the same
// time.
unsafe impl Sync for SharedOut<'_> {}

impl<'a> SharedOut<'a> {
    fn new(buf: &'a mut [f32]) -> Self {
        SharedOut {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _buf: std::marker::PhantomData,
        }
    }
}

/// `dst (m × n, at offset, row stride dst_rs) (+)= lhs (m × k) · rhs (k × n)`, plus
/// `dst` itself when `accumulate`. Matrices are given by offset and (row, column)
/// strides, so transposes cost nothing. The product is split over blocks of the
/// output, never along `k`, so the result does not depend on the threads. Every
/// extent is checked: out-of-bounds arguments panic (the public entry points check
/// shapes first and return errors).
///
/// # Safety While it runs, no other thread may read or write the `m × n` elements
/// of `dst` it writes, `offset + i · dst_rs + j` for `i < m`, `j < n`.
unsafe fn gemm_into(
    (m, n, k): (usize, usize, usize),
    (dst, offset, dst_rs): (&SharedOut, usize, usize),
    accumulate: bool,
    lhs: View,
    rhs: View,
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        in_bounds(dst.len, offset, (m, n), (dst_rs, 1)),
        "output out of bounds"
    );
    if k == 0 {
        // An empty sum: the product is zero.
        if !accumulate {
            for i in 0..m {
                // SAFETY: in bounds (checked above), and ours alone (the caller's
                // contract).
                unsafe {
                    std::slice::from_raw_parts_mut(
                        dst.ptr.add(offset + i * dst_rs),
                        n,
                    )
                    .fill(0.0)
                };
            }
        }
        return;
    }
    let (lp, rp) = (lhs.ptr(m, k), rhs.ptr(k, n));
    // SAFETY: every element gemm reads lies inside `lhs` or `rhs` and every element
    // it writes inside `dst` (checked above and by `View::ptr`); the inputs are
    // shared borrows, so they cannot alias `dst`, which holds its buffer's
    // exclusive borrow; no other thread touches the elements written (the caller's
    // contract).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr.add(offset),
            1,
            dst_rs as isize,
            accumulate,
            lp,
            lhs.cs as isize,
            lhs.rs as isize,
            rp,
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// `dst (m × n, contiguous) (+)= lhs (m × k) · rhs (k × n)` (see [`gemm_into`]), on
/// every thread of the pool when `parallel`, else on the calling thread.
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: View,
    rhs: View,
    parallel: bool,
) {
    assert_eq!(dst.len(), m * n, "output is not m × n");
    let threads = rayon::current_num_threads();
    let par = if parallel && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `dst` is an exclusive borrow, so no other thread can access it.
    unsafe {
        gemm_into(
            (m, n, k),
            (&SharedOut::new(dst), 0, n),
            accumulate,
            lhs,
            rhs,
            par,
        )
    }
}

/// A linear layer `y = x Wᵀ + b` on `x` of shape `[rows, d_in]`, `W` of shape
/// `[d_out, d_in]`: one matrix multiplication that starts from the bias instead of
/// adding it afterwards.
struct LinearOp;

/// `(rows, d_in, d_out)` of `x` (`[rows, d_in]`), `W` (`[d_out, d_in]`) and the
/// bias, if any (`[d_out]` or `[1, d_out]`); an error for any other shapes.
fn linear_dims(
    x: &[usize],
    w: &[usize],
    b: Option<&[usize]>,
) -> Result<(usize, usize, usize)> {
    let (&[rows, d_in], &[d_out, w_in]) = (x, w) else {
        bail!(
            "fused linear: input {x:?} and weight {w:?} must be [rows, d_in] and [d_out, d_in]"
        );
    };
    if d_in != w_in || b.is_some_and(|b| !matches!(*b, [n] | [1, n] if n == d_out))
    {
        bail!("fused linear: input {x:?}, weight {w:?} and bias {b:?} do not fit");
    }
    Ok((rows, d_in, d_out))
}

fn linear_fwd(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    (rows, d_in, d_out): (usize, usize, usize),
) -> Vec<f32> {
    let mut y = match b {
        Some(b) => b.repeat(rows),
        None => vec![0f32; rows * d_out],
    };
    // x is rows × d_in, w is d_out × d_in (read as its transpose), y is rows ×
    // d_out.
    matmul(
        (rows, d_out, d_in),
        &mut y,
        b.is_some(),
        View::new(x, 0, d_in, 1),
        View::new(w, 0, 1, d_in),
        true,
    );
    y
}

/// `dx = dy W`, `dW = dyᵀ x`, `db = Σ_rows dy` (in the bias's shape).
fn linear_bwd(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let (rows, d_in, d_out) = linear_dims(x.dims(), w.dims(), b.map(|b| b.dims()))?;
    let (dx, dw, db) = with_f32(x, |x| {
        with_f32(w, |w| {
            with_f32(dy, |dy| {
                let mut dx = vec![0f32; rows * d_in];
                let mut dw = vec![0f32; d_out * d_in];
                let dy_rows = View::new(dy, 0, d_out, 1);
                matmul(
                    (rows, d_in, d_out),
                    &mut dx,
                    false,
                    dy_rows,
                    View::new(w, 0, d_in, 1),
                    true,
                );
                let dy_t = View::new(dy, 0, 1, d_out);
                matmul(
                    (d_out, d_in, rows),
                    &mut dw,
                    false,
                    dy_t,
                    View::new(x, 0, d_in, 1),
                    true,
                );
                let mut db = vec![0f32; d_out];
                if d_out > 0 {
                    let partial: Vec<Vec<f32>> = dy
                        .par_chunks(d_out * ROWS_PER_TASK * 4)
                        .map(|c| {
                            let mut s = vec![0f32; d_out];
                            for row in c.chunks(d_out) {
                                for (s, v) in s.iter_mut().zip(row) {
                                    *s += v;
                                }
                            }
                            s
                        })
                        .collect();
                    for p in &partial {
                        for (s, v) in db.iter_mut().zip(p) {
                            *s += v;
                        }
                    }
                }
                Ok((dx, dw, db))
            })
        })
    })?;
    let db = b.map(|b| tensor(db, b.shape())).transpose()?;
    Ok((tensor(dx, x.shape())?, tensor(dw, w.shape())?, db))
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = linear_dims(xl.dims(), wl.dims(), Some(bl.dims()))?;
        let y = linear_fwd(f32s(xs, xl)?, f32s(ws, wl)?, Some(f32s(bs, bl)?), dims);
        Ok((CpuStorage::F32(y), Shape::from((dims.0, dims.2))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = linear_bwd(x, w, Some(b), dy)?;
        Ok((Some(dx), Some(dw), db))
    }
}

/// The same without a bias.
struct LinearNoBiasOp;

impl CustomOp2 for LinearNoBiasOp {
    fn name(&self) -> &'static str {
        "fused-linear-no-bias"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = linear_dims(xl.dims(), wl.dims(), None)?;
        let y = linear_fwd(f32s(xs, xl)?, f32s(ws, wl)?, None, dims);
        Ok((CpuStorage::F32(y), Shape::from((dims.0, dims.2))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = linear_bwd(x, w, None, dy)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// Fused `x Wᵀ + b` for `x` of shape `[rows, d_in]`, `W` of shape `[d_out, d_in]`
/// and `b` of `d_out` values (`[d_out]` or `[1, d_out]`); returns `[rows, d_out]`.
/// Other shapes are errors.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    linear_dims(x.dims(), w.dims(), b.map(|b| b.dims()))?;
    check_f32("the input", x)?;
    check_f32("the weight", w)?;
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    match b {
        Some(b) => {
            check_f32("the bias", b)?;
            x.apply_op3(&w, &b.contiguous()?, LinearOp)
        }
        None => x.apply_op2(&w, LinearNoBiasOp),
    }
}

/// `dst (m × n, at offset, row stride dst_rs) (+)= lhs (m × k) · rhs (k × n)` on
/// the calling thread, into a buffer that other tasks write elsewhere at the same
/// time.
///
/// # Safety As [`gemm_into`]: no other thread may read or write the elements of
/// `dst` written here.
unsafe fn small_matmul(
    dims: (usize, usize, usize),
    dst: (&SharedOut, usize, usize),
    accumulate: bool,
    lhs: View,
    rhs: View,
) {
    // SAFETY: the caller's contract is `gemm_into`'s.
    unsafe { gemm_into(dims, dst, accumulate, lhs, rhs, gemm::Parallelism::None) }
}

/// Head layout of fused attention: `(b, t, hd, (mask_rows, mask_heads))` for `qkv`
/// of shape `[b, t, (h + 2g) · hd]` and a mask of shape `[t, t]` or `[m, n, t, t]`
/// with `m` 1 or `b` and `n` 1 or `h`. An error unless `h` and `g` are positive,
/// `g` divides `h` (each key/value head serves `h / g` query heads) and `hd > 0`.
fn attention_dims(
    qkv: &[usize],
    h: usize,
    g: usize,
    mask: Option<&[usize]>,
) -> Result<(usize, usize, usize, (usize, usize))> {
    let &[b, t, w] = qkv else {
        bail!("fused attention: qkv {qkv:?} is not [b, t, (h + 2g)·hd]")
    };
    if h == 0 || g == 0 || !h.is_multiple_of(g) {
        bail!(
            "fused attention: {h} query heads cannot share {g} key/value heads evenly"
        );
    }
    if w == 0 || !w.is_multiple_of(h + 2 * g) {
        bail!(
            "fused attention: last dimension {w} is not (h + 2g)·hd with h = {h}, g = {g}, hd > 0"
        );
    }
    let layout = match mask {
        None => (1, 1),
        Some(&[q, k]) if (q, k) == (t, t) => (1, 1),
        Some(&[m, n, q, k])
            if (q, k) == (t, t) && (m == 1 || m == b) && (n == 1 || n == h) =>
        {
            (m, n)
        }
        Some(m) => bail!("fused attention: mask {m:?} does not fit qkv {qkv:?}"),
    };
    Ok((b, t, w / (h + 2 * g), layout))
}

/// Scaled dot-product attention computed straight from the fused projection `qkv`
/// (`[b, t, (h + 2g) · hd]`: `h` query heads, then `g` key heads, then `g` value
/// heads), with an additive mask `[rows, n, t, t]` (`n`: 1, or one mask per head).
/// Returns the heads already merged, `[b, t, h · hd]`. One task per (batch row,
/// key/value head); query heads sharing that key/value head (GQA) are handled in
/// turn by the same task, so every sum has a fixed order.
struct AttentionOp {
    h: usize,
    g: usize,
    hd: usize,
    scale: f32,
    mask: Option<Tensor>,
    /// Mask matrices: 1 (shared by every batch row) or the batch size.
    mask_rows: usize,
    /// Mask matrices per batch row: 1 (shared by every head) or `h`.
    mask_heads: usize,
    /// The probabilities of the forward pass, `[b, h, t, t]`, kept for the first
    /// backward pass (a second one recomputes them).
    saved: Mutex<Vec<f32>>,
}

impl AttentionOp {
    /// Probabilities `p` (`t × t`) of query head `qh` of batch row `bi`.
    fn probs(
        &self,
        qkv: &[f32],
        mask: Option<&[f32]>,
        bi: usize,
        qh: usize,
        t: usize,
        p: &mut [f32],
    ) {
        let (h, g, hd) = (self.h, self.g, self.hd);
        let w = (h + 2 * g) * hd;
        let kh = qh / (h / g);
        let base = bi * t * w;
        // q rows are `w` apart inside batch row `bi`; kᵀ reads key head `kh`.
        let (q, kt) = (
            View::new(qkv, base + qh * hd, w, 1),
            View::new(qkv, base + (h + kh) * hd, 1, w),
        );
        matmul((t, t, hd), p, false, q, kt, false);
        let m = mask.map(|m| {
            let b = if self.mask_rows == 1 { 0 } else { bi };
            let head = if self.mask_heads == 1 { 0 } else { qh };
            &m[(b * self.mask_heads + head) * t * t..][..t * t]
        });
        for i in 0..t {
            scale_mask_softmax(
                &mut p[i * t..(i + 1) * t],
                self.scale,
                m.map(|m| &m[i * t..(i + 1) * t]),
            );
        }
    }
}

impl CustomOp1 for AttentionOp {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = f32s(s, l)?;
        let (h, g, hd) = (self.h, self.g, self.hd);
        let (b, t, _, _) =
            attention_dims(l.dims(), h, g, self.mask.as_ref().map(|m| m.dims()))?;
        let (w, hpg) = ((h + 2 * g) * hd, h / g);
        let mut out = vec![0f32; b * t * h * hd];
        let mut all_p = vec![0f32; b * h * t * t];
        if !out.is_empty() {
            let optr = SharedOut::new(&mut out);
            let mut run = |mask: Option<&[f32]>| {
                // Task `bi · g + kh` owns the probabilities of the `hpg` query
                // heads of key head `kh` in batch row `bi`, which lie next to each
                // other.
                all_p.par_chunks_mut(hpg * t * t).enumerate().for_each(
                    |(task, p_heads)| {
                        let (bi, kh) = (task / g, task % g);
                        for (i, p) in p_heads.chunks_mut(t * t).enumerate() {
                            let qh = kh * hpg + i;
                            self.probs(qkv, mask, bi, qh, t, p);
                            let v = View::new(
                                qkv,
                                bi * t * w + (h + g + kh) * hd,
                                w,
                                1,
                            );
                            // SAFETY: only this task writes the columns of query
                            // head `qh` in batch row `bi`: tasks are distinct `(bi,
                            // kh)` and `qh` is in `kh`'s group.
                            unsafe {
                                small_matmul(
                                    (t, hd, t),
                                    (&optr, bi * t * h * hd + qh * hd, h * hd),
                                    false,
                                    View::new(p, 0, t, 1),
                                    v,
                                )
                            };
                        }
                    },
                )
            };
            match &self.mask {
                Some(m) => with_f32(m, |m| {
                    run(Some(m));
                    Ok(())
                })?,
                None => run(None),
            }
        }
        if let Ok(mut saved) = self.saved.lock() {
            *saved = all_p;
        }
        Ok((CpuStorage::F32(out), Shape::from((b, t, h * hd))))
    }

    /// With `P` saved or recomputed: `dV = Pᵀ dO`, `dP = dO Vᵀ`,
    /// `dS = scale · P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ = dS K`, `dK = dSᵀ Q`.
    fn bwd(
        &self,
        qkv_t: &Tensor,
        _out: &Tensor,
        dout: &Tensor,
    ) -> Result<Option<Tensor>> {
        let (h, g, hd) = (self.h, self.g, self.hd);
        let (b, t, _, _) = attention_dims(
            qkv_t.dims(),
            h,
            g,
            self.mask.as_ref().map(|m| m.dims()),
        )?;
        let (w, hpg) = ((h + 2 * g) * hd, h / g);
        let mask = self
            .mask
            .as_ref()
            .map(|m| m.flatten_all()?.to_vec1::<f32>())
            .transpose()?;
        let saved = std::mem::take(
            &mut *self
                .saved
                .lock()
                .map_err(|_| candle_core::Error::Msg("poisoned".into()))?,
        );
        let saved = (saved.len() == b * h * t * t).then_some(saved);
        let dqkv = with_f32(qkv_t, |qkv| {
            with_f32(dout, |dout| {
                let mut dqkv = vec![0f32; qkv.len()];
                if dqkv.is_empty() {
                    return Ok(dqkv);
                }
                let dptr = SharedOut::new(&mut dqkv);
                (0..b * g).into_par_iter().for_each(|task| {
                    let (bi, kh) = (task / g, task % g);
                    let (mut p, mut dp) = (vec![0f32; t * t], vec![0f32; t * t]);
                    let base = bi * t * w;
                    let (k_at, v_at) =
                        (base + (h + kh) * hd, base + (h + g + kh) * hd);
                    for qh in kh * hpg..(kh + 1) * hpg {
                        match &saved {
                            Some(all) => p.copy_from_slice(
                                &all[(bi * h + qh) * t * t..][..t * t],
                            ),
                            None => {
                                self.probs(qkv, mask.as_deref(), bi, qh, t, &mut p)
                            }
                        }
                        let q_at = base + qh * hd;
                        let d_o =
                            View::new(dout, bi * t * h * hd + qh * hd, h * hd, 1);
                        // dP = dO Vᵀ
                        matmul(
                            (t, t, hd),
                            &mut dp,
                            false,
                            d_o,
                            View::new(qkv, v_at, 1, w),
                            false,
                        );
                        // SAFETY: only this task writes batch row `bi`'s columns of
                        // key/value head `kh` and of the query heads in its group
                        // in `dqkv`: tasks are distinct `(bi, kh)`.
                        unsafe {
                            // dV += Pᵀ dO
                            small_matmul(
                                (t, hd, t),
                                (&dptr, v_at, w),
                                true,
                                View::new(&p, 0, 1, t),
                                d_o,
                            );
                        }
                        for (pr, dr) in p.chunks(t).zip(dp.chunks_mut(t)) {
                            let dot = lane_dot(pr, dr);
                            for j in 0..t {
                                dr[j] = self.scale * pr[j] * (dr[j] - dot);
                            }
                        }
                        let ds = View::new(&dp, 0, t, 1);
                        // SAFETY: as above, this task alone writes these columns of
                        // `dqkv`.
                        unsafe {
                            // dQ = dS K
                            small_matmul(
                                (t, hd, t),
                                (&dptr, q_at, w),
                                true,
                                ds,
                                View::new(qkv, k_at, w, 1),
                            );
                            // dK += dSᵀ Q
                            let ds_t = View::new(&dp, 0, 1, t);
                            small_matmul(
                                (t, hd, t),
                                (&dptr, k_at, w),
                                true,
                                ds_t,
                                View::new(qkv, q_at, w, 1),
                            );
                        }
                    }
                });
                Ok(dqkv)
            })
        })?;
        Ok(Some(tensor(dqkv, qkv_t.shape())?))
    }
}

/// Fused attention from the output of the fused QKV projection (`[b, t, (h + 2g) ·
/// hd]`, with `g` dividing `h`) under an additive mask (`[t, t]` or `[m, n, t, t]`,
/// `m` 1 or `b`, `n` 1 or `h`); returns `[b, t, h · hd]`, ready for the output
/// projection. Other shapes are errors.
pub fn attention(
    qkv: &Tensor,
    h: usize,
    g: usize,
    scale: f64,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (_, _, hd, (mask_rows, mask_heads)) =
        attention_dims(qkv.dims(), h, g, mask.map(|m| m.dims()))?;
    check_f32("qkv", qkv)?;
    if let Some(m) = mask {
        check_f32("the mask", m)?;
    }
    let mask = mask.map(|m| m.contiguous()).transpose()?;
    let op = AttentionOp {
        h,
        g,
        hd,
        scale: scale as f32,
        mask,
        mask_rows,
        mask_heads,
        saved: Mutex::new(Vec::new()),
    };
    qkv.contiguous()?.apply_op1(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_are_checked_to_the_last_element() {
        // A 2 × 5 matrix with row stride 5 ends at element 9.
        assert!(in_bounds(10, 0, (2, 5), (5, 1)));
        assert!(!in_bounds(9, 0, (2, 5), (5, 1)));
        assert!(!in_bounds(10, 1, (2, 5), (5, 1)));
        // Its transpose view (5 × 2, strides (1, 5)) covers the same elements.
        assert!(in_bounds(10, 0, (5, 2), (1, 5)));
        assert!(!in_bounds(10, 0, (5, 2), (1, 6)));
        // Absurd strides saturate instead of wrapping around to a small offset.
        assert!(!in_bounds(10, 0, (2, 1), (usize::MAX, 1)));
    }

    #[test]
    #[should_panic(expected = "view out of bounds")]
    fn a_product_that_would_read_past_its_input_panics() {
        let (a, b) = (vec![1f32; 6], vec![1f32; 6]);
        let mut dst = vec![0f32; 4];
        // 2 × 4 times 4 × 2: the left matrix needs 8 values and has 6.
        matmul(
            (2, 2, 4),
            &mut dst,
            false,
            View::new(&a, 0, 4, 1),
            View::new(&b, 0, 2, 1),
            false,
        );
    }
}
