//! Errors of the model core and adapters.

use oae_harness::MethodError;

/// What can go wrong in the model core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// The request does not fit the model.
    #[error("{0}")]
    Request(String),
    /// The model is not usable as configured.
    #[error("{0}")]
    Model(String),
}

impl From<Error> for MethodError {
    fn from(e: Error) -> Self {
        MethodError::Failed(e.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
