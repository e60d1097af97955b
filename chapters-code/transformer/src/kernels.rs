//! Fast CPU kernels with hand-written backward passes, for the layers that dominate a
//! training step on a CPU: LayerNorm, the scaled and masked attention softmax, the tanh-GELU,
//! softmax cross-entropy and the AdamW update.
//!
//! Each kernel is a candle custom op: a forward over contiguous `f32` rows and the matching
//! backward, checked in the tests against the plain differentiable implementation and against
//! finite differences. Work is split over rows in fixed-size chunks, and every reduction across
//! rows sums the chunks in a fixed order, so results are bit-identical on any number of threads.
//!
//! Each kernel is a [`Lever`] that can be switched off, so the benchmark can measure what each
//! one buys and the tests can compare the two paths.

use std::sync::atomic::{AtomicU32, Ordering};

/// One optimisation that can be switched on or off at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lever {
    /// No extra threads for candle's element-wise operations (see [`configure_threads`]).
    /// Process-wide: it takes effect when the first [`crate::ParamStore`] is created.
    CandleThreads,
    /// Keep freed memory in the process (see [`configure_threads`]); also process-wide.
    KeepMemory,
    Linear,
    LayerNorm,
    Softmax,
    Gelu,
    CrossEntropy,
    AdamW,
    /// Attention straight from the fused QKV projection's output, no head permutes or copies.
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

/// candle 0.11 splits large element-wise operations over its own pool of spinning threads,
/// beside the rayon pool that runs the matrix multiplications (and our kernels). On a machine
/// with two cores, the two pools fight over them: a training step took 3 to 4 times longer.
/// Unless the environment says otherwise, give candle's pool no extra thread (its element-wise
/// operations then run on the calling thread); the matrix multiplications and the fused
/// kernels still use every thread. This must happen before candle's first large element-wise
/// operation, so [`crate::ParamStore::new`] calls it. Results do not change: element-wise
/// operations compute the same values on any number of threads.
pub fn configure_threads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if enabled(Lever::KeepMemory) {
            keep_freed_memory();
        }
        if enabled(Lever::CandleThreads) && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            // SAFETY: called once, before the model exists and before candle starts its
            // threads; nothing else in this library reads or writes the environment.
            unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
        }
    });
}

/// Every operation allocates its output, and a training step frees and allocates the same
/// few hundred buffers again and again. glibc hands buffers above 128 KiB back to the system
/// when they are freed, so every step paid for fresh pages (about a third of its time went
/// to page faults). Keep freed memory in the process instead (glibc only; elsewhere nothing).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is safe to call at any time.
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
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, InplaceOp2, Layout, Result, Shape, Storage, Tensor,
    bail,
};
use rayon::prelude::*;

/// Rows per parallel task. Fixed, so the split (and every sum across rows) never depends on
/// the number of threads.
const ROWS_PER_TASK: usize = 16;
/// Elements per parallel task of the element-wise kernels.
const ELEMS_PER_TASK: usize = 16 * 1024;

/// The contiguous `f32` values of a CPU storage.
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

/// `eˣ` to about one ulp (Cephes' polynomial on `x − k·ln 2`, then `2ᵏ` from the exponent
/// bits), branch-free so that loops over it vectorise. Exactly 0 below −87 (masked entries).
#[inline(always)]
fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let xc = x.clamp(-87.0, 88.0);
    // Round to the nearest integer with the 1.5 · 2²³ trick (no `round` call needed).
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

/// `row ← softmax(row)` in place; a row that is entirely −∞ becomes zeros.
#[inline]
/// One row of attention scores: scale, add the additive mask row (if any), then softmax.
fn scale_mask_softmax(row: &mut [f32], scale: f32, mask: Option<&[f32]>) {
    match mask {
        Some(m) => row.iter_mut().zip(m).for_each(|(v, m)| *v = *v * scale + m),
        None => row.iter_mut().for_each(|v| *v *= scale),
    }
    softmax_in_place(row);
}

fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    let mut sum = 0f32;
    for v in row.iter_mut() {
        *v = exp_fast(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// LayerNorm over the last dimension: `y = (x − mean) / √(var + ε) · gain + bias`.
struct LayerNormOp {
    eps: f32,
}

/// Mean and 1/√(var + ε) of one row, in the same order of operations as the plain version.
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = x.iter().sum::<f32>() / d;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
    (mean, 1.0 / (var + eps).sqrt())
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
        let (x, g, b) = (f32s(xs, xl)?, f32s(gs, gl)?, f32s(bs, bl)?);
        let d = g.len();
        if b.len() != d || xl.dims().last() != Some(&d) {
            bail!("layer norm: input {:?}, gain {d}, bias {}", xl.dims(), b.len());
        }
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d * ROWS_PER_TASK).zip(x.par_chunks(d * ROWS_PER_TASK)).for_each(|(y, x)| {
            for (y, x) in y.chunks_mut(d).zip(x.chunks(d)) {
                let (mean, rstd) = row_stats(x, self.eps);
                for i in 0..d {
                    y[i] = (x[i] - mean) * rstd * g[i] + b[i];
                }
            }
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    /// `dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))` with `dx̂ = dy · gain`;
    /// `dgain = Σ dy · x̂`, `dbias = Σ dy` over rows.
    fn bwd(
        &self,
        x: &Tensor,
        gain: &Tensor,
        _bias: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let eps = self.eps;
        let (dx, dg, db) = with_f32(x, |x| {
            with_f32(gain, |g| {
                with_f32(dy, |dy| {
                    let d = g.len();
                    let mut dx = vec![0f32; x.len()];
                    let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
                        .par_chunks_mut(d * ROWS_PER_TASK)
                        .zip(x.par_chunks(d * ROWS_PER_TASK).zip(dy.par_chunks(d * ROWS_PER_TASK)))
                        .map(|(dx, (x, dy))| {
                            let (mut dg, mut db) = (vec![0f32; d], vec![0f32; d]);
                            for ((dx, x), dy) in dx.chunks_mut(d).zip(x.chunks(d)).zip(dy.chunks(d)) {
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
        Ok((Some(tensor(dx, x.shape())?), Some(tensor(dg, gain.shape())?), Some(tensor(db, gain.shape())?)))
    }
}

/// Fused LayerNorm over the last dimension of `x`, with a hand-written backward pass.
pub fn layer_norm(x: &Tensor, gain: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(gain, bias, LayerNormOp { eps: eps as f32 })
}

/// `softmax(scale · x + mask)` over the last dimension of `x` (`[.., t_q, t_k]`). The additive
/// mask (0 or −∞) has shape `[rows, 1, t_q, t_k]` with `rows` 1 or the batch size.
struct SoftmaxOp {
    scale: f32,
    mask: Option<Tensor>,
}

fn softmax_rows(
    x: &[f32],
    mask: Option<&[f32]>,
    scale: f32,
    t_q: usize,
    t_k: usize,
    per_row: usize,
) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    let rows_per_task = ROWS_PER_TASK * 4;
    y.par_chunks_mut(t_k * rows_per_task).enumerate().for_each(|(task, y)| {
        let x = &x[task * rows_per_task * t_k..];
        for (r, y) in y.chunks_mut(t_k).enumerate() {
            let row = task * rows_per_task + r;
            let x = &x[r * t_k..(r + 1) * t_k];
            // Rows are ordered [batch, head, query]; the mask has one matrix per batch row
            // (or one for all), `per_row` = heads · t_q rows of scores share it.
            let m = mask.map(|m| {
                let mrows = m.len() / (t_q * t_k);
                let b = (row / per_row) % mrows;
                &m[(b * t_q + row % t_q) * t_k..][..t_k]
            });
            y.copy_from_slice(x);
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
        let dims = l.dims();
        let (t_q, t_k) =
            if dims.len() >= 2 { (dims[dims.len() - 2], dims[dims.len() - 1]) } else { (1, dims[0]) };
        let per_row = if dims.len() >= 4 { dims[dims.len() - 3] * t_q } else { x.len() / t_k };
        let y = match &self.mask {
            Some(m) => with_f32(m, |m| Ok(softmax_rows(x, Some(m), self.scale, t_q, t_k, per_row)))?,
            None => softmax_rows(x, None, self.scale, t_q, t_k, per_row),
        };
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    /// `dx = scale · y ⊙ (dy − Σ dy ⊙ y)` per row.
    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let t_k = x.dims()[x.rank() - 1];
        let scale = self.scale;
        let dx = with_f32(y, |y| {
            with_f32(dy, |dy| {
                let mut dx = vec![0f32; y.len()];
                let chunk = t_k * ROWS_PER_TASK * 4;
                dx.par_chunks_mut(chunk).zip(y.par_chunks(chunk).zip(dy.par_chunks(chunk))).for_each(
                    |(dx, (y, dy))| {
                        for ((dx, y), dy) in dx.chunks_mut(t_k).zip(y.chunks(t_k)).zip(dy.chunks(t_k)) {
                            let dot: f32 = y.iter().zip(dy).map(|(a, b)| a * b).sum();
                            for j in 0..t_k {
                                dx[j] = scale * y[j] * (dy[j] - dot);
                            }
                        }
                    },
                );
                Ok(dx)
            })
        })?;
        Ok(Some(tensor(dx, x.shape())?))
    }
}

/// Fused `softmax(scale · x + mask)` over the last dimension, with a hand-written backward.
pub fn softmax(x: &Tensor, scale: f64, mask: Option<&Tensor>) -> Result<Tensor> {
    let mask = mask.map(|m| m.contiguous()).transpose()?;
    x.contiguous()?.apply_op1(SoftmaxOp { scale: scale as f32, mask })
}

/// `tanh`, as a rational approximation accurate to a few ulps in `f32` (the one Eigen uses),
/// branch-free so the compiler can vectorise it.
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

/// GELU with the tanh approximation: `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))`.
struct GeluOp;

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l)?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(ELEMS_PER_TASK).zip(x.par_chunks(ELEMS_PER_TASK)).for_each(|(y, x)| {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = 0.5 * x * (1.0 + tanh_fast(SQRT_2_OVER_PI * x * (1.0 + GELU_C * x * x)));
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    /// `dy · (0.5 · (1 + t) + 0.5 · x · (1 − t²) · √(2/π) · (1 + 3 · 0.044715 · x²))`.
    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_f32(x, |x| {
            with_f32(dy, |dy| {
                let mut dx = vec![0f32; x.len()];
                dx.par_chunks_mut(ELEMS_PER_TASK)
                    .zip(x.par_chunks(ELEMS_PER_TASK).zip(dy.par_chunks(ELEMS_PER_TASK)))
                    .for_each(|(dx, (x, dy))| {
                        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                            let t = tanh_fast(SQRT_2_OVER_PI * x * (1.0 + GELU_C * x * x));
                            let dt = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
                            *dx = dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dt);
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
    x.contiguous()?.apply_op1(GeluOp)
}

/// Negative log-likelihood of each target under `softmax(logits)`: `lse(x) − x[target]`.
struct NllOp;

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
        let v = xl.dims()[xl.dims().len() - 1];
        if targets.len() * v != x.len() || targets.iter().any(|&t| t as usize >= v) {
            bail!("cross-entropy: targets {:?} do not fit logits {:?}", tl.dims(), xl.dims());
        }
        let mut nll = vec![0f32; targets.len()];
        nll.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each(|(task, out)| {
            for (r, out) in out.iter_mut().enumerate() {
                let row = task * ROWS_PER_TASK + r;
                let x = &x[row * v..(row + 1) * v];
                let max = x.iter().fold(f32::NEG_INFINITY, |m, &a| m.max(a));
                let lse = x.iter().map(|a| exp_fast(a - max)).sum::<f32>().ln();
                *out = lse - (x[targets[row] as usize] - max);
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
        let v = logits.dims()[logits.rank() - 1];
        let targets: Vec<u32> = targets.flatten_all()?.to_vec1()?;
        let dx = with_f32(logits, |x| {
            with_f32(dnll, |dnll| {
                let mut dx = vec![0f32; x.len()];
                dx.par_chunks_mut(v * ROWS_PER_TASK).enumerate().for_each(|(task, dx)| {
                    for (r, dx) in dx.chunks_mut(v).enumerate() {
                        let row = task * ROWS_PER_TASK + r;
                        let x = &x[row * v..(row + 1) * v];
                        let max = x.iter().fold(f32::NEG_INFINITY, |m, &a| m.max(a));
                        let mut sum = 0f32;
                        for j in 0..v {
                            dx[j] = exp_fast(x[j] - max);
                            sum += dx[j];
                        }
                        let k = dnll[row] / sum;
                        for d in dx.iter_mut() {
                            *d *= k;
                        }
                        dx[targets[row] as usize] -= dnll[row];
                    }
                });
                Ok(dx)
            })
        })?;
        Ok((Some(tensor(dx, logits.shape())?), None))
    }
}

/// Fused negative log-likelihood of `targets` (`[..]`, u32) under `logits` (`[.., vocab]`).
pub fn nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    logits.contiguous()?.apply_op2(&targets.to_dtype(DType::U32)?.contiguous()?, NllOp)
}

/// One AdamW step on a parameter, in place and in one pass: the moments `m` and `v` are
/// updated and the parameter moves, with the gradient scaled by the clipping factor.
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

    fn cpu_fwd(&self, ts: &mut CpuStorage, tl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<()> {
        let g = f32s(gs, gl)?;
        let (a, b) = tl
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("non-contiguous parameter".into()))?;
        let theta = match ts {
            CpuStorage::F32(t) => &mut t[a..b],
            _ => bail!("parameters must be f32"),
        };
        let mut m = self.m.lock().map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
        let mut v = self.v.lock().map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
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
                    let update = (m[i] / c.bias_correction1) / ((v[i] / c.bias_correction2).sqrt() + c.eps);
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

/// `dst (m × n) = lhs (m × k) · rhs (k × n)`, plus `dst` itself when `accumulate`. Matrices are
/// given by pointer and (row, column) strides, so transposes cost nothing. The product is split
/// over blocks of the output, never along `k`, so the result does not depend on the threads.
///
/// # Safety
/// The pointers and strides must describe matrices inside live allocations, and `dst` must not
/// overlap the inputs.
unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    (lhs, lhs_rs, lhs_cs): (&[f32], usize, usize),
    (rhs, rhs_rs, rhs_cs): (&[f32], usize, usize),
) {
    let threads = rayon::current_num_threads();
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// A linear layer `y = x Wᵀ + b` on `x` of shape `[rows, d_in]`, `W` of shape `[d_out, d_in]`:
/// one matrix multiplication that starts from the bias instead of adding it afterwards.
struct LinearOp;

fn linear_fwd(x: &[f32], w: &[f32], b: Option<&[f32]>, rows: usize, d_out: usize) -> Vec<f32> {
    let d_in = w.len() / d_out;
    let mut y = match b {
        Some(b) => b.repeat(rows),
        None => vec![0f32; rows * d_out],
    };
    // SAFETY: x is rows × d_in, w is d_out × d_in (read as its transpose), y is rows × d_out.
    unsafe { matmul((rows, d_out, d_in), &mut y, b.is_some(), (x, d_in, 1), (w, 1, d_in)) };
    y
}

/// `dx = dy W`, `dW = dyᵀ x`, `db = Σ_rows dy`.
fn linear_bwd(x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let (d_out, d_in) = w.dims2()?;
    let rows = x.elem_count() / d_in;
    let (dx, dw, db) = with_f32(x, |x| {
        with_f32(w, |w| {
            with_f32(dy, |dy| {
                let mut dx = vec![0f32; rows * d_in];
                let mut dw = vec![0f32; d_out * d_in];
                // SAFETY: shapes as in the comments above; outputs are fresh buffers.
                unsafe {
                    matmul((rows, d_in, d_out), &mut dx, false, (dy, d_out, 1), (w, d_in, 1));
                    matmul((d_out, d_in, rows), &mut dw, false, (dy, 1, d_out), (x, d_in, 1));
                }
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
                let mut db = vec![0f32; d_out];
                for p in &partial {
                    for (s, v) in db.iter_mut().zip(p) {
                        *s += v;
                    }
                }
                Ok((dx, dw, db))
            })
        })
    })?;
    Ok((tensor(dx, x.shape())?, tensor(dw, w.shape())?, Tensor::from_vec(db, d_out, &crate::DEVICE)?))
}

fn rows_and_out(xl: &Layout, wl: &Layout) -> Result<(usize, usize, Shape)> {
    let (d_out, d_in) = wl.shape().dims2()?;
    let rows = xl.shape().elem_count() / d_in;
    Ok((rows, d_out, Shape::from((rows, d_out))))
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
        let (rows, d_out, shape) = rows_and_out(xl, wl)?;
        let y = linear_fwd(f32s(xs, xl)?, f32s(ws, wl)?, Some(f32s(bs, bl)?), rows, d_out);
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = linear_bwd(x, w, dy)?;
        Ok((Some(dx), Some(dw), Some(db)))
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
        let (rows, d_out, shape) = rows_and_out(xl, wl)?;
        let y = linear_fwd(f32s(xs, xl)?, f32s(ws, wl)?, None, rows, d_out);
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = linear_bwd(x, w, dy)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// Fused `x Wᵀ + b` for `x` of shape `[rows, d_in]`; returns `[rows, d_out]`.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, LinearOp),
        None => x.apply_op2(&w, LinearNoBiasOp),
    }
}

/// A raw pointer that may cross threads: tasks write disjoint parts of one output buffer.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `SendPtr`).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `dst (m × n, row stride dst_rs) (+)= lhs (m × k) · rhs (k × n)` on one thread, all strided.
///
/// # Safety
/// Every pointer and stride must stay inside its allocation; `dst` must not overlap the inputs.
#[allow(clippy::type_complexity)]
unsafe fn small_matmul(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (*mut f32, usize),
    accumulate: bool,
    (lhs, lhs_rs, lhs_cs): (*const f32, usize, usize),
    (rhs, rhs_rs, rhs_cs): (*const f32, usize, usize),
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Scaled dot-product attention computed straight from the fused projection `qkv`
/// (`[b, t, (h + 2g) · hd]`: `h` query heads, then `g` key heads, then `g` value heads), with an
/// additive mask `[rows, 1, t, t]`. Returns the heads already merged, `[b, t, h · hd]`.
/// One task per (batch row, key/value head); query heads sharing that key/value head (GQA)
/// are handled in turn by the same task, so every sum has a fixed order.
struct AttentionOp {
    h: usize,
    g: usize,
    hd: usize,
    scale: f32,
    mask: Option<Tensor>,
    /// The probabilities of the forward pass, `[b, h, t, t]`, kept for the backward pass.
    saved: Mutex<Vec<f32>>,
}

impl AttentionOp {
    /// Probabilities `p` (`t × t`) of query head `qh` of batch row `bi`.
    fn probs(&self, qkv: &[f32], mask: Option<&[f32]>, bi: usize, qh: usize, t: usize, p: &mut [f32]) {
        let (h, g, hd) = (self.h, self.g, self.hd);
        let w = (h + 2 * g) * hd;
        let kh = qh / (h / g);
        let base = bi * t * w;
        // SAFETY: q rows are `w` apart inside batch row `bi`; kᵀ reads key head `kh`.
        unsafe {
            small_matmul(
                (t, t, hd),
                (p.as_mut_ptr(), t),
                false,
                (qkv.as_ptr().add(base + qh * hd), w, 1),
                (qkv.as_ptr().add(base + (h + kh) * hd), 1, w),
            );
        }
        let m = mask.map(|m| {
            let rows = m.len() / (t * t);
            &m[(bi % rows) * t * t..][..t * t]
        });
        for i in 0..t {
            scale_mask_softmax(&mut p[i * t..(i + 1) * t], self.scale, m.map(|m| &m[i * t..(i + 1) * t]));
        }
    }
}

impl CustomOp1 for AttentionOp {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = f32s(s, l)?;
        let (b, t, w) = l.shape().dims3()?;
        let (h, g, hd) = (self.h, self.g, self.hd);
        if w != (h + 2 * g) * hd {
            bail!("fused attention: last dimension {w} is not (h + 2g)·hd");
        }
        let mut out = vec![0f32; b * t * h * hd];
        let mut all_p = vec![0f32; b * h * t * t];
        let (optr, pptr) = (SendPtr(out.as_mut_ptr()), SendPtr(all_p.as_mut_ptr()));
        let run = |mask: Option<&[f32]>| {
            (0..b * g).into_par_iter().for_each(|task| {
                let (bi, kh) = (task / g, task % g);
                for qh in kh * (h / g)..(kh + 1) * (h / g) {
                    // SAFETY: this task alone owns the probabilities of (bi, qh).
                    let p = unsafe {
                        std::slice::from_raw_parts_mut(pptr.get().add((bi * h + qh) * t * t), t * t)
                    };
                    self.probs(qkv, mask, bi, qh, t, p);
                    // SAFETY: this task alone writes the columns of query head `qh` in row `bi`.
                    unsafe {
                        small_matmul(
                            (t, hd, t),
                            (optr.get().add(bi * t * h * hd + qh * hd), h * hd),
                            false,
                            (p.as_ptr(), t, 1),
                            (qkv.as_ptr().add(bi * t * w + (h + g + kh) * hd), w, 1),
                        );
                    }
                }
            })
        };
        match &self.mask {
            Some(m) => with_f32(m, |m| {
                run(Some(m));
                Ok(())
            })?,
            None => run(None),
        }
        if let Ok(mut saved) = self.saved.lock() {
            *saved = all_p;
        }
        Ok((CpuStorage::F32(out), Shape::from((b, t, h * hd))))
    }

    /// With `P` recomputed: `dV = Pᵀ dO`, `dP = dO Vᵀ`, `dS = scale · P ⊙ (dP − rowsum(dP ⊙ P))`,
    /// `dQ = dS K`, `dK = dSᵀ Q`.
    fn bwd(&self, qkv_t: &Tensor, _out: &Tensor, dout: &Tensor) -> Result<Option<Tensor>> {
        let (b, t, w) = qkv_t.dims3()?;
        let (h, g, hd) = (self.h, self.g, self.hd);
        let mask = self.mask.as_ref().map(|m| m.flatten_all()?.to_vec1::<f32>()).transpose()?;
        let saved =
            std::mem::take(&mut *self.saved.lock().map_err(|_| candle_core::Error::Msg("poisoned".into()))?);
        let saved = (saved.len() == b * h * t * t).then_some(saved);
        let dqkv = with_f32(qkv_t, |qkv| {
            with_f32(dout, |dout| {
                let mut dqkv = vec![0f32; qkv.len()];
                let dptr = SendPtr(dqkv.as_mut_ptr());
                (0..b * g).into_par_iter().for_each(|task| {
                    let (bi, kh) = (task / g, task % g);
                    let (mut p, mut dp) = (vec![0f32; t * t], vec![0f32; t * t]);
                    let base = bi * t * w;
                    let (q_of, k_at, v_at) =
                        (|qh: usize| base + qh * hd, base + (h + kh) * hd, base + (h + g + kh) * hd);
                    for qh in kh * (h / g)..(kh + 1) * (h / g) {
                        match &saved {
                            Some(all) => p.copy_from_slice(&all[(bi * h + qh) * t * t..][..t * t]),
                            None => self.probs(qkv, mask.as_deref(), bi, qh, t, &mut p),
                        }
                        let dout_at = bi * t * h * hd + qh * hd;
                        // SAFETY: this task alone writes batch row `bi`'s columns of query head
                        // `qh` and of key/value head `kh` in `dqkv`.
                        unsafe {
                            // dV += Pᵀ dO
                            small_matmul(
                                (t, hd, t),
                                (dptr.get().add(v_at), w),
                                true,
                                (p.as_ptr(), 1, t),
                                (dout.as_ptr().add(dout_at), h * hd, 1),
                            );
                            // dP = dO Vᵀ
                            small_matmul(
                                (t, t, hd),
                                (dp.as_mut_ptr(), t),
                                false,
                                (dout.as_ptr().add(dout_at), h * hd, 1),
                                (qkv.as_ptr().add(v_at), 1, w),
                            );
                        }
                        for i in 0..t {
                            let (pr, dr) = (&p[i * t..(i + 1) * t], &mut dp[i * t..(i + 1) * t]);
                            let dot: f32 = pr.iter().zip(dr.iter()).map(|(a, b)| a * b).sum();
                            for j in 0..t {
                                dr[j] = self.scale * pr[j] * (dr[j] - dot);
                            }
                        }
                        unsafe {
                            // dQ = dS K
                            small_matmul(
                                (t, hd, t),
                                (dptr.get().add(q_of(qh)), w),
                                true,
                                (dp.as_ptr(), t, 1),
                                (qkv.as_ptr().add(k_at), w, 1),
                            );
                            // dK += dSᵀ Q
                            small_matmul(
                                (t, hd, t),
                                (dptr.get().add(k_at), w),
                                true,
                                (dp.as_ptr(), 1, t),
                                (qkv.as_ptr().add(q_of(qh)), w, 1),
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

/// Fused attention from the output of the fused QKV projection (`[b, t, (h + 2g) · hd]`);
/// returns `[b, t, h · hd]`, ready for the output projection.
pub fn attention(qkv: &Tensor, h: usize, g: usize, scale: f64, mask: Option<&Tensor>) -> Result<Tensor> {
    let (_, _, w) = qkv.dims3()?;
    let mask = mask.map(|m| m.contiguous()).transpose()?;
    let op =
        AttentionOp { h, g, hd: w / (h + 2 * g), scale: scale as f32, mask, saved: Mutex::new(Vec::new()) };
    qkv.contiguous()?.apply_op1(op)
}
