//! Chapter 4: zero-shot generalisation in miniature.
//!
//! The article's third claim rests on Wang et al. (2022), who pretrained six
//! architecture–objective cells for the same number of tokens and evaluated them
//! zero-shot, before and after multitask finetuning. This crate runs the same grid
//! at CPU scale on the book's synthetic world: the six cells, three phases, several
//! seeds, rank classification over answer options, a paired bootstrap. The modules
//! follow the page: settings, the data, the cells, scoring, the phases, statistics,
//! then the report and its outputs.

pub mod cells;
pub mod claims;
pub mod data;
pub mod outputs;
pub mod phases;
pub mod report;
pub mod scoring;
pub mod settings;
pub mod stats;

pub use cells::*;
pub use data::*;
pub use outputs::*;
pub use phases::*;
pub use report::*;
pub use scoring::*;
pub use settings::*;
pub use stats::*;
use transformer::chapter::{Chapter, Outputs, Preset, workspace_root};
pub use transformer::{IntoStaticStr, Named, VariantArray};

/// Chapter 4, as the harness runs it.
pub struct ZeroShot;

impl Chapter for ZeroShot {
    const ID: &'static str = "ch04";
    const PACKAGE: &'static str = env!("CARGO_PKG_NAME");
    const ABOUT: &'static str = "Zero-shot generalisation in miniature: Wang et al. (2022)'s six architecture-objective \
                                 cells pretrained on the same tokens, evaluated zero-shot by rank classification before and \
                                 after multitask finetuning, and non-causal MLM adaptation, over several seeds.";
    type Args = Args;
    type Settings = Settings;

    fn settings(preset: Preset, args: &Args) -> anyhow::Result<Settings> {
        Ok(Settings::new(preset, args)?)
    }

    fn run(settings: &Settings) -> anyhow::Result<Outputs> {
        let dir = workspace_root()
            .join("target")
            .join("chapters")
            .join(format!("ch04-{}-checkpoints", settings.preset.name()));
        std::fs::create_dir_all(&dir)?;
        outputs(&compute(settings, &dir)?)
    }
}
