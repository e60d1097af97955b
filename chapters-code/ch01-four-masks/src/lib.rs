//! Chapter 1: one Transformer, four masks.
//!
//! The article's first claim is a taxonomy: encoder-only (BERT), encoder-decoder
//! (T5, BART), decoder-only (GPT) and prefix LM (UniLM) differ mainly in which
//! positions may attend to which. This crate builds the shared library's real
//! models from one configuration and reads off everything the page shows: the
//! attention each model actually computes, the parameters and FLOPs each one has,
//! and what changes when one set of weights runs under two masks.
//!
//! The modules follow the page: the settings, the code (models and the example),
//! then the experiment's three parts, then the report and its outputs.

pub mod claims;
pub mod costs;
pub mod maps;
pub mod models;
pub mod report;
pub mod settings;
pub mod sharing;

pub use report::{Computed, Report, compute, outputs, results_json};
pub use settings::{Args, Settings, SettingsError};
pub use transformer::chapter::Chapter;
