//! A workload: an arrival process plus request shapes, and the schedule it generates.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::arrivals::{self, ArrivalProcess, Limit};
use crate::config::{ConfigTable, SourceFile, SpannedEntries};
use crate::lengths::LengthDist;
use crate::rng::seeded;
use crate::{Arrival, ConfigError, Request, Schedule};

/// A `[[workloads]]` entry as written in a suite.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadEntry {
    /// Unique name, used in records and reports.
    pub name: Spanned<String>,
    /// `{ process = "poisson", rate_qps = 2.0 }`; the other keys belong to the process.
    pub arrival: Spanned<SpannedEntries>,
    /// Prompt length distribution, in tokens of a byte-level tokenizer.
    pub input_tokens: LengthDist,
    /// Generation length distribution (max new tokens).
    pub output_tokens: LengthDist,
}

/// A workload ready to generate schedules.
#[derive(Debug)]
pub struct WorkloadSpec {
    /// Unique name within the suite.
    pub name: String,
    /// The arrival process.
    pub arrival: Box<dyn ArrivalProcess>,
    /// Prompt lengths.
    pub input_tokens: LengthDist,
    /// Generation lengths.
    pub output_tokens: LengthDist,
}

impl WorkloadSpec {
    /// Builds the workload from its suite entry; `index` is its position in `[[workloads]]`.
    pub fn from_entry(entry: WorkloadEntry, source: &Arc<SourceFile>, index: usize) -> Result<Self, ConfigError> {
        let path = format!("workloads[{index}]");
        let name = entry.name.get_ref().trim().to_string();
        if name.is_empty() || name.contains(['/', '\\']) || name.chars().any(char::is_control) {
            return Err(source.error_at(
                entry.name.span().start,
                &format!("{path}.name"),
                "must be a non-empty name without slashes or control characters",
            ));
        }
        let span = entry.arrival.span();
        let table = ConfigTable::new(
            source.clone(),
            format!("{path}.arrival"),
            span,
            entry.arrival.into_inner(),
        );
        Ok(Self {
            name,
            arrival: arrivals::build(table)?,
            input_tokens: entry.input_tokens,
            output_tokens: entry.output_tokens,
        })
    }

    /// Generates this workload's schedule: same `seed` ⇒ same schedule, bit for bit.
    ///
    /// Gaps longer than `idle_gap_cap` are shortened to it (time compression); the time
    /// removed is kept on each arrival so energy accounting can add the idle cost back.
    pub fn schedule(&self, seed: u64, limit: Limit, idle_gap_cap: Option<Duration>) -> Schedule {
        let mut arrival_rng = seeded(seed, &["arrivals", &self.name]);
        let mut shape_rng = seeded(seed, &["requests", &self.name]);
        let offsets = self.arrival.offsets(&mut arrival_rng, limit);
        let arrivals = offsets
            .into_iter()
            .enumerate()
            .map(|(i, at)| {
                let input = self.input_tokens.sample(&mut shape_rng);
                let output = self.output_tokens.sample(&mut shape_rng);
                let prompt = crate::prompts::synthesize(&mut shape_rng, input as usize);
                Arrival {
                    at,
                    skipped: Duration::ZERO,
                    request: Request {
                        id: i as u64,
                        prompt,
                        max_new_tokens: output,
                        target_input_tokens: input,
                    },
                }
            })
            .collect();
        Schedule::new(self.name.clone(), self.arrival.describe(), arrivals, idle_gap_cap)
    }
}
