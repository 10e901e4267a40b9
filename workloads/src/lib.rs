//! oae-workloads: what arrives and when.
//!
//! A [`Schedule`] is the whole, pre-generated list of [`Arrival`]s one workload replays:
//! intended arrival offsets from a seeded [`ArrivalProcess`], and requests whose prompts are
//! drawn from a bundled prompt set at lengths from a [`LengthDist`]. Schedules are hashed so
//! run.json can prove two runs replayed the same traffic.
//!
//! Dependencies flow one way: core ← workloads ← harness ← methods. Configuration tables,
//! their errors and the seeded RNG come from `oae-core`.

pub mod arrivals;
pub mod fit;
pub mod knowledge;
pub mod lengths;
pub mod prompts;
mod request;
mod schedule;
pub mod task;
pub mod traces;
pub mod workload;

pub use arrivals::{ArrivalProcess, ArrivalSpec, Limit};
pub use knowledge::{KnowledgeBase, KnowledgeBases};
pub use lengths::LengthDist;
pub use request::{Arrival, Request};
pub use schedule::{Compression, Schedule};
pub use task::{TaskRef, TaskSpec};
pub use workload::WorkloadSpec;

// This crate's own paths to what it uses from core.
pub(crate) use oae_core::{ConfigError, config, rng};
