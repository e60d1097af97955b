//! Attention straight from the fused QKV projection, and its backward pass.

use super::*;

/// Head layout of fused attention: `(b, t, hd, (mask_rows, mask_heads))` for `qkv`
/// of shape `[b, t, (h + 2g) · hd]` and a mask of shape `[t, t]` or `[m, n, t, t]`
/// with `m` 1 or `b` and `n` 1 or `h`. An error unless `h` and `g` are positive,
/// `g` divides `h` (each key/value head serves `h / g` query heads) and `hd > 0`.
pub(super) fn attention_dims(
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
pub(super) struct AttentionOp {
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
    pub(super) fn probs(
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
        // The forward pass saves every head's P; the first backward takes them and
        // any later one recomputes them. A buffer of another size would be a bug.
        let saved = match saved.len() {
            0 => None,
            n if n == b * h * t * t => Some(saved),
            n => {
                return Err(candle_core::Error::Msg(format!(
                    "fused attention: {n} saved probabilities for b·h·t² = {}",
                    b * h * t * t
                )));
            }
        };
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
    use candle_core::{CustomOp1, DType, Tensor};

    use super::*;

    /// A backward pass that finds saved probabilities of the wrong size refuses to
    /// use them (the forward pass always saves `b·h·t²`; this guards the code that
    /// keeps them).
    #[test]
    fn saved_probabilities_of_the_wrong_size_are_an_error() {
        let (b, t, h, g, hd) = (1, 3, 2, 1, 4);
        let qkv =
            Tensor::ones((b, t, (h + 2 * g) * hd), DType::F32, &crate::DEVICE)
                .unwrap();
        let out =
            Tensor::zeros((b, t, h * hd), DType::F32, &crate::DEVICE).unwrap();
        let op = AttentionOp {
            h,
            g,
            hd,
            scale: 0.5,
            mask: None,
            mask_rows: 1,
            mask_heads: 1,
            saved: Mutex::new(vec![0.0; b * h * t * t - 1]),
        };
        let err = op.bwd(&qkv, &out, &out).unwrap_err().to_string();
        assert!(err.contains("saved probabilities"), "{err}");
    }
}
