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
pub use transformer::chapter::Chapter;
pub use transformer::{IntoStaticStr, Named, VariantArray};
