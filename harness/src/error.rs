//! Errors of the harness and of the methods plugged into it.

use std::path::PathBuf;

use oae_core::ConfigError;

/// Everything that can stop a run or a command before it produces results.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A suite or plug-in configuration problem, located.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file or directory could not be read or written.
    #[error("{}: {source}; {hint}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
        /// How to fix it.
        hint: String,
    },
    /// A method could not be built or prepared.
    #[error("method `{label}`: {source}")]
    Method {
        /// The method's label in the suite.
        label: String,
        /// What went wrong.
        source: MethodError,
    },
    /// Parameters that cannot be run as given.
    #[error("{0}")]
    Invalid(String),
}

impl HarnessError {
    /// An I/O error with the path and a fix.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error, hint: impl Into<String>) -> Self {
        Self::Io {
            path: path.into(),
            source,
            hint: hint.into(),
        }
    }
}

/// An error from a method: its configuration, its setup, or serving one request.
#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    /// The method's configuration table is wrong, located.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Anything else, in words.
    #[error("{0}")]
    Failed(String),
    /// The method cannot apply to this suite (found at setup: a knowledge base larger than
    /// the model's context, …). A finding, not a failure: the run records it, skips the
    /// method's replays and goes on; the scorecards list the method as not applicable.
    #[error("not applicable: {0}")]
    NotApplicable(String),
    /// The request ran out of time inside the method (a server that never answered): the
    /// record's outcome is `timeout`.
    #[error("{0}")]
    Timeout(String),
    /// The request was refused by what serves it (HTTP 429): the record's outcome is
    /// `rejected`, counted apart from errors.
    #[error("{0}")]
    Rejected(String),
}

impl MethodError {
    /// A failure described in words.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// A limit that makes the method inapplicable here, in words (the sizes and the fix).
    pub fn not_applicable(message: impl Into<String>) -> Self {
        Self::NotApplicable(message.into())
    }
}
