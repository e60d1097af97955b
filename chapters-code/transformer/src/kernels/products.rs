//! The matrix products every kernel is built on: strided views checked against their slices, and `gemm` calls into disjoint output rows.

/// A read-only strided matrix inside a slice: element `(i, j)` is `data[offset +
/// i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    data: &'a [f32],
    offset: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    pub(super) fn new(
        data: &'a [f32],
        offset: usize,
        rs: usize,
        cs: usize,
    ) -> Self {
        View { data, offset, rs, cs }
    }

    /// A pointer to element `(0, 0)`, after checking that every element of a `rows
    /// × cols` matrix with these strides lies inside `data` (rows and cols both >
    /// 0).
    pub(super) fn ptr(&self, rows: usize, cols: usize) -> *const f32 {
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
pub(super) fn in_bounds(
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
pub(super) struct SharedOut<'a> {
    ptr: *mut f32,
    len: usize,
    _buf: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a `SharedOut` is only written through `gemm_into`, whose contract makes
// every caller write elements that no other thread reads or writes at the same
// time.
unsafe impl Sync for SharedOut<'_> {}

impl<'a> SharedOut<'a> {
    pub(super) fn new(buf: &'a mut [f32]) -> Self {
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
pub(super) unsafe fn gemm_into(
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
pub(super) fn matmul(
    dims: (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: View,
    rhs: View,
    parallel: bool,
) {
    let threads = if parallel { rayon::current_num_threads() } else { 1 };
    matmul_on(threads, dims, dst, accumulate, lhs, rhs)
}

/// One product of [`matmul_pair`].
pub(super) type Product<'a, 'b> =
    ((usize, usize, usize), &'b mut [f32], bool, View<'a>, View<'a>);

/// Two independent products at once, each on half of the pool's threads (on two
/// threads: each on one, with no hand-off inside either). The backward pass of a
/// linear layer has two products of equal cost, `dx = dy W` and `dW = dyᵀ x`; side
/// by side they keep both cores busy with less synchronisation than one after the
/// other on both. Each result is the same as [`matmul`]'s.
pub(super) fn matmul_pair(a: Product, b: Product) {
    let half = (rayon::current_num_threads() / 2).max(1);
    let ((da, dsta, acca, la, ra), (db, dstb, accb, lb, rb)) = (a, b);
    rayon::join(
        || matmul_on(half, da, dsta, acca, la, ra),
        || matmul_on(half, db, dstb, accb, lb, rb),
    );
}

/// [`matmul`] on `threads` threads of the pool.
fn matmul_on(
    threads: usize,
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: View,
    rhs: View,
) {
    assert_eq!(dst.len(), m * n, "output is not m × n");
    let par = if threads > 1 {
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

/// `dst (m × n, at offset, row stride dst_rs) (+)= lhs (m × k) · rhs (k × n)` on
/// the calling thread, into a buffer that other tasks write elsewhere at the same
/// time.
///
/// # Safety
///
/// As [`gemm_into`]: no other thread may read or write the elements of `dst`
/// written here.
pub(super) unsafe fn small_matmul(
    dims: (usize, usize, usize),
    dst: (&SharedOut, usize, usize),
    accumulate: bool,
    lhs: View,
    rhs: View,
) {
    // SAFETY: the caller's contract is `gemm_into`'s.
    unsafe { gemm_into(dims, dst, accumulate, lhs, rhs, gemm::Parallelism::None) }
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
