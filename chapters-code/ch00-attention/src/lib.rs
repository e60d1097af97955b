//! The on-ramp: attention from scratch.
//!
//! A reader who has never seen attention follows one small example through every
//! step: the input vectors, the learned projections to queries, keys and values,
//! the scores, the mask, the softmax and the output, once with a bidirectional and
//! once with a causal mask. Then the four architecture families of chapter 1 as
//! block diagrams, drawn from chapter 1's model shape. The modules follow the page:
//! [`example`] (the worked example), [`diagrams`], then [`outputs`].

pub mod diagrams;
pub mod example;
pub mod outputs;

pub use example::{Example, Worked, work};
pub use outputs::outputs;
use transformer::chapter::{Chapter, Outputs, Preset};

/// The on-ramp has nothing to set: the example is small by design.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {}

/// The on-ramp, as the harness runs it.
pub struct Attention;

impl Chapter for Attention {
    const ID: &'static str = "ch00";
    const PACKAGE: &'static str = env!("CARGO_PKG_NAME");
    const ABOUT: &'static str = "Attention from scratch: one four-token example worked through every step under a \
                                 bidirectional and a causal mask, and the four families as block diagrams.";
    type Args = Args;
    type Settings = Preset;

    fn settings(preset: Preset, _args: &Args) -> anyhow::Result<Preset> {
        match preset {
            Preset::Large => {
                anyhow::bail!(
                    "the on-ramp has no large configuration: its example is small by design"
                )
            }
            p => Ok(p),
        }
    }

    fn run(_preset: &Preset) -> anyhow::Result<Outputs> {
        outputs(&work(&Example::book())?)
    }
}
