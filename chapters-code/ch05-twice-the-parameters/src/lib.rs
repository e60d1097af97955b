//! Chapter 5: twice the parameters?
//!
//! Su Jianlin's post, and the article after it, say an encoder-decoder beats a
//! decoder only because it has twice the parameters, and that at equal parameters
//! and equal inference cost a decoder-only model is optimal. This crate trains T5's
//! Table 2 shapes (and the decoder with as many parameters as the encoder-decoder)
//! on the same pairs in the same order, with several seeds, and compares them at
//! matched FLOPs, matched parameters and matched everything; then it runs Su's
//! second experiment, a masked-LM encoder whose heads are half forward- and half
//! backward-causal. The modules follow the page: settings, the contenders, the
//! data, training, evaluation, statistics, Su's encoders, then the report and its
//! outputs.

pub mod claims;
pub mod contenders;
pub mod data;
pub mod evaluation;
pub mod outputs;
pub mod report;
pub mod settings;
pub mod stats;
pub mod su;
pub mod training;

pub use contenders::*;
pub use data::*;
pub use evaluation::*;
pub use outputs::*;
pub use report::*;
pub use settings::*;
pub use stats::*;
pub use su::*;
pub use training::*;
pub use transformer::chapter::Chapter;
pub use transformer::{IntoStaticStr, Named, VariantArray};
