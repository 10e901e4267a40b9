//! run.json: a run's provenance, settings and status, written by the harness at the start
//! (`running`) and rewritten at the end (`complete` or `aborted`), read by scoring.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Slo;
use super::carbon::CarbonAssumptions;
use super::energy::{EnergyInfo, IdleBaseline};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Still going, or killed before it could say otherwise.
    Running,
    /// Every arrival of every cell was released and recorded.
    Complete,
    /// Stopped early; the reason is in `abort_reason`.
    Aborted,
}

impl RunStatus {
    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Aborted => "aborted",
        }
    }
}

/// The suite file a run came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteInfo {
    /// Suite name.
    pub name: String,
    /// Path or label of the file.
    pub file: String,
    /// SHA-256 of its text, hex.
    pub sha256: String,
    /// Free-text description.
    #[serde(deserialize_with = "super::present")]
    pub description: Option<String>,
}

/// Requests per workload, or replay duration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, untagged)]
pub enum LimitInfo {
    /// `{ "requests": N }`.
    Requests {
        /// Requests per workload.
        requests: u64,
    },
    /// `{ "duration_s": S }`.
    Duration {
        /// Seconds of replay per workload.
        duration_s: f64,
    },
}

/// run.json `run`: the run-wide settings of the suite's `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// Requests or duration per workload.
    pub limit: LimitInfo,
    /// Warm-up window, s.
    pub warmup_s: f64,
    /// Cool-down window, s.
    pub cooldown_s: f64,
    /// Idle-gap cap of time compression, s.
    #[serde(deserialize_with = "super::present")]
    pub idle_gap_cap_s: Option<f64>,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Energy sampler grid, ms.
    pub sample_interval_ms: f64,
    /// Two-sided confidence of every interval.
    pub confidence: f64,
    /// Per-request timeout, s.
    #[serde(deserialize_with = "super::present")]
    pub timeout_s: Option<f64>,
    /// Waiting requests beyond idle workers.
    #[serde(deserialize_with = "super::present")]
    pub queue_bound: Option<usize>,
    /// Fewest measured requests for a valid cell.
    #[serde(deserialize_with = "super::present")]
    pub min_requests: Option<u64>,
    /// Shortest measured replay for a valid cell, s.
    #[serde(deserialize_with = "super::present")]
    pub min_duration_s: Option<f64>,
    /// Replays of every cell.
    pub trials: u32,
    /// How methods and trials took turns: `sequential`, `interleaved` or `random`.
    pub order: String,
}

/// One replay as it happened, in run order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayInfo {
    /// Method label.
    pub method: String,
    /// Workload.
    pub workload: String,
    /// Trial (0-based).
    pub trial: u32,
    /// Its time zero, s from the run start.
    pub start_s: f64,
}

/// What time compression did to a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    /// The idle-gap cap, seconds; `None` when compression is off.
    #[serde(deserialize_with = "super::present")]
    pub cap_s: Option<f64>,
    /// Gaps that were shortened.
    pub gaps_shortened: u64,
    /// Total idle time removed, seconds.
    pub skipped_s: f64,
    /// Offset of the last arrival before compression, seconds.
    pub original_span_s: f64,
    /// Offset of the last arrival as replayed, seconds.
    pub replay_span_s: f64,
    /// `original_span_s / replay_span_s` (1 when nothing was removed).
    pub factor: f64,
}

/// One workload as replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadInfo {
    /// Name.
    pub name: String,
    /// The arrival process or trace, described.
    pub process: String,
    /// SHA-256 of the schedule.
    pub schedule_hash: String,
    /// Arrivals.
    pub requests: usize,
    /// Arrivals the trace recorded as failed.
    pub source_failed: usize,
    /// Trace rows replayed whose timestamp stepped back within the trace's
    /// `reorder_tolerance_s` (kept in file order).
    pub reordered_rows: u64,
    /// Rate as replayed (after compression), req/s.
    pub offered_rate_qps: f64,
    /// The workload's own rate before compression, req/s — the rate it is scored at.
    #[serde(deserialize_with = "super::present")]
    pub mean_rate_qps_before_compression: Option<f64>,
    /// The workload that this one perturbs (robustness), if any.
    #[serde(deserialize_with = "super::present")]
    pub perturbs: Option<String>,
    /// What the perturbation is, in words.
    #[serde(deserialize_with = "super::present")]
    pub perturbation: Option<String>,
    /// The configuration as the arrival process or trace format describes it (free-form:
    /// each plug-in describes itself).
    pub config: Value,
    /// Time compression.
    pub compression: Compression,
}

/// One method as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodInfo {
    /// Unique label in the suite.
    pub label: String,
    /// Registry id.
    pub id: String,
    /// Parallel instances.
    pub instances: u32,
    /// Setup (prepare) time, s.
    pub setup_s: f64,
    /// Setup energy, J.
    #[serde(deserialize_with = "super::present")]
    pub setup_energy_j: Option<f64>,
    /// Whether the setup energy is an estimate.
    pub setup_energy_estimated: bool,
    /// Setup energy by domain, J (`None` where the domain's meter did not cover setup).
    #[serde(default)]
    pub setup_energy_by_domain: BTreeMap<String, Option<f64>>,
    /// The part of setup that made the model ready to serve — loading, dtype conversion and
    /// the warm-up that takes device context creation, kernel JIT and library start-up out
    /// of the first request — s; `None` for methods without a model. Included in `setup_s`.
    #[serde(default)]
    pub cold_start_s: Option<f64>,
    /// Bytes of weights resident while serving, as the method reports them.
    #[serde(deserialize_with = "super::present")]
    pub weight_bytes: Option<u64>,
    /// What the method reports about itself (model shape, sampling, ...): free-form.
    pub facts: BTreeMap<String, Value>,
    /// Loaded-idle baselines.
    pub idle_baseline: IdleBaseline,
}

/// A method that could not apply to the suite, and why (its own words: the sizes and the fix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotApplicable {
    /// Its label in the suite.
    pub label: String,
    /// Registry id.
    pub id: String,
    /// Why.
    pub reason: String,
    /// Setup time spent finding out, s.
    pub setup_s: f64,
}

/// run.json `host`: what the machine is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFacts {
    /// CPU model name.
    pub cpu_model: String,
    /// Physical cores, when known.
    #[serde(deserialize_with = "super::present")]
    pub physical_cores: Option<usize>,
    /// Logical CPUs (vCPUs).
    pub logical_cpus: usize,
    /// Total memory, bytes.
    pub memory_bytes: u64,
    /// Operating system, e.g. `Linux 12 (Debian)`.
    #[serde(deserialize_with = "super::present")]
    pub os: Option<String>,
    /// Kernel version.
    #[serde(deserialize_with = "super::present")]
    pub kernel: Option<String>,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
    /// The CPU reports a hypervisor: this is a virtual machine.
    pub virtual_machine: bool,
}

/// The gate settings of a suite's `[gate]`, as recorded (metric names are checked by the
/// scorecards when read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSettings {
    /// Allowed worsening of every metric, percent (points for shares).
    pub threshold_pct: f64,
    /// Per metric.
    pub thresholds: BTreeMap<String, f64>,
    /// Metrics gated.
    pub metrics: Vec<String>,
}

/// run.json `scoring`: what scoring needs from the suite and the binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringSettings {
    /// Label of the baseline method (`[score] baseline`).
    #[serde(deserialize_with = "super::present")]
    pub baseline: Option<String>,
    /// `[gate]`.
    pub gate: GateSettings,
    /// Each method's declared adoption-cost manifest (TOML text), by method id.
    pub manifests: BTreeMap<String, String>,
    /// Manifests a method composed from its configuration (a RAG pipeline adds its
    /// reranker's and rewriter's costs), by label: they take precedence over the id's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_manifests: BTreeMap<String, String>,
}

/// run.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunJson {
    /// [`super::SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Version of the oae that ran it.
    pub oae_version: String,
    /// Its git commit, when known.
    #[serde(deserialize_with = "super::present")]
    pub git_sha: Option<String>,
    /// The command line.
    pub command: Vec<String>,
    /// Where the run stands.
    pub status: RunStatus,
    /// Why it stopped early.
    #[serde(deserialize_with = "super::present")]
    pub abort_reason: Option<String>,
    /// Start, UTC RFC 3339.
    pub started_utc: String,
    /// End, UTC RFC 3339.
    #[serde(deserialize_with = "super::present")]
    pub finished_utc: Option<String>,
    /// The suite.
    pub suite: SuiteInfo,
    /// Seed of every random choice.
    pub seed: u64,
    /// Service-level objectives.
    pub slo: Slo,
    /// Command-line overrides of suite values (free-form: flag name → value).
    pub overrides: BTreeMap<String, Value>,
    /// Runtime settings decided by the binary (compute threads and why).
    pub runtime: BTreeMap<String, Value>,
    /// Scoring settings and manifests; `None` when the caller scores nothing.
    #[serde(deserialize_with = "super::present")]
    pub scoring: Option<ScoringSettings>,
    /// Scheduling priority the dispatcher thread got.
    #[serde(deserialize_with = "super::present")]
    pub dispatcher_priority: Option<String>,
    /// Run-wide settings.
    pub run: RunSettings,
    /// The machine.
    pub host: HostFacts,
    /// Carbon assumptions, resolved once for the run and for scoring.
    pub carbon: CarbonAssumptions,
    /// Workloads.
    pub workloads: Vec<WorkloadInfo>,
    /// Knowledge bases (`[[knowledge]]`), as configured: free-form descriptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub knowledge: Vec<Value>,
    /// Methods, as each finishes.
    pub methods: Vec<MethodInfo>,
    /// Methods that could not apply to this suite (a knowledge base larger than the model's
    /// context, …): found at setup, recorded, not replayed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_applicable: Vec<NotApplicable>,
    /// Every replay in the order it ran (the interleaving of methods and trials).
    pub replays: Vec<ReplayInfo>,
    /// Energy sources, baselines and validity.
    pub energy: EnergyInfo,
    /// Records in requests.jsonl.
    pub records: usize,
}

/// A GPU a run measured, as its meter's provenance names it (NVML: name, UUID, driver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuFacts {
    /// Model name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Device UUID (empty when the meter did not say).
    pub uuid: String,
    /// Driver version (empty when the meter did not say).
    pub driver_version: String,
}

impl RunJson {
    /// The method entry of `label`.
    pub fn method(&self, label: &str) -> Option<&MethodInfo> {
        self.methods.iter().find(|m| m.label == label)
    }

    /// The GPUs its energy meters read, each once, in meter order.
    pub fn gpus(&self) -> Vec<GpuFacts> {
        let mut out: Vec<GpuFacts> = Vec::new();
        for m in &self.energy.meters {
            let d = &m.provenance["device"];
            let Some(name) = d["name"].as_str() else { continue };
            let text = |k: &str| d[k].as_str().unwrap_or("").to_string();
            let g = GpuFacts {
                name: name.to_string(),
                uuid: text("uuid"),
                driver_version: text("driver_version"),
            };
            if !out.contains(&g) {
                out.push(g);
            }
        }
        out
    }

    /// The workload entry of `name`.
    pub fn workload(&self, name: &str) -> Option<&WorkloadInfo> {
        self.workloads.iter().find(|w| w.name == name)
    }
}
