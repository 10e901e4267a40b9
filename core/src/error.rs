//! The configuration error: a value that cannot be used, located in its file.

/// A configuration problem, located in its source file so the user can fix it.
///
/// Rendered as `FILE:LINE: KEY: MESSAGE`, lower-case, with the fix in the message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {key}: {message}")]
pub struct ConfigError {
    /// The file the value came from (or a label such as `suites/quick.toml (embedded)`).
    pub file: String,
    /// 1-based line of the offending key or value; 0 when unknown.
    pub line: usize,
    /// Dotted key path, e.g. `methods[0].temperature`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}
