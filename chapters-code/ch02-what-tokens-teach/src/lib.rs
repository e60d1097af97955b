//! Chapter 2: what each token teaches.
//!
//! The article dismisses BERT because it is trained by masked-language modelling
//! and praises GPT's next-token prediction. Part of the difference is plain
//! arithmetic: how many positions of a sequence receive a loss. This crate
//! generates the book's synthetic corpus, trains its BPE tokenizer, runs every
//! objective of the shared library over the whole corpus to measure that fraction,
//! and trains the same small model under full LM, prefix LM and masked LM for the
//! same number of tokens seen. The modules follow the page: settings, the corpus
//! and the tokenizer, the objectives, signal density, training, then the report and
//! its outputs.

pub mod claims;
pub mod corpus;
pub mod density;
pub mod objectives;
pub mod outputs;
pub mod report;
pub mod settings;
pub mod training;

pub use corpus::*;
pub use density::*;
pub use objectives::*;
pub use outputs::*;
pub use report::*;
pub use settings::*;
pub use training::*;
pub use transformer::chapter::Chapter;
pub use transformer::{IntoStaticStr, Named, VariantArray};
