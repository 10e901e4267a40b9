//! What `oae score` writes: scorecards.json's types — one [`Row`] per (method, workload),
//! every figure with its provenance, CI and declared range.

use std::collections::BTreeMap;

use serde::Serialize;

use oae_core::rundir::CarbonAssumptions;
use oae_core::stats::Estimate;

use crate::bootstrap::interval;
use crate::cost::{BreakEven, Breakdown};
use crate::site::Site;

/// Schema tag of scorecards.json.
pub const SCHEMA: &str = "oae-scorecards/1";

/// Where a figure comes from.
pub const MEASURED: &str = "measured";
/// From a method's manifest.
pub const DECLARED: &str = "declared";
/// From the site file (or its documented defaults).
pub const SITE: &str = "site";

/// One headline number with its provenance and uncertainty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// Point estimate.
    pub value: f64,
    /// Confidence interval over requests (bootstrap), when measured inputs enter.
    pub ci_lo: Option<f64>,
    /// Upper end of the interval.
    pub ci_hi: Option<f64>,
    /// Range over the declared low/high engineer-weeks, when declared inputs enter.
    pub range_lo: Option<f64>,
    /// Upper end of the declared range.
    pub range_hi: Option<f64>,
    /// measured / declared / site.
    pub sources: Vec<&'static str>,
    /// True when a measured input is an estimate (modelled energy).
    pub estimated: bool,
}

impl Figure {
    pub(super) fn new(value: f64, sources: &[&'static str]) -> Self {
        Figure {
            value,
            ci_lo: None,
            ci_hi: None,
            range_lo: None,
            range_hi: None,
            sources: sources.to_vec(),
            estimated: false,
        }
    }

    pub(super) fn ci(mut self, draws: &[f64], confidence: f64) -> Self {
        (self.ci_lo, self.ci_hi) = interval(draws, confidence);
        self
    }

    pub(super) fn range(mut self, a: f64, b: f64) -> Self {
        self.range_lo = Some(a.min(b));
        self.range_hi = Some(a.max(b));
        self
    }

    pub(super) fn estimated(mut self, yes: bool) -> Self {
        self.estimated = yes;
        self
    }

    /// A measured estimate from summary.json (order-statistic CI), when it has a value.
    pub(super) fn from_estimate(e: &Estimate) -> Option<Figure> {
        if !e.value.is_finite() {
            return None;
        }
        let mut f = Figure::new(e.value, &[MEASURED]);
        f.ci_lo = e.ci_lo;
        f.ci_hi = e.ci_hi;
        Some(f)
    }
}

/// Is the method worth adopting at the workload's rate, overhead included?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The suite's baseline itself.
    Baseline,
    /// `oae_ratio` > 1 with its whole CI.
    Better,
    /// `oae_ratio` < 1 with its whole CI.
    Worse,
    /// The CI straddles 1: not a win, not a loss.
    Inconclusive,
    /// No baseline row to compare with.
    Unscored,
}

impl Verdict {
    /// As written in reports.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Baseline => "baseline",
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Unscored => "unscored",
        }
    }
}

/// Break-even rate with its uncertainty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakEvenFigure {
    /// At the point estimates.
    pub point: BreakEven,
    /// Lower end of the bootstrap interval.
    pub ci_lo: BreakEven,
    /// Upper end of the bootstrap interval.
    pub ci_hi: BreakEven,
    /// Share of bootstrap draws where the method never breaks even within the grid.
    pub share_never: f64,
    /// At the method's most favourable declared weeks (its low, the baseline's high).
    pub range_favourable: BreakEven,
    /// At the least favourable declared weeks.
    pub range_unfavourable: BreakEven,
    /// measured / declared / site.
    pub sources: Vec<&'static str>,
}

/// Energy per request in the three views of the README section "Energy and carbon".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnergyFigures {
    /// Dynamic (above loaded idle).
    pub dynamic_j: Figure,
    /// Active: dynamic + idle power while busy.
    pub active_j: Figure,
    /// Amortized: active + a share of the idle gaps — the honest figure at low rates.
    pub amortized_j: Figure,
    /// Energy source of the run (`cpu-model`, `rapl`, `nvml`, ...).
    pub source: String,
    /// The same per-request energy for each domain (GPU, CPU, DRAM), as the run measured it,
    /// each with its own kind: a measured GPU figure stays measured beside a modelled CPU one.
    pub by_domain: Vec<DomainFigures>,
    /// The domains whose part of the totals is an estimate.
    pub estimated_domains: Vec<String>,
    /// oae's own share of the CPU energy (the process view), active J per request, when the
    /// run had it; beside the machine's, never added.
    pub process_cpu_active_j: Option<f64>,
    /// The machine's CPU was mostly busy with other work during the run.
    pub co_tenant_flagged: bool,
}

/// The cost of one correct answer, as the run measured it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerCorrect {
    /// How a correct answer was told (the quality bar, else a scorer at ≥ 0.5).
    pub correct_by: String,
    /// Correct answers / measured requests.
    pub accuracy: f64,
    /// Output tokens per correct answer.
    pub tokens: Option<f64>,
    /// Reasoning tokens per correct answer.
    pub reasoning_tokens: Option<f64>,
    /// Amortized energy per correct answer, J.
    pub energy_j: Option<f64>,
    /// Cost per correct answer at the row's rate: cost per good request × good / correct, USD.
    pub cost_usd: Option<f64>,
    /// Reasoning tokens per answer token.
    pub reasoning_overhead: Option<f64>,
}

/// One domain's energy per request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainFigures {
    /// `gpu:0`, `cpu`, `dram`, …
    pub domain: String,
    /// The meter.
    pub source: String,
    /// `measured`, `integrated` or `estimated`.
    pub kind: String,
    /// Active energy per request, J (mean with its CI).
    pub active_j: Estimate,
    /// Amortized energy per request, J.
    pub amortized_j: Estimate,
}

/// Carbon per request at the workload's rate under the site's grid and PUE.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarbonFigures {
    /// Facility energy × grid intensity.
    pub operational_g: Figure,
    /// Embodied carbon of the reserved devices, amortized over their lifetime.
    pub embodied_g: Figure,
    /// The sum.
    pub total_g: Figure,
    /// What the run itself recorded (`co2e_g`, its own grid and PUE), mean per request.
    pub run_recorded_g: f64,
}

/// Robustness under one perturbation, against the nominal workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Perturbation {
    /// Perturbed workload.
    pub workload: String,
    /// What it perturbs, in words.
    pub perturbation: String,
    /// goodput_perturbed / goodput_nominal.
    pub goodput_ratio: Option<f64>,
    /// p95_e2e_perturbed / p95_e2e_nominal.
    pub p95_e2e_ratio: Option<f64>,
    /// quality_perturbed / quality_nominal (task workloads; the quality scorer's mean).
    pub quality_ratio: Option<f64>,
}

/// Robustness of a method on a nominal workload: every perturbation and the worst case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Robustness {
    /// Smallest goodput ratio and the perturbation that caused it.
    pub worst_goodput: Option<(f64, String)>,
    /// Largest p95 E2E ratio and the perturbation that caused it.
    pub worst_p95_e2e: Option<(f64, String)>,
    /// Smallest quality ratio and the perturbation that caused it (task workloads).
    pub worst_quality: Option<(f64, String)>,
    /// Each perturbation.
    pub perturbations: Vec<Perturbation>,
}

/// Which single assumption flips the verdict, and at what value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivity {
    /// The assumption.
    pub assumption: &'static str,
    /// Its unit.
    pub unit: &'static str,
    /// Its value in this scorecard.
    pub value: f64,
    /// Where `oae_ratio` crosses 1 (the crossing nearest the current value), or none.
    pub flips_at: Option<f64>,
    /// The range searched.
    pub searched: [f64; 2],
}

/// The declared side of a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Declared {
    /// Expertise level name.
    pub expertise: &'static str,
    /// L1..L4.
    pub level: u8,
    /// Engineer-weeks over the horizon: low, mid, high.
    pub engineer_weeks: [f64; 3],
    /// Moving parts.
    pub components: Vec<String>,
    /// What must be tuned.
    pub tuning_knobs: Vec<String>,
    /// Where the estimate comes from.
    pub evidence: String,
}

/// Measured inputs of the cost model, with CIs where resampled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inputs {
    /// `s`: mean service time, s.
    pub service_s: Figure,
    /// `a`: SLO attainment.
    pub attainment: Figure,
    /// `q`: mean answer quality of the ok requests (absent: no references in this suite).
    pub quality: Option<Figure>,
    /// The scorer `q` is by (the SLO's quality bar, else the first right/wrong scorer).
    pub quality_scorer: Option<String>,
    /// Whether the SLO's quality bar already counts only right answers as good (then `q` is
    /// shown, not multiplied into the cost).
    pub quality_in_attainment: bool,
    /// `P_idle`: loaded-idle power, W.
    pub idle_w: Figure,
    /// One-time setup energy, J.
    pub setup_j: Figure,
    /// One-time setup time, s.
    pub setup_s: f64,
    /// `M`: weights + peak KV cache, bytes.
    pub memory_bytes: Figure,
}

/// One scorecard: a (method, workload) on one device class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Method label.
    pub method: String,
    /// Registry id.
    pub method_id: String,
    /// Workload.
    pub workload: String,
    /// Where it was measured.
    pub device_class: String,
    /// Whether this is the suite's baseline.
    pub baseline: bool,
    /// λ_w: the workload's real-world rate (before time compression), req/s.
    pub rate_qps: f64,
    /// Measured requests (after warm-up/cool-down trimming).
    pub requests: u64,
    /// Of which failed.
    pub failed: u64,
    /// Measured inputs.
    pub inputs: Inputs,
    /// Declared inputs.
    pub declared: Declared,
    /// USD per 1,000 good requests at λ_w.
    pub cost_per_1k_good_usd: Figure,
    /// Its breakdown at the point estimates.
    pub breakdown: Breakdown,
    /// Good requests per USD.
    pub tor: Figure,
    /// `(cost_b/good_b) / (cost_m/good_m)`; exactly 1 for the baseline.
    pub oae_ratio: Option<Figure>,
    /// better / worse / inconclusive / baseline.
    pub verdict: Verdict,
    /// Smallest rate from which the method beats the baseline.
    pub break_even: Option<BreakEvenFigure>,
    /// `(R(level) − R(L1)) × weeks`.
    pub talent_premium_usd: Figure,
    /// The gain disappears when priced at L4 rates (level ≥ L3 only).
    pub talent_dependent: bool,
    /// Energy per request.
    pub energy_per_request: EnergyFigures,
    /// What each correct answer cost, and the reasoning overhead, for task workloads whose
    /// answers split reasoning from answer (a reasoning mode, or thinking tags).
    pub per_correct: Option<PerCorrect>,
    /// Carbon per request.
    pub gco2e_per_request: CarbonFigures,
    /// Latency at the replayed rate (order-statistic CIs from summary.json), ms.
    pub latency_ms: BTreeMap<String, Figure>,
    /// Worst-case robustness when the suite perturbs this workload.
    pub robustness: Option<Robustness>,
    /// Single-assumption flips of the verdict.
    pub sensitivity: Vec<Sensitivity>,
    /// Cost per 1k good requests over a log grid of rates: (λ, USD).
    pub curve: Vec<(f64, f64)>,
    /// Latency CDFs of ok requests: 101 quantiles (0..=100 %), ms.
    pub cdf_ms: BTreeMap<String, Vec<f64>>,
    /// Method counters summed over measured requests (summary.json).
    pub counters: BTreeMap<String, f64>,
    /// Whether the cell's statistics are valid (summary.json), and why not.
    pub valid: bool,
    /// Reasons it is not.
    pub invalid_reasons: Vec<String>,
    /// Bootstrap draws of the headline figures, for the gate (not written).
    #[serde(skip)]
    pub draws: BTreeMap<&'static str, Vec<f64>>,
}

/// Provenance of the run scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// Run directory as given.
    pub dir: String,
    /// Suite name.
    pub suite: String,
    /// complete / aborted / running.
    pub status: String,
    /// True unless complete: the figures cover part of the suite.
    pub partial: bool,
    /// Why it stopped.
    pub abort_reason: Option<String>,
    /// When it started (UTC).
    pub started_utc: Option<String>,
    /// oae version and commit that ran it.
    pub oae_version: Option<String>,
    /// Git commit.
    pub git_sha: Option<String>,
}

/// Bootstrap settings used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BootstrapInfo {
    /// Resamples per cell.
    pub draws: usize,
    /// Two-sided confidence of every interval.
    pub confidence: f64,
    /// Seed of the resampling.
    pub seed: u64,
}

/// Everything `oae score` writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scorecards {
    /// Schema tag.
    pub schema: &'static str,
    /// The run.
    pub run: RunInfo,
    /// Site assumptions used, and where they came from.
    pub site: Site,
    /// `defaults` or the site file's path.
    pub site_source: String,
    /// The carbon assumptions used (the run's, with any the site file sets), with sources.
    pub carbon: CarbonAssumptions,
    /// Baseline method label.
    pub baseline: String,
    /// Bootstrap settings.
    pub bootstrap: BootstrapInfo,
    /// One row per (method, workload).
    pub rows: Vec<Row>,
    /// Methods that could not apply to the suite (found at setup), with the reason: they
    /// have no rows, and no verdict but "not applicable".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_applicable: Vec<oae_core::rundir::NotApplicable>,
    /// Things a reader must know (missing baselines, fallbacks).
    pub warnings: Vec<String>,
}
