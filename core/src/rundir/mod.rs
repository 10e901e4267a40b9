//! The run directory's format, owned in one place: every file a run writes is a serde type
//! here that the harness writes and scoring reads back (as hyperfine's and criterion's
//! result types are both written and read).
//!
//! - [`RunJson`] — `run.json`: provenance, settings, status, carbon assumptions, energy
//!   sources and validity, each method's setup and idle baselines.
//! - [`SummaryJson`] — `summary.json`: per (method, workload) statistics with CIs.
//! - [`RequestRecord`] — one line of `requests.jsonl`.
//! - [`Slo`] — the objectives and the one rule for a good request.
//!
//! Both JSON files carry [`SCHEMA_VERSION`]. Reading is strict: an unknown field, a missing
//! field (also one whose value may be `null`) or a wrong type is an error naming the file,
//! line and field, never a silent default. A run directory written before the schema was
//! versioned is refused with the oae version that wrote it and how to re-score it.

pub mod carbon;
pub mod energy;
mod read;
mod record;
mod run;
mod slo;
mod summary;

pub use carbon::{CarbonAssumptions, CarbonSummary, Embodied};
pub use energy::{EnergyKind, MeterInfo, SourceStatus};
pub use read::{RecordReader, RunDirError, read_run, read_summary};
pub use record::{DomainJ, Outcome, RecordWithoutItl, RequestRecord, Skipped};
pub use run::{
    Compression, GateSettings, GpuFacts, HostFacts, LimitInfo, MethodInfo, NotApplicable, ReplayInfo, RunJson,
    RunSettings, RunStatus, ScoringSettings, SuiteInfo, WorkloadInfo,
};
pub use slo::{QualityBar, Slo};
pub use summary::{
    CO_TENANT_SHARE, CellSummary, DomainEnergy, EnergySummary, Goodput, ProcessView, ReasoningSummary, Sensitivity,
    SummaryJson, TrialFigures, Validity, WakeupBucket,
};

use serde::{Deserialize, Deserializer};

/// Version of the run-directory format this oae writes and reads. Bump it when a field of
/// run.json, summary.json or a request record is added (reading is strict), changes meaning,
/// is renamed or removed. 2: trials (`trials`, `order`, `replays`, per-trial figures) and
/// `host_other_cpu_s`. 3: quality — records carry `task_id`, `output_text`,
/// `output_truncated` and `quality` scores; summaries per-scorer `quality` statistics.
/// 4: the GPU path — methods' `cold_start_s` and `setup_energy_by_domain`; energy by domain
/// (`energy_by_domain` in records, `domains` and `estimated_domains` in cell summaries);
/// `read_errors_by_kind` and each meter's `observed_update_ms`; reasoning — records'
/// `reasoning_tokens` and `answer_tokens`, cells' `reasoning`.
pub const SCHEMA_VERSION: u32 = 4;

/// `run.json`.
pub const RUN_JSON: &str = "run.json";
/// `summary.json`.
pub const SUMMARY_JSON: &str = "summary.json";
/// `requests.jsonl`.
pub const REQUESTS_JSONL: &str = "requests.jsonl";
/// `timeline.csv`.
pub const TIMELINE_CSV: &str = "timeline.csv";
/// `histograms.hlog`.
pub const HISTOGRAMS_HLOG: &str = "histograms.hlog";

/// Deserializes a field that must be present even when its value may be `null` (serde
/// would otherwise read a missing `Option` as `None`).
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    T::deserialize(d)
}

/// An `f64` that may be NaN ("no value"): JSON has no NaN, so it is written `null` and read
/// back as NaN (serde_json would write `null` anyway, and then refuse to read it).
pub(crate) mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}
