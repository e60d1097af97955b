//! Chapter 3: the low-rank argument against bidirectional attention, measured.
//!
//! The claim (Su Jianlin, 2023): a bidirectional attention matrix `softmax(QKᵀ/√d)`
//! is `n × n` but built from `n × d` factors, so it is low-rank and less
//! expressive; a causal attention matrix is lower-triangular with a positive
//! diagonal, so it is always full rank.
//!
//! This crate builds both matrices from random (and, in [`trained`], learned)
//! queries and keys, and measures them in `f64` with faer's SVD: numerical rank at
//! several tolerances, entropy effective rank, stable rank, condition number and
//! log-determinant. [`collapse`] follows token representations through deep stacks,
//! the remaining modules run every experiment of the page, in its order, and write
//! the book's figures, tables and `results.json`.
//!
//! Modules, in the page's order: [`measures`] (the code: the matrices and their
//! measures), [`sweep`] (Su's setting; temperature, size and head dimension; the
//! causal determinant; a head's output), [`hadamard`], [`collapse`], [`trained`],
//! then [`report`] and [`outputs`]. The `probe` binary measures one point of the
//! sweep from the command line.

pub mod claims;
pub mod collapse;
pub mod hadamard;
pub mod measures;
pub mod outputs;
pub mod report;
pub mod settings;
pub mod sweep;
pub mod trained;

pub use hadamard::*;
pub use measures::*;
pub use outputs::*;
pub use report::*;
pub use settings::*;
pub use sweep::*;
pub use transformer::chapter::Chapter;
pub use transformer::{IntoStaticStr, Named, VariantArray};
