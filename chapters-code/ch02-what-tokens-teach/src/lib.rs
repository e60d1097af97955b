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
use transformer::chapter::{Chapter, Outputs, Preset};
pub use transformer::{IntoStaticStr, Named, VariantArray};

/// Chapter 2, as the harness runs it.
pub struct WhatTokensTeach;

impl Chapter for WhatTokensTeach {
    const ID: &'static str = "ch02";
    const PACKAGE: &'static str = env!("CARGO_PKG_NAME");
    const ABOUT: &'static str = "What each token teaches: a synthetic corpus and its BPE tokenizer, every pretraining \
                                 objective applied to it, the fraction of positions that receive a loss, and one small \
                                 model trained under full LM, prefix LM and masked LM for the same number of tokens seen.";
    type Args = Args;
    type Settings = Settings;

    fn settings(preset: Preset, args: &Args) -> anyhow::Result<Settings> {
        Ok(Settings::new(preset, args)?)
    }

    fn run(settings: &Settings) -> anyhow::Result<Outputs> {
        outputs(&compute(settings)?)
    }
}
