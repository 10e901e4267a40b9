//! oae-workloads: what arrives and when.
//!
//! A [`Schedule`] is the whole, pre-generated list of [`Arrival`]s one workload replays:
//! intended arrival offsets from a seeded [`ArrivalProcess`], and requests whose prompts are
//! drawn from a bundled prompt set at lengths from a [`LengthDist`]. Schedules are hashed so
//! run.json can prove two runs replayed the same traffic.
//!
//! This crate is the bottom of the dependency chain (workloads ← harness ← methods); it also
//! owns [`config::ConfigTable`], the span-aware TOML table that plug-ins decode their own
//! configuration from, so every plug-in error names the file, line and key.

pub mod arrivals;
pub mod config;
mod error;
pub mod fit;
pub mod lengths;
pub mod prompts;
mod request;
pub mod rng;
mod schedule;
pub mod traces;
pub mod workload;

pub use arrivals::{ArrivalProcess, ArrivalSpec, Limit};
pub use error::ConfigError;
pub use lengths::LengthDist;
pub use request::{Arrival, Request};
pub use schedule::{Compression, Schedule};
pub use workload::WorkloadSpec;
