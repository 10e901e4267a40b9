//! oae-harness: replays a schedule open-loop against methods and measures what happens.
//!
//! The harness owns the plug sockets — [`Method`]/[`MethodSpec`] for inference methods and
//! [`Meter`] for energy sources — and never depends on an implementation of either. It owns
//! the runner (dispatcher thread + FIFO queue + workers), the per-request
//! [`RequestRecord`], the statistics with confidence intervals, and the run directory.
//!
//! Timing model: every latency is measured from the request's *intended* arrival on a
//! monotonic clock, so a late dispatcher or a busy worker shows up as latency (no
//! coordinated omission); dispatch lag and queue wait are recorded separately.

pub mod carbon;
pub mod clock;
pub mod energy;
mod error;
pub mod histograms;
pub mod host;
pub mod merge;
pub mod meters;
mod method;
mod record;
pub mod rundir;
pub mod runner;
pub mod session;
pub mod stats;
pub mod suite;
pub mod summary;

pub use error::{HarnessError, MethodError};
pub use meters::{EnergyKind, Meter, MeterReading, MeterSpec};
pub use method::{
    BuildContext, Completion, ConfigKey, DeviceSpec, Flow, Method, MethodSpec, Probe, StopReason, TokenSink,
};
pub use record::{Outcome, RequestRecord};

/// The harness version, recorded in run.json.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
