//! The one error type of the library. Each variant names what went wrong and where: the file,
//! and the media time when there is one. `main` prints it once, on one line, and exits 2.

use std::path::PathBuf;

use crate::time::Ts;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input could not be opened or is not media we can read. Not recoverable.
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },

    /// Decoding failed part way through. `at` is the media time reached.
    #[error("{path}: {reason} at {at}")]
    Decode { path: PathBuf, at: Ts, reason: String },

    /// A model could not be found, read or run.
    #[error("{path}: {reason}")]
    Model { path: PathBuf, reason: String },

    /// A pipeline config (TOML) or a command-line value is invalid. Checked before any thread starts.
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },

    /// Output could not be written. Nothing the user had is touched.
    #[error("{path}: {reason}")]
    Output { path: PathBuf, reason: String },

    /// Ctrl-C, or another stage failed first and this one was told to stop.
    #[error("interrupted")]
    Interrupted,

    /// A bug: a stage panicked. The run's other inputs go on.
    #[error("internal error: {0}")]
    Internal(String),

    /// Inference failed inside candle.
    #[error("{path}: model failure at {at}: {source}")]
    Inference { path: PathBuf, at: Ts, source: candle_core::Error },
}

impl Error {
    pub fn input(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Error::Input { path: path.into(), reason: reason.to_string() }
    }
    pub fn model(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Error::Model { path: path.into(), reason: reason.to_string() }
    }
    pub fn config(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Error::Config { path: path.into(), reason: reason.to_string() }
    }
    pub fn output(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Error::Output { path: path.into(), reason: reason.to_string() }
    }
}
