//! summary.json: per (method, workload) statistics with confidence intervals, energy and
//! carbon. The harness computes them (`oae_harness::summary`); scoring and reports read them
//! back through these types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::carbon::CarbonSummary;
use super::energy::EnergyKind;
use super::{Outcome, Slo};
use crate::stats::{Estimate, Stat};

/// Energy figures of one cell. Every field inherits `kind`; `estimated` repeats it plainly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergySummary {
    /// Meters the figures come from, `+`-joined (one per domain).
    pub source: String,
    /// Domains metered (`cpu`, `gpu:0`), `+`-joined.
    pub domain: String,
    /// Weakest kind among the meters used.
    pub kind: EnergyKind,
    /// True unless hardware counters measured every domain.
    pub estimated: bool,
    /// Whether the figures can be trusted: energy conserved, no counter reset or meter
    /// failure inside the window, every domain covered. See `invalid_reasons`.
    pub valid: bool,
    /// Why `valid` is false.
    pub invalid_reasons: Vec<String>,
    /// Domains served by a fallback meter (the primary failed or reset), and why.
    pub fallbacks: Vec<String>,
    /// Energy over the whole replay window, J.
    pub window_j: f64,
    /// Mean power over the replay window, W.
    pub mean_power_w: f64,
    /// Energy of pieces with at least one request in service, J.
    pub busy_j: f64,
    /// Energy of the window's pieces with no request in service, J.
    pub gap_j: f64,
    /// Loaded-idle power used (sum over domains), W; `None` without a baseline.
    #[serde(deserialize_with = "super::present")]
    pub idle_w: Option<f64>,
    /// Dynamic energy attributed to requests (Σ energy_dyn_j over all served), J.
    #[serde(deserialize_with = "super::present")]
    pub dyn_j: Option<f64>,
    /// Pieces below the idle baseline, J (≤ 0; noise or drift, kept in the totals).
    #[serde(deserialize_with = "super::present")]
    pub negative_dyn_j: Option<f64>,
    /// Idle energy of the time skipped by compression (`P_idle × skipped`), added to the gap
    /// bucket analytically — never measured.
    #[serde(deserialize_with = "super::present")]
    pub compressed_idle_j: Option<f64>,
    /// Time skipped by compression, s.
    pub compressed_s: f64,
    /// Per measured request: dynamic energy, J.
    #[serde(deserialize_with = "super::present")]
    pub dyn_j_per_request: Option<Stat>,
    /// Per measured request: its token-work share while in service, J.
    #[serde(deserialize_with = "super::present")]
    pub active_j_per_request: Option<Stat>,
    /// Per measured request: active plus equal share of gap energy, J.
    #[serde(deserialize_with = "super::present")]
    pub amortized_j_per_request: Option<Stat>,
    /// Attribution sensitivities of the mean active energy per measured request, J.
    pub sensitivity: Sensitivity,
    /// Active energy of the cell by phase, J.
    pub phases_j: BTreeMap<String, f64>,
    /// Relative uncertainty band of every energy figure (low, high factors), for estimated
    /// sources.
    #[serde(deserialize_with = "super::present")]
    pub band: Option<(f64, f64)>,
    /// Σ active + gap − window: should be ~0.
    pub conservation_error_j: f64,
    /// Energy of the method's setup (`prepare`), J.
    #[serde(deserialize_with = "super::present")]
    pub setup_j: Option<f64>,
    /// The same figures for each domain on its own (GPU, CPU, DRAM), each with its own
    /// meter and kind: a measured GPU figure stays measured beside a modelled CPU one. The
    /// totals above are their sums.
    #[serde(default)]
    pub domains: Vec<DomainEnergy>,
    /// The domains whose figures are estimates (modelled or integrated, not counted by
    /// hardware): the parts of the totals a reader should discount.
    #[serde(default)]
    pub estimated_domains: Vec<String>,
    /// The CPU domain in the process view: oae's own share of the machine's CPU energy, beside
    /// the machine view in `domains` (never added to the totals).
    #[serde(default)]
    pub process_view: Option<ProcessView>,
}

/// A cell's CPU energy in the process view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessView {
    /// Its figures, as a domain's (`source`: `cpu-process of <meter>`; its idle power is
    /// oae's share of the machine's).
    pub energy: DomainEnergy,
    /// The process view's energy over the machine view's, over the window(s).
    #[serde(deserialize_with = "super::present")]
    pub share_of_machine: Option<f64>,
    /// The machine was mostly busy with other work (share under one half): the machine
    /// view's dynamic energy is unreliable, the process view's is the one to read.
    pub co_tenant_flagged: bool,
}

/// The process view's share under which a cell is flagged for a co-tenant.
pub const CO_TENANT_SHARE: f64 = 0.5;

/// One domain's part of a cell's energy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainEnergy {
    /// `gpu:0`, `cpu`, `dram`, …
    pub domain: String,
    /// The meter that served it.
    pub source: String,
    /// Its kind.
    pub kind: EnergyKind,
    /// Energy over the replay window(s), J.
    pub window_j: f64,
    /// Loaded-idle power, W.
    #[serde(deserialize_with = "super::present")]
    pub idle_w: Option<f64>,
    /// Dynamic energy attributed to requests, J.
    #[serde(deserialize_with = "super::present")]
    pub dyn_j: Option<f64>,
    /// Per measured request: dynamic energy, J.
    #[serde(deserialize_with = "super::present")]
    pub dyn_j_per_request: Option<Stat>,
    /// Per measured request: active energy, J.
    #[serde(deserialize_with = "super::present")]
    pub active_j_per_request: Option<Stat>,
    /// Per measured request: amortized energy, J.
    #[serde(deserialize_with = "super::present")]
    pub amortized_j_per_request: Option<Stat>,
    /// Setup energy of the method in this domain, J.
    #[serde(deserialize_with = "super::present")]
    pub setup_j: Option<f64>,
}

/// Mean active energy per measured request under each attribution rule, J.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensitivity {
    /// Token work within each interval (the reported figure).
    #[serde(deserialize_with = "super::present")]
    pub token_work_j: Option<f64>,
    /// Each interval split equally among the requests in it.
    #[serde(deserialize_with = "super::present")]
    pub time_share_j: Option<f64>,
    /// All busy energy split equally among served requests.
    #[serde(deserialize_with = "super::present")]
    pub equal_share_j: Option<f64>,
}

/// Everything reported about one (method, workload) cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellSummary {
    /// Method label.
    pub method: String,
    /// Registry id of the method.
    pub method_id: String,
    /// Workload name.
    pub workload: String,
    /// Records written (= arrivals released), warm-up included.
    pub requests: usize,
    /// Records outside warm-up and cool-down: the sample every statistic is over.
    pub measured: usize,
    /// Records inside warm-up (recorded, not counted).
    pub warmup: usize,
    /// Records inside cool-down (recorded, not counted).
    pub cooldown: usize,
    /// Outcome counts over measured records.
    pub outcomes: BTreeMap<Outcome, usize>,
    /// Measured records with outcome ok.
    pub ok: usize,
    /// Measured records with any other outcome.
    pub failed: usize,
    /// Measured records the trace marked as failed in the source (replayed with one token;
    /// counted in `ok`/`failed` by how they fared here).
    pub source_failed: usize,
    /// When this replay's time zero fell, seconds from the run start — the epoch of
    /// timeline.csv. Add it to a record's `*_s` times to place them on the timeline.
    pub replay_start_s: f64,
    /// Replay duration: time zero to the last completion, s.
    pub replay_s: f64,
    /// Offered rate of the schedule as replayed, req/s.
    pub offered_rate_qps: f64,
    /// Completed requests per second of replay.
    pub achieved_rate_qps: f64,
    /// Latency statistics of ok measured requests (dispatch lag and queue: all measured),
    /// keyed by metric: `ttft_ms`, `e2e_ms`, `tpot_ms`, `itl_ms_pooled`,
    /// `itl_ms_per_request_mean`, `service_ms`, `queue_ms`, `dispatch_lag_ms`,
    /// `dispatch_lag_busy_ms` (releases while a worker was serving), `dispatch_lag_idle_ms`
    /// (the others).
    pub latency: BTreeMap<String, Stat>,
    /// Answer quality by scorer (`em`, `f1`, …) over ok measured requests that carry a
    /// reference: mean in [0, 1] with its bootstrap interval (hierarchical over trials) and n.
    /// Empty for workloads without a task.
    pub quality: BTreeMap<String, Stat>,
    /// The cost of reasoning and of each correct answer, for task workloads whose records
    /// split reasoning from answer tokens.
    #[serde(default)]
    pub reasoning: Option<ReasoningSummary>,
    /// Output tokens per second of service time over ok requests: Σ tokens / Σ service.
    #[serde(deserialize_with = "super::present")]
    pub output_tokens_per_s: Option<f64>,
    /// Output tokens of ok measured requests.
    pub output_tokens: u64,
    /// Input tokens of ok measured requests.
    pub input_tokens: u64,
    /// Time per phase per ok measured request.
    pub phases_ms: BTreeMap<String, Stat>,
    /// Counters summed over measured requests.
    pub counters: BTreeMap<String, f64>,
    /// Setup time of the method (prepare), s.
    pub setup_s: f64,
    /// Energy, when a meter was available.
    #[serde(deserialize_with = "super::present")]
    pub energy: Option<EnergySummary>,
    /// Carbon per request (needs energy).
    #[serde(deserialize_with = "super::present")]
    pub carbon: Option<CarbonSummary>,
    /// TTFT and E2E of ok measured requests grouped by the idle time before them
    /// (`idle_before_s`): the wake-up penalty of a deployment that sits idle.
    pub wakeup: Vec<WakeupBucket>,
    /// Goodput against the suite's `[slo]` (with no SLO set: the ok requests).
    pub goodput: Goodput,
    /// Minimum count and duration checks.
    pub validity: Validity,
    /// Each trial's own figures (one entry per replay of this cell; the rest of the summary
    /// pools them).
    pub trials: Vec<TrialFigures>,
    /// CPU time the hypervisor stole from this VM during the replay, s (summed over vCPUs).
    /// Non-zero steal can explain latency or dispatch-lag outliers the method did not cause.
    #[serde(deserialize_with = "super::present")]
    pub host_steal_s: Option<f64>,
    /// CPU time other processes used during the replays, s summed over vCPUs: the machine's
    /// busy time (/proc/stat) less oae's own process and its children. A machine busy with
    /// other work inflates whole-machine energy readings and latencies alike; the gate treats
    /// energy figures of such a cell as advisory. `None` where /proc is unavailable.
    #[serde(deserialize_with = "super::present")]
    pub host_other_cpu_s: Option<f64>,
}

impl CellSummary {
    /// The share of the machine's CPU capacity (`logical_cpus` × replay time) that other
    /// processes used during this cell's replays; `None` when not recorded.
    pub fn host_other_cpu_share(&self, logical_cpus: usize) -> Option<f64> {
        let capacity = self.replay_s * logical_cpus.max(1) as f64;
        self.host_other_cpu_s
            .filter(|_| capacity > 0.0)
            .map(|s| (s / capacity).max(0.0))
    }
}

/// One trial (replay) of a cell: the figures the gate compares between runs, per trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialFigures {
    /// Trial number (0-based), as in the records' `trial`.
    pub trial: u32,
    /// When this replay's time zero fell, s from the run start.
    pub replay_start_s: f64,
    /// Its duration, s.
    pub replay_s: f64,
    /// Measured requests.
    pub measured: usize,
    /// Of which ok.
    pub ok: usize,
    /// Good under the SLO.
    pub good: usize,
    /// TTFT median of ok requests, ms.
    #[serde(deserialize_with = "super::present")]
    pub ttft_p50_ms: Option<f64>,
    /// E2E median, ms.
    #[serde(deserialize_with = "super::present")]
    pub e2e_p50_ms: Option<f64>,
    /// E2E 95th percentile, ms.
    #[serde(deserialize_with = "super::present")]
    pub e2e_p95_ms: Option<f64>,
    /// Mean time per output token, ms.
    #[serde(deserialize_with = "super::present")]
    pub tpot_mean_ms: Option<f64>,
    /// Mean service time, ms.
    #[serde(deserialize_with = "super::present")]
    pub service_mean_ms: Option<f64>,
    /// Mean amortized energy per measured request, J.
    #[serde(deserialize_with = "super::present")]
    pub energy_amortized_j_mean: Option<f64>,
}

/// Requests that met the suite's SLOs, per second and as a fraction of measured requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goodput {
    /// The objectives (absent ones are not checked).
    pub slo: Slo,
    /// Ok measured requests meeting every objective.
    pub good: usize,
    /// Measured requests (failures count as not good).
    pub measured: usize,
    /// good / measured with a Wilson score interval.
    pub fraction: Estimate,
    /// Good requests per second of measured replay.
    pub goodput_qps: f64,
}

/// Whether a cell ran long enough for its statistics to be trusted, by the suite's minimums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validity {
    /// All minimums met.
    pub valid: bool,
    /// Measured replay after warm-up, s.
    pub measured_duration_s: f64,
    /// One line per unmet minimum.
    pub reasons: Vec<String>,
}

/// Latency of requests that arrived after a given range of idle time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WakeupBucket {
    /// Label, e.g. `1-10s`.
    pub bucket: String,
    /// Idle time at least this, s.
    pub idle_from_s: f64,
    /// Idle time below this, s (`None`: unbounded).
    #[serde(deserialize_with = "super::present")]
    pub idle_to_s: Option<f64>,
    /// Ok measured requests in the bucket.
    pub n: usize,
    /// Their TTFT.
    #[serde(deserialize_with = "super::present")]
    pub ttft_ms: Option<Stat>,
    /// Their E2E.
    #[serde(deserialize_with = "super::present")]
    pub e2e_ms: Option<Stat>,
}

/// summary.json: every cell of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryJson {
    /// [`super::SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The run's status when the file was written.
    pub status: super::RunStatus,
    /// One summary per (method, workload), in run order.
    pub cells: Vec<CellSummary>,
}

impl SummaryJson {
    /// The cell of (method label, workload), if there is one.
    pub fn cell(&self, method: &str, workload: &str) -> Option<&CellSummary> {
        self.cells.iter().find(|c| c.method == method && c.workload == workload)
    }
}

/// What reasoning cost a cell, and what each correct answer cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasoningSummary {
    /// Output tokens before the final answer, per ok measured request.
    #[serde(deserialize_with = "super::present")]
    pub reasoning_tokens: Option<Stat>,
    /// Output tokens of the final answer, per ok measured request.
    #[serde(deserialize_with = "super::present")]
    pub answer_tokens: Option<Stat>,
    /// Reasoning overhead: Σ reasoning tokens / Σ answer tokens.
    #[serde(deserialize_with = "super::present")]
    pub overhead: Option<f64>,
    /// Requests whose chain of thought reached no final answer (the budget ran out first).
    pub no_answer: usize,
    /// How a correct answer is told: the suite's quality bar, else, per answer, the first of
    /// `numeric`, `choice`, `em`, `contains`, `f1` it was scored by, at ≥ 0.5.
    pub correct_by: String,
    /// Correct answers among the measured requests.
    pub correct: usize,
    /// Measured requests.
    pub measured: usize,
    /// Σ output tokens of the measured requests / correct answers.
    #[serde(deserialize_with = "super::present")]
    pub tokens_per_correct: Option<f64>,
    /// Σ reasoning tokens / correct answers.
    #[serde(deserialize_with = "super::present")]
    pub reasoning_tokens_per_correct: Option<f64>,
    /// Σ amortized energy of the measured requests / correct answers, J.
    #[serde(deserialize_with = "super::present")]
    pub energy_j_per_correct: Option<f64>,
}
