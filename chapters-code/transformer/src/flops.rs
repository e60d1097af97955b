//! A FLOP counter for the matrix multiplications the models actually run.
//!
//! Every matmul in [`crate::layers`] and [`crate::attention`] reports its cost
//! here, so a test can compare the formulas in [`crate::config`] with what a
//! forward pass really performs.

use std::cell::Cell;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// Record `n` FLOPs (called by the layers; free when nobody is counting).
pub fn add(n: u64) {
    COUNT.with(|c| c.set(c.get().wrapping_add(n)));
}

/// Run `f` and return its result with the FLOPs its matmuls performed on this
/// thread.
pub fn count<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = COUNT.with(Cell::get);
    let r = f();
    let after = COUNT.with(Cell::get);
    (r, after.wrapping_sub(before))
}
