//! oae-core: the bottom of oae's crate graph, with no knowledge of any plug-in.
//!
//! - [`config`] — span-aware TOML tables that plug-ins decode their own configuration from,
//!   so every configuration error names the file, line and key ([`ConfigError`]).
//! - [`rng`] — seeded, portable randomness: one independent stream per purpose.
//! - [`stats`] — statistics with distribution-free confidence intervals.
//! - [`fmt`] — the one number format of everything printed for people.
//! - [`rundir`] — the run directory's format: the typed run.json, summary.json and request
//!   record that the harness writes and scoring reads, with a schema version.
//!
//! Every other oae crate depends on this one; it depends on none of them.

pub mod cache;
pub mod config;
mod error;
pub mod fmt;
pub mod rng;
pub mod rundir;
pub mod stats;

pub use error::ConfigError;
