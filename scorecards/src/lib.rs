//! oae-scorecards: the Overhead-Aware Efficiency cost model.
//!
//! Three kinds of input meet here (design/oae-model.md): **measured** figures from a run,
//! **declared** adoption costs from each method's manifest ([`manifest`]), and **site**
//! assumptions — prices, grid, hardware, labour — with documented defaults ([`site`]).
//! [`cost`] turns them into the cost of serving a request rate for the site's horizon, the
//! cost per 1,000 good requests, the OAE ratio against a baseline and the break-even rate.

pub mod cost;
pub mod manifest;
pub mod site;

pub use cost::{BreakEven, Breakdown, Measured, break_even, cost_at, oae_ratio};
pub use manifest::{Level, Manifest, Weeks};
pub use site::Site;
