//! oae-harness: replays a schedule open-loop against methods and measures what happens.
//!
//! The harness owns the plug sockets — [`Method`]/[`MethodSpec`] for inference methods and
//! [`Meter`] for energy sources — and never depends on an implementation of either. It owns
//! the runner (dispatcher thread + FIFO queue + workers), energy attribution and carbon, and
//! writes the run directory whose types `oae-core` owns (`oae_core::rundir`).
//!
//! Timing model: every latency is measured from the request's *intended* arrival on a
//! monotonic clock, so a late dispatcher or a busy worker shows up as latency (no
//! coordinated omission); dispatch lag and queue wait are recorded separately.

pub mod carbon;
pub mod cells;
pub mod clock;
pub mod energy;
mod error;
pub mod histograms;
pub mod host;
pub mod import;
pub mod merge;
pub mod metered;
pub mod meters;
mod method;
pub mod mock;
pub mod resume;
pub mod rundir;
pub mod runner;
pub mod session;
pub mod slurm;
pub mod suite;
pub mod summary;

pub use error::{HarnessError, MethodError};
pub use meters::{Meter, MeterReading, MeterSpec};
pub use method::{
    BuildContext, Completion, ConfigKey, DeviceSpec, Flow, Method, MethodSpec, Probe, StopReason, TokenSink,
};

// This crate's own paths to the run-directory types and statistics it writes (owned by core).
pub(crate) use oae_core::rundir::{EnergyKind, Outcome, RequestRecord};
pub(crate) use oae_core::stats;

/// The harness version, recorded in run.json.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
