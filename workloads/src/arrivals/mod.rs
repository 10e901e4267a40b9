//! Arrival processes: seeded generators of intended arrival offsets.
//!
//! Adding one = a file here with a `SPEC` and a line in [`registry`]. A process is selected in
//! a suite by `arrival = { process = "NAME", ... }`; the remaining keys are its own config.

mod constant;
mod diurnal;
mod gamma;
mod onoff;
mod poisson;

use std::fmt::Debug;
use std::time::Duration;

use crate::ConfigError;
use crate::config::ConfigTable;
use crate::rng::SeededRng;

/// How much of a process to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Exactly this many arrivals.
    Count(u64),
    /// Every arrival strictly before this offset.
    Duration(Duration),
}

/// A seeded generator of arrival offsets.
pub trait ArrivalProcess: Send + Sync + Debug {
    /// Intended arrival offsets from the replay start, non-decreasing, up to `limit`.
    fn offsets(&self, rng: &mut SeededRng, limit: Limit) -> Vec<Duration>;
    /// Long-run mean arrival rate, requests per second.
    fn mean_rate_qps(&self) -> f64;
    /// One line for run.json and the terminal, e.g. `poisson(rate_qps=2)`.
    fn describe(&self) -> String;
}

/// A registry entry: how to build an arrival process from its config table.
pub struct ArrivalSpec {
    /// The `process = "..."` name.
    pub name: &'static str,
    /// One line for `oae list workloads`.
    pub about: &'static str,
    /// Decodes the config table (without the `process` key) into a process.
    pub build: fn(&ConfigTable) -> Result<Box<dyn ArrivalProcess>, ConfigError>,
}

/// Every arrival process oae knows, one line each.
pub fn registry() -> &'static [ArrivalSpec] {
    &[constant::SPEC, poisson::SPEC, gamma::SPEC, onoff::SPEC, diurnal::SPEC]
}

/// Builds the process named by the table's `process` key.
pub fn build(mut table: ConfigTable) -> Result<Box<dyn ArrivalProcess>, ConfigError> {
    let names = || registry().iter().map(|s| s.name).collect::<Vec<_>>().join(", ");
    let Some(name) = table.take("process") else {
        return Err(table.error("process", format!("missing key `process`; one of: {}", names())));
    };
    let offset = name.span().start;
    let Some(name_str) = name.get_ref().as_str() else {
        return Err(table
            .source()
            .error_at(offset, &table.key_path("process"), "must be a string"));
    };
    match registry().iter().find(|s| s.name == name_str) {
        Some(spec) => (spec.build)(&table),
        None => Err(table.source().error_at(
            offset,
            &table.key_path("process"),
            format!("unknown arrival process `{name_str}`; one of: {}", names()),
        )),
    }
}

pub(crate) use onoff::process as onoff_process;

/// Accumulates gaps (seconds) drawn by `next_gap` into offsets until `limit`.
pub(crate) fn accumulate(limit: Limit, mut next_gap: impl FnMut() -> f64) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut t = 0.0f64;
    loop {
        match limit {
            Limit::Count(n) if out.len() as u64 >= n => break,
            _ => {}
        }
        t += next_gap();
        let at = Duration::from_secs_f64(t);
        if let Limit::Duration(d) = limit
            && at >= d
        {
            break;
        }
        out.push(at);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_process_lists_the_valid_ones() {
        let t = ConfigTable::parse("s.toml", "process = \"gamma-ish\"\nrate_qps = 1\n").unwrap();
        let e = build(t).unwrap_err();
        assert!(e.message.contains("constant") && e.message.contains("poisson"), "{e}");
        assert_eq!((e.line, e.key.as_str()), (1, "process"));
    }

    #[test]
    fn duration_limit_is_exclusive() {
        let v = accumulate(Limit::Duration(Duration::from_secs(3)), || 1.0);
        assert_eq!(v, vec![Duration::from_secs(1), Duration::from_secs(2)]);
    }
}
