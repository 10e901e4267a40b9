//! Energy in run.json: the meters a run used, the sources it could not use and why, each
//! method's loaded-idle baselines, and the validity flags that say whether the run's energy
//! can be trusted.

use serde::{Deserialize, Serialize};

/// How an energy figure was obtained; the weakest kind involved propagates to every figure
/// derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergyKind {
    /// Read from a hardware energy counter.
    Measured,
    /// Integrated from sampled power.
    Integrated,
    /// Computed from a model (e.g. utilization × published coefficients).
    Estimated,
}

impl EnergyKind {
    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            EnergyKind::Measured => "measured",
            EnergyKind::Integrated => "integrated",
            EnergyKind::Estimated => "estimated",
        }
    }
}

/// Static description of a meter in a timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterInfo {
    /// Source name.
    pub name: String,
    /// Domain.
    pub domain: String,
    /// Kind.
    pub kind: EnergyKind,
    /// Resolution, milliseconds.
    pub resolution_ms: f64,
    /// Source-specific provenance (model, coefficients, device, driver, ...): each meter
    /// records what it knows, so this one field stays free-form.
    pub provenance: serde_json::Value,
    /// The domain's primary meter — the one energy figures use: the best [`EnergyKind`] for
    /// its domain (first registered on a tie). The others are recorded as cross-checks, never
    /// added, so no domain is counted twice.
    pub primary: bool,
    /// A process view (`cpu-process`): oae's own share of its domain, reported beside the
    /// machine's figures, never serving or cross-checking them.
    #[serde(default)]
    pub process_view: bool,
}

/// Whether an energy source can be used on this machine, and the details or the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceStatus {
    /// Source name (a meter's registry name).
    pub source: String,
    /// Usable.
    pub available: bool,
    /// What was found, or why it is unavailable and how to fix it.
    pub detail: String,
    /// Per-device or per-domain lines.
    pub items: Vec<String>,
}

/// A source that could not be opened for the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unavailable {
    /// Source name.
    pub source: String,
    /// Why.
    pub reason: String,
}

/// One secondary meter checked against its domain's primary over their common span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossCheck {
    /// Domain.
    pub domain: String,
    /// The primary meter.
    pub primary: String,
    /// The other meter.
    pub other: String,
    /// primary energy / other energy.
    #[serde(deserialize_with = "super::present")]
    pub ratio: Option<f64>,
    /// Common span, s.
    pub span_s: f64,
    /// A counter-vs-power ratio beyond ±10 %.
    pub flagged: bool,
}

/// A cell whose energy is invalid, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidCell {
    /// Method label.
    pub method: String,
    /// Workload.
    pub workload: String,
    /// Reasons.
    pub reasons: Vec<String>,
}

/// A meter given up on during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterFailureInfo {
    /// Source name.
    pub source: String,
    /// Domain.
    pub domain: String,
    /// When, s since the run epoch.
    pub t_s: f64,
    /// The last error.
    pub reason: String,
}

/// Idle-power drift of one method's baselines in one domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleDrift {
    /// Method label.
    pub method: String,
    /// Domain.
    pub domain: String,
    /// (after − before) / before, %.
    pub drift_pct: f64,
}

/// A meter's resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceResolution {
    /// Source name.
    pub source: String,
    /// Domain.
    pub domain: String,
    /// Resolution, ms (what the source's documentation or driver promises).
    pub resolution_ms: f64,
    /// The median interval between successive changes of its reading over the run, ms: the
    /// resolution it really gave. Sampling faster than this adds readings, not detail.
    /// `None` with fewer than two changes.
    #[serde(default)]
    pub observed_update_ms: Option<f64>,
}

/// Read errors of one meter, of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadErrorCount {
    /// Source name.
    pub source: String,
    /// Domain.
    pub domain: String,
    /// `not_supported`, `device_lost`, `permission`, `timeout`, `io` or `other`.
    pub kind: String,
    /// How many.
    pub count: usize,
    /// The first one's message.
    pub first_message: String,
}

/// run.json `energy.validity`: what makes the run's energy trustworthy, or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyValidity {
    /// No cell's energy is invalid.
    pub valid: bool,
    /// The cells whose energy is invalid.
    pub invalid_cells: Vec<InvalidCell>,
    /// Something a reader should look at: a cross-check off, idle drift, a meter failure, a
    /// counter reset.
    pub flagged: bool,
    /// A primary meter is an estimate.
    pub estimated: bool,
    /// Largest gap between the sampler's grid readings, ms.
    pub sampler_max_gap_ms: f64,
    /// CPU time of the sampler thread, s.
    #[serde(deserialize_with = "super::present")]
    pub sampler_cpu_s: Option<f64>,
    /// Failed reads.
    pub read_errors: usize,
    /// Failed reads by meter and kind.
    #[serde(default)]
    pub read_errors_by_kind: Vec<ReadErrorCount>,
    /// Meters given up on.
    pub meter_failures: Vec<MeterFailureInfo>,
    /// No hardware counter went backwards.
    pub counter_monotonic: bool,
    /// NVML counter energy / integrated power energy, when both ran.
    #[serde(deserialize_with = "super::present")]
    pub counter_vs_power_ratio: Option<f64>,
    /// Every secondary meter against its primary.
    pub cross_checks: Vec<CrossCheck>,
    /// Largest idle drift of any method, %.
    #[serde(deserialize_with = "super::present")]
    pub idle_drift_pct: Option<f64>,
    /// Idle drift beyond the flag threshold.
    pub idle_drift_flagged: bool,
    /// Per method and domain.
    pub idle_drift_by_method: Vec<IdleDrift>,
    /// Every meter's resolution.
    pub source_resolution_ms: Vec<SourceResolution>,
}

/// run.json `energy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyInfo {
    /// The meters sampled.
    pub meters: Vec<MeterInfo>,
    /// Sources that could not be opened.
    pub unavailable: Vec<Unavailable>,
    /// Every registered source's availability check on this machine.
    pub sources_checked: Vec<SourceStatus>,
    /// Validity flags (so far, while running).
    pub validity: EnergyValidity,
}

/// A time span on the run's clock, s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span {
    /// Start, s since the run epoch.
    pub from_s: f64,
    /// End.
    pub to_s: f64,
    /// Length.
    pub duration_s: f64,
}

impl Span {
    /// The span from `from_s` to `to_s`.
    pub fn new(from_s: f64, to_s: f64) -> Span {
        Span {
            from_s,
            to_s,
            duration_s: to_s - from_s,
        }
    }
}

/// One meter's loaded-idle power.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleMeter {
    /// Source name.
    pub source: String,
    /// Domain.
    pub domain: String,
    /// Median of the 1-s bins of both windows, W.
    pub idle_w: f64,
    /// 25th and 75th percentile of the bins, W.
    pub idle_iqr_w: (f64, f64),
    /// Bins.
    pub bins: usize,
    /// Bin length, s.
    pub bin_s: f64,
    /// Median before the replays, W.
    #[serde(deserialize_with = "super::present")]
    pub before_w: Option<f64>,
    /// Median after, W.
    #[serde(deserialize_with = "super::present")]
    pub after_w: Option<f64>,
    /// (after − before) / before, %.
    #[serde(deserialize_with = "super::present")]
    pub idle_drift_pct: Option<f64>,
    /// Beyond the flag threshold.
    pub drift_flagged: bool,
}

/// A method's loaded-idle baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleBaseline {
    /// Window before the replays.
    #[serde(deserialize_with = "super::present")]
    pub before: Option<Span>,
    /// Window after.
    #[serde(deserialize_with = "super::present")]
    pub after: Option<Span>,
    /// Per meter.
    pub meters: Vec<IdleMeter>,
    /// A caveat: no baseline, or one shorter than the methodology asks for.
    #[serde(deserialize_with = "super::present")]
    pub note: Option<String>,
}

impl IdleBaseline {
    /// Loaded-idle power of the primary meters summed over domains, W (`None` without a
    /// baseline).
    pub fn idle_w(&self, meters: &[MeterInfo]) -> Option<f64> {
        let primary: Vec<&IdleMeter> = self
            .meters
            .iter()
            .filter(|m| {
                meters
                    .iter()
                    .any(|x| x.primary && x.name == m.source && x.domain == m.domain)
            })
            .collect();
        (!primary.is_empty()).then(|| primary.iter().map(|m| m.idle_w).sum())
    }
}
