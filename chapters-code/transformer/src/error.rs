//! The library's one error type. Binaries and chapter crates use `anyhow` on top:
//! `?` turns an [`Error`] into an `anyhow::Error` with its causes kept.

use std::path::PathBuf;

use crate::config::ConfigError;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed: shapes that do not fit, a missing variable, a
    /// kernel's refusal.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A configuration that cannot build a model.
    #[error("invalid model configuration: {0}")]
    Config(#[from] ConfigError),
    /// Reading or writing a file.
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint that does not match the model it is loaded into.
    #[error("{}: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },
    /// The `tokenizers` crate failed, or a tokenizer is not what the book expects.
    #[error("tokenizer: {reason}")]
    Tokenizer {
        reason: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Serialising a value as JSON.
    #[error("serialising JSON")]
    Json(#[from] serde_json::Error),
    /// Training diverged or stopped learning.
    #[error("training: {0}")]
    Training(String),
    /// A chapter's training-step or evaluation callback failed.
    #[error("{what} {step}")]
    Callback {
        /// "training step" or "evaluation after step".
        what: &'static str,
        step: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io { action, path, source }
    }

    /// An [`Error::Tokenizer`] without an underlying cause.
    pub fn tokenizer(reason: impl Into<String>) -> Error {
        Error::Tokenizer { reason: reason.into(), source: None }
    }
}
