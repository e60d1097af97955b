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
pub use transformer::chapter::Chapter;
use transformer::chapter::{Outputs, Preset};

/// The on-ramp has nothing to set: the example is small by design.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {}

/// The on-ramp's one run: quick and default are the same example.
#[derive(Debug, Clone, Copy)]
pub struct Settings;

impl Chapter for Settings {
    type Args = Args;
    type Error = anyhow::Error;

    fn new(preset: Preset, _args: &Args) -> anyhow::Result<Settings> {
        if preset == Preset::Large {
            anyhow::bail!(
                "the on-ramp has no large configuration: its example is small by design"
            );
        }
        Ok(Settings)
    }

    fn run(&self) -> anyhow::Result<Outputs> {
        outputs(&work(&Example::book())?)
    }
}
