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

/// What a panic said.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
    what.unwrap_or_else(|| "no message".into())
}

thread_local! {
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes the panics that [`contain_panic`] catches silent: the program's panic hook, wrapped
/// so that it prints every other panic as before. Called once, by the program at its start (a
/// library does not set a process's hooks).
pub fn silence_contained_panics() {
    let printing = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !CONTAINED.with(|c| c.get()) {
            printing(info)
        }
    }));
}

/// Runs `f`, which calls others' code (a decoder) that may panic on input it should have
/// refused; a panic becomes its message (the caller reports it as a refusal of the input), and
/// is not printed where the program called [`silence_contained_panics`].
pub fn contain_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    let was = CONTAINED.with(|c| c.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(was));
    r.map_err(|p| panic_message(&*p))
}
