//! oae-scorecards: the Overhead-Aware Efficiency cost model, scoring and the regression gate.
//!
//! Three kinds of input meet here (docs/scoring.md): **measured** figures from a run
//! ([`rundir`]), **declared** adoption costs from each method's manifest ([`manifest`]), and
//! **site** assumptions — prices, grid, hardware, labour — with documented defaults ([`site`]).
//! [`cost`] turns them into the cost of serving a request rate for the site's horizon, the
//! cost per 1,000 good requests, the OAE ratio against a baseline and the break-even rate;
//! [`score`] does it for every (method, workload) of a run with bootstrap CIs over requests
//! ([`bootstrap`]), declared ranges and a sensitivity table; [`gate`] compares two runs on
//! the [`metric`]s.
//!
//! Modules depend one way: `metric` ← `scoring` ← `score` ← `gate`, all reading the run
//! directory through `oae_core::rundir` ([`rundir`] keeps only what scoring needs).

pub mod bootstrap;
pub mod cost;
pub mod gate;
pub mod manifest;
pub mod metric;
pub mod noise;
pub mod rundir;
pub mod score;
pub mod scoring;
pub mod site;
pub mod synthetic;

pub use cost::{BreakEven, Breakdown, Measured, break_even, cost_at, oae_ratio};
pub use gate::{GateConfig, GateReport};
pub use manifest::{Level, Manifest, Weeks};
pub use metric::{Metric, Thresholds};
pub use rundir::RunData;
pub use score::{Options, Scorecards, Verdict, score};
pub use scoring::Scoring;
pub use site::Site;

use oae_core::ConfigError;

/// Why scoring, reporting or gating could not proceed. Every variant maps to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// A configuration file (site, manifest, suite section) is wrong.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A run-directory file holds something unexpected.
    #[error("{file}:{line}: {}{message}", if field.is_empty() { String::new() } else { format!("field `{field}`: ") })]
    Data {
        /// The file.
        file: String,
        /// 1-based line (0: unknown).
        line: usize,
        /// The field.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Wrong use: a missing directory, an incomplete run without --allow-partial, ...
    #[error("{0}")]
    Usage(String),
}

impl ScoreError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ScoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
