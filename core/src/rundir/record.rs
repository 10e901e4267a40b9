//! The per-request record: one line of requests.jsonl, written by the harness and read back
//! by scoring through this one type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Slo;

/// How a request ended. Every outcome is recorded; only `ok` counts as good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Served completely.
    Ok,
    /// The method returned an error (or panicked).
    Error,
    /// Exceeded the per-request timeout.
    Timeout,
    /// Refused by a queue bound or concurrency cap.
    Rejected,
    /// Released but never served because the run was aborted.
    Cancelled,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Timeout,
        Outcome::Rejected,
        Outcome::Cancelled,
    ];

    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Rejected => "rejected",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Everything measured about one request. Times are seconds from the replay start on the
/// monotonic clock; durations are milliseconds; energy is joules.
///
/// `Itl` is the type of `itl_ms`: every inter-token latency as written and read back; or
/// [`Skipped`] for readers that need the rest of the record but not the latencies
/// ([`RecordWithoutItl`]: scoring a million records parses a third faster). Either way the
/// field names, and the strictness, are this one definition's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestRecord<Itl = Vec<f64>> {
    /// Method label.
    pub method: String,
    /// Workload name.
    pub workload: String,
    /// Request id within the schedule.
    pub request_id: u64,
    /// Trial number (repetitions of the same cell).
    pub trial: u32,
    /// Which method instance (worker) served it.
    #[serde(deserialize_with = "super::present")]
    pub instance: Option<u32>,
    /// Arrived during warm-up (by intended time): recorded, excluded from statistics.
    pub warmup: bool,
    /// Arrived during cool-down (the last `cooldown_s` of the schedule, by intended time):
    /// recorded, excluded from statistics.
    pub cooldown: bool,
    /// Intended arrival.
    pub intended_s: f64,
    /// When the dispatcher released it into the queue.
    pub dispatched_s: f64,
    /// When a worker began serving it.
    #[serde(deserialize_with = "super::present")]
    pub started_s: Option<f64>,
    /// When the first token reached the sink.
    #[serde(deserialize_with = "super::present")]
    pub first_token_s: Option<f64>,
    /// When serving ended (success or failure).
    #[serde(deserialize_with = "super::present")]
    pub finished_s: Option<f64>,
    /// Time to first token, from intended arrival.
    #[serde(deserialize_with = "super::present")]
    pub ttft_ms: Option<f64>,
    /// End to end, from intended arrival to finish.
    #[serde(deserialize_with = "super::present")]
    pub e2e_ms: Option<f64>,
    /// Wait in the queue (started − dispatched).
    #[serde(deserialize_with = "super::present")]
    pub queue_ms: Option<f64>,
    /// Release lateness (dispatched − intended).
    pub dispatch_lag_ms: f64,
    /// Time the worker spent on it (finished − started).
    #[serde(deserialize_with = "super::present")]
    pub service_ms: Option<f64>,
    /// Mean time per output token after the first: (finished − first token) / (tokens − 1).
    #[serde(deserialize_with = "super::present")]
    pub tpot_ms: Option<f64>,
    /// Every inter-token latency (excludes TTFT).
    pub itl_ms: Itl,
    /// Prompt tokens under the method's tokenizer.
    #[serde(deserialize_with = "super::present")]
    pub input_tokens: Option<u32>,
    /// Tokens generated.
    pub output_tokens: u32,
    /// Requested maximum.
    pub max_new_tokens: u32,
    /// Why generation stopped (`length`, `eos`), for ok requests.
    #[serde(deserialize_with = "super::present")]
    pub stop_reason: Option<String>,
    /// Idle time removed before this arrival by time compression.
    pub idle_skipped_s: f64,
    /// Time no request was in service just before this request's intended arrival, as
    /// replayed (0 when it arrived while another was in service). Filled in when the replay
    /// ends; compressed gaps appear here at most `idle_gap_cap_s` long.
    #[serde(deserialize_with = "super::present")]
    pub idle_before_s: Option<f64>,
    /// The trace it came from recorded it as failed (replayed anyway, with one token).
    pub source_failed: bool,
    /// How it ended.
    pub outcome: Outcome,
    /// The error, for outcomes other than ok.
    #[serde(deserialize_with = "super::present")]
    pub error: Option<String>,
    /// Time per method phase.
    pub phases_ms: BTreeMap<String, f64>,
    /// Method counters.
    pub counters: BTreeMap<String, f64>,
    /// Dynamic energy (above the loaded-idle baseline), its token-work share; `None` without
    /// an idle baseline.
    #[serde(deserialize_with = "super::present")]
    pub energy_dyn_j: Option<f64>,
    /// Energy while the request was in service: its token-work share of dynamic and idle energy.
    #[serde(deserialize_with = "super::present")]
    pub energy_active_j: Option<f64>,
    /// Active energy plus an equal share of the energy of gaps with no request in service
    /// (including idle energy skipped by time compression, added analytically).
    #[serde(deserialize_with = "super::present")]
    pub energy_amortized_j: Option<f64>,
    /// Part of the active energy spent while the request was in prefill.
    #[serde(deserialize_with = "super::present")]
    pub energy_prefill_j: Option<f64>,
    /// Part of the active energy spent while the request was decoding.
    #[serde(deserialize_with = "super::present")]
    pub energy_decode_j: Option<f64>,
    /// Facility-level carbon of the amortized energy plus the embodied share, gCO2e.
    #[serde(deserialize_with = "super::present")]
    pub co2e_g: Option<f64>,
    /// The meter the energy came from.
    #[serde(deserialize_with = "super::present")]
    pub energy_source: Option<String>,
    /// Whether the energy is an estimate rather than a measurement.
    pub energy_estimated: bool,
    /// The energy by domain (`gpu:0`, `cpu`, …): the parts the totals above sum.
    #[serde(default)]
    pub energy_by_domain: BTreeMap<String, DomainJ>,
    /// The CPU energy in the process view (oae's own share of the machine's; beside
    /// `energy_by_domain["cpu"]`, never added to the totals).
    #[serde(default)]
    pub energy_process_cpu: Option<DomainJ>,
    /// The task item asked (task workloads; `None` for synthetic prompts).
    #[serde(deserialize_with = "super::present")]
    pub task_id: Option<String>,
    /// The generated text, cut to `[run] keep_output_chars` characters (`None` when not kept
    /// or the method cannot detokenize).
    #[serde(deserialize_with = "super::present")]
    pub output_text: Option<String>,
    /// Whether `output_text` was cut short of the full answer.
    pub output_truncated: bool,
    /// Quality scores by scorer (`em`, `f1`, …), in [0, 1]; empty without a reference.
    pub quality: BTreeMap<String, f64>,
    /// Output tokens spent before the final answer (chain of thought, or inside thinking
    /// tags); `None` when the task asks no reasoning mode and the text has no thinking tags.
    #[serde(default)]
    pub reasoning_tokens: Option<u32>,
    /// Output tokens of the final answer (with `reasoning_tokens`).
    #[serde(default)]
    pub answer_tokens: Option<u32>,
}

/// One domain's part of a request's energy, J.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainJ {
    /// Active energy.
    pub active_j: Option<f64>,
    /// Dynamic energy (`None` without an idle baseline).
    pub dyn_j: Option<f64>,
    /// Amortized energy.
    pub amortized_j: Option<f64>,
}

/// A request record read without its inter-token latencies.
pub type RecordWithoutItl = RequestRecord<Skipped>;

/// A field that must be present and is skipped without being parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Skipped;

impl<'de> Deserialize<'de> for Skipped {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Skipped)
    }
}

impl<Itl> RequestRecord<Itl> {
    /// Counted in statistics: outside the warm-up and cool-down windows.
    pub fn measured(&self) -> bool {
        !self.warmup && !self.cooldown
    }

    /// Whether this request is *good* under `slo`: it succeeded within every objective set,
    /// and, with a quality bar, its answer scored at least the bar (the one rule goodput, SLO
    /// attainment and the scorecards share).
    pub fn good(&self, slo: &Slo) -> bool {
        slo.good(self.outcome, self.ttft_ms, self.e2e_ms, self.tpot_ms)
            && slo.quality.as_ref().is_none_or(|q| q.met(&self.quality))
    }
}
