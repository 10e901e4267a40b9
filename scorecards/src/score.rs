//! Scoring a run directory: measured figures (with bootstrap CIs over requests), declared
//! adoption costs (with their ranges) and site assumptions merged into one scorecard per
//! (method, workload) — design/oae-model.md.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::ScoreError;
use crate::bootstrap::{Means, interval, means, quantile_sorted, resample_means};
use crate::cost::{self, BreakEven, Breakdown, Labor, Measured};
use crate::manifest::{Level, Manifest};
use crate::rundir::{Cell, RunData};
use crate::scoring::Scoring;
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
    fn new(value: f64, sources: &[&'static str]) -> Self {
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

    fn ci(mut self, draws: &[f64], confidence: f64) -> Self {
        (self.ci_lo, self.ci_hi) = interval(draws, confidence);
        self
    }

    fn range(mut self, a: f64, b: f64) -> Self {
        self.range_lo = Some(a.min(b));
        self.range_hi = Some(a.max(b));
        self
    }

    fn estimated(mut self, yes: bool) -> Self {
        self.estimated = yes;
        self
    }

    fn from_summary(stat: &Value) -> Option<Figure> {
        let value = stat["value"].as_f64()?;
        let mut f = Figure::new(value, &[MEASURED]);
        f.ci_lo = stat["ci_lo"].as_f64();
        f.ci_hi = stat["ci_hi"].as_f64();
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

/// Energy per request in the three views of design/energy-carbon.md.
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
}

/// Robustness of a method on a nominal workload: every perturbation and the worst case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Robustness {
    /// Smallest goodput ratio and the perturbation that caused it.
    pub worst_goodput: Option<(f64, String)>,
    /// Largest p95 E2E ratio and the perturbation that caused it.
    pub worst_p95_e2e: Option<(f64, String)>,
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
    /// `q`: quality (absent: no references in this suite).
    pub quality: Option<Figure>,
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
    /// Method counters (summary means).
    pub counters: Value,
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
    /// Baseline method label.
    pub baseline: String,
    /// Bootstrap settings.
    pub bootstrap: BootstrapInfo,
    /// One row per (method, workload).
    pub rows: Vec<Row>,
    /// Things a reader must know (missing baselines, fallbacks).
    pub warnings: Vec<String>,
}

/// How to score.
#[derive(Debug, Clone)]
pub struct Options {
    /// Site assumptions.
    pub site: Site,
    /// Where they came from.
    pub site_source: String,
    /// Manifests by method id, for runs that did not record them: (label, TOML text).
    pub manifests: BTreeMap<String, (String, String)>,
    /// Site overrides of declared manifests, by method id: win over what the run recorded.
    pub manifest_overrides: BTreeMap<String, Manifest>,
    /// Baseline label (overrides the suite's `[score] baseline`).
    pub baseline: Option<String>,
    /// Bootstrap resamples (default: 1,000, fewer for very large runs).
    pub draws: Option<usize>,
    /// Resampling seed.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            site: Site::default(),
            site_source: "defaults".into(),
            manifests: BTreeMap::new(),
            manifest_overrides: BTreeMap::new(),
            baseline: None,
            draws: None,
            seed: 0x0AE,
        }
    }
}

/// Default resamples per cell.
pub const DEFAULT_DRAWS: usize = 1000;
/// Fewest resamples, however large the run.
pub const MIN_DRAWS: usize = 200;
/// Budget of resampled requests in total (draws × requests), to keep scoring fast.
pub const DRAW_BUDGET: f64 = 5e8;

/// Grid of rates for cost curves: 1e-3 .. 1e3 req/s, 7 points per decade.
pub fn curve_rates() -> Vec<f64> {
    (0..=42).map(|i| 1e-3 * 10f64.powf(i as f64 / 7.0)).collect()
}

struct Prepared<'a> {
    cell: &'a Cell,
    method_id: String,
    manifest: Manifest,
    point: Measured,
    draws: Vec<Measured>,
    means: Means,
    means_draws: Vec<Means>,
    idle_w: f64,
    setup_j: f64,
    setup_s: f64,
    memory_bytes: f64,
    rate_qps: f64,
}

fn labor(m: &Manifest, weeks: f64) -> Labor {
    Labor {
        level: m.expertise,
        weeks,
    }
}

/// Scores a run.
pub fn score(data: &RunData, opts: &Options) -> Result<Scorecards, ScoreError> {
    let site = &opts.site;
    let scoring = Scoring::from_run(data)?;
    let confidence = data.run["run"]["confidence"].as_f64().unwrap_or(0.95);
    let mut warnings = Vec::new();
    if !data.complete() {
        warnings.push(format!(
            "PARTIAL RUN: status `{}`{}; these figures cover only what was recorded",
            data.status,
            data.abort_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    warnings.extend(data.warnings.iter().cloned());

    let total: usize = data.cells.iter().map(|c| c.samples.len()).sum();
    let draws = opts.draws.unwrap_or_else(|| {
        let by_budget = (DRAW_BUDGET / total.max(1) as f64) as usize;
        by_budget.clamp(MIN_DRAWS, DEFAULT_DRAWS)
    });

    // Baseline: flag, then the suite, then the first `dense`, then the first method.
    let methods: Vec<&Value> = data.run["methods"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let label_of = |m: &Value| m["label"].as_str().unwrap_or_default().to_string();
    let baseline = match opts.baseline.clone().or(scoring.baseline.clone()) {
        Some(b) => {
            if !data.cells.iter().any(|c| c.method == b) {
                let labels: Vec<String> = methods.iter().map(|m| label_of(m)).collect();
                return Err(ScoreError::Usage(format!(
                    "baseline `{b}` is not a method of this run; labels: {}",
                    labels.join(", ")
                )));
            }
            b
        }
        None => methods
            .iter()
            .find(|m| m["id"] == "dense")
            .or(methods.first())
            .map(|m| label_of(m))
            .unwrap_or_else(|| data.cells[0].method.clone()),
    };

    let device_class = format!(
        "{} · {} ({} logical CPUs)",
        data.run["run"]["device"].as_str().unwrap_or("cpu"),
        data.run["host"]["cpu_model"].as_str().unwrap_or("unknown CPU"),
        data.run["host"]["logical_cpus"].as_u64().unwrap_or(0)
    );

    let mut prepared = Vec::new();
    for (i, cell) in data.cells.iter().enumerate() {
        prepared.push(prepare(data, cell, i as u64, draws, opts, &scoring, &mut warnings)?);
    }

    let mut rows = Vec::new();
    for p in &prepared {
        let base = prepared
            .iter()
            .find(|b| b.cell.method == baseline && b.cell.workload == p.cell.workload);
        if base.is_none() {
            warnings.push(format!(
                "workload `{}` has no `{baseline}` records: `{}` is scored without an OAE ratio",
                p.cell.workload, p.cell.method
            ));
        }
        rows.push(score_row(data, p, base, site, confidence, &device_class));
    }
    add_robustness(data, &mut rows);

    Ok(Scorecards {
        schema: SCHEMA,
        run: RunInfo {
            dir: data.dir.display().to_string(),
            suite: data.run["suite"]["name"].as_str().unwrap_or("unknown").to_string(),
            status: data.status.clone(),
            partial: !data.complete(),
            abort_reason: data.abort_reason.clone(),
            started_utc: data.run["started_utc"].as_str().map(str::to_string),
            oae_version: data.run["oae_version"].as_str().map(str::to_string),
            git_sha: data.run["git_sha"].as_str().map(str::to_string),
        },
        site: site.clone(),
        site_source: opts.site_source.clone(),
        baseline,
        bootstrap: BootstrapInfo {
            draws,
            confidence,
            seed: opts.seed,
        },
        rows,
        warnings,
    })
}

fn prepare<'a>(
    data: &'a RunData,
    cell: &'a Cell,
    stream: u64,
    draws: usize,
    opts: &Options,
    scoring: &Scoring,
    warnings: &mut Vec<String>,
) -> Result<Prepared<'a>, ScoreError> {
    let entry = data.method_entry(&cell.method);
    let method_id = entry.and_then(|m| m["id"].as_str()).unwrap_or(&cell.method).to_string();
    let manifest = match opts
        .manifest_overrides
        .get(&method_id)
        .or(scoring.manifests.get(&method_id))
    {
        Some(m) => m.clone(),
        None => match opts.manifests.get(&method_id) {
            Some((label, text)) => Manifest::parse(label, text)?,
            None => {
                return Err(ScoreError::Usage(format!(
                    "no adoption-cost manifest for method `{method_id}` (label `{}`): the run did not record one and this oae has none; add methods/src/{method_id}/manifest.toml",
                    cell.method
                )));
            }
        },
    };
    let summary = data.summary_cell(&cell.method, &cell.workload);
    let idle_w = summary
        .and_then(|s| s["energy"]["idle_w"].as_f64())
        .or_else(|| entry.and_then(|m| m["idle_baseline"]["meters"].as_array()?.first()?["idle_w"].as_f64()));
    let idle_w = match idle_w {
        Some(w) => w,
        None => {
            warnings.push(format!(
                "`{}` on `{}`: no loaded-idle power recorded (idle_baseline_s = 0?); idle energy counted as 0 — the cost is understated",
                cell.method, cell.workload
            ));
            0.0
        }
    };
    let setup_j = entry.and_then(|m| m["setup_energy_j"].as_f64()).unwrap_or(0.0);
    let setup_s = entry.and_then(|m| m["setup_s"].as_f64()).unwrap_or(0.0);
    let facts = entry.map(|m| &m["facts"]);
    let weight_bytes = facts
        .and_then(|f| f["weight_bytes"].as_f64())
        .or_else(|| facts.and_then(|f| f["params"].as_f64()).map(|p| p * 4.0))
        .unwrap_or(0.0);
    let memory_bytes = weight_bytes + cell.kv_bytes_peak;
    let workload = data.workload_entry(&cell.workload);
    let rate_qps = workload
        .and_then(|w| w["mean_rate_qps_before_compression"].as_f64())
        .or_else(|| workload.and_then(|w| w["offered_rate_qps"].as_f64()))
        .or_else(|| summary.and_then(|s| s["offered_rate_qps"].as_f64()))
        .unwrap_or(0.0);

    let to_measured = |m: &Means| Measured {
        service_s: if m.service_s.is_nan() { 0.0 } else { m.service_s },
        attainment: if m.attainment.is_nan() { 0.0 } else { m.attainment },
        quality: None,
        dyn_j: if m.dyn_j.is_nan() { 0.0 } else { m.dyn_j.max(0.0) },
        idle_w,
        setup_j,
        memory_bytes,
    };
    let means = means(&cell.samples);
    let means_draws = resample_means(&cell.samples, draws, opts.seed, stream);
    Ok(Prepared {
        cell,
        method_id,
        manifest,
        point: to_measured(&means),
        draws: means_draws.iter().map(to_measured).collect(),
        means,
        means_draws,
        idle_w,
        setup_j,
        setup_s,
        memory_bytes,
        rate_qps,
    })
}

fn break_even_value(b: BreakEven) -> f64 {
    match b {
        BreakEven::At(q) => q,
        BreakEven::Always => 0.0,
        BreakEven::Never => f64::INFINITY,
    }
}

fn break_even_of(v: Option<f64>) -> BreakEven {
    match v {
        Some(0.0) => BreakEven::Always,
        Some(q) if q.is_finite() => BreakEven::At(q),
        _ => BreakEven::Never,
    }
}

fn score_row(
    data: &RunData,
    p: &Prepared,
    base: Option<&Prepared>,
    site: &Site,
    confidence: f64,
    device_class: &str,
) -> Row {
    let h = site.horizon_years;
    let (w_lo, w_mid, w_hi) = p.manifest.weeks_over(h);
    let lab = labor(&p.manifest, w_mid);
    let is_base = base.is_some_and(|b| std::ptr::eq(b.cell, p.cell));
    let estimated = p.cell.energy_estimated;
    let all = [MEASURED, DECLARED, SITE];

    let point = cost::cost_at(p.rate_qps, &p.point, &lab, site);
    let cost_draws: Vec<f64> = p
        .draws
        .iter()
        .map(|m| cost::cost_at(p.rate_qps, m, &lab, site).cost_per_1k_good_usd)
        .collect();
    let at_weeks = |w: f64| cost::cost_at(p.rate_qps, &p.point, &labor(&p.manifest, w), site);
    let cost_fig = Figure::new(point.cost_per_1k_good_usd, &all)
        .ci(&cost_draws, confidence)
        .range(at_weeks(w_lo).cost_per_1k_good_usd, at_weeks(w_hi).cost_per_1k_good_usd)
        .estimated(estimated);
    let tor_of = |b: &Breakdown| {
        if b.total_usd > 0.0 {
            b.good_requests / b.total_usd
        } else {
            f64::NAN
        }
    };
    let tor_draws: Vec<f64> = p
        .draws
        .iter()
        .map(|m| tor_of(&cost::cost_at(p.rate_qps, m, &lab, site)))
        .collect();
    let tor = Figure::new(tor_of(&point), &all)
        .ci(&tor_draws, confidence)
        .range(tor_of(&at_weeks(w_lo)), tor_of(&at_weeks(w_hi)))
        .estimated(estimated);

    // Against the baseline.
    let mut oae = None;
    let mut verdict = Verdict::Unscored;
    let mut break_even = None;
    let mut talent_dependent = false;
    let mut sensitivity = Vec::new();
    let mut ratio_draws = None;
    if let Some(b) = base {
        let (bw_lo, bw_mid, bw_hi) = b.manifest.weeks_over(h);
        let blab = labor(&b.manifest, bw_mid);
        if is_base {
            let mut f = Figure::new(1.0, &all);
            f.ci_lo = Some(1.0);
            f.ci_hi = Some(1.0);
            oae = Some(f);
            verdict = Verdict::Baseline;
            ratio_draws = Some(vec![1.0; p.draws.len()]);
        } else {
            let ratio = |m: &Measured, ml: &Labor, bm: &Measured, bl: &Labor, s: &Site| {
                cost::oae_ratio(p.rate_qps, (m, ml), (bm, bl), s)
            };
            let value = ratio(&p.point, &lab, &b.point, &blab, site);
            let draws: Vec<f64> = p
                .draws
                .iter()
                .zip(&b.draws)
                .map(|(m, bm)| ratio(m, &lab, bm, &blab, site))
                .collect();
            let fav = ratio(
                &p.point,
                &labor(&p.manifest, w_lo),
                &b.point,
                &labor(&b.manifest, bw_hi),
                site,
            );
            let unfav = ratio(
                &p.point,
                &labor(&p.manifest, w_hi),
                &b.point,
                &labor(&b.manifest, bw_lo),
                site,
            );
            let f = Figure::new(value, &all)
                .ci(&draws, confidence)
                .range(fav, unfav)
                .estimated(estimated || b.cell.energy_estimated);
            verdict = match (f.ci_lo, f.ci_hi) {
                (Some(lo), _) if lo > 1.0 => Verdict::Better,
                (_, Some(hi)) if hi < 1.0 => Verdict::Worse,
                _ => Verdict::Inconclusive,
            };
            oae = Some(f);
            ratio_draws = Some(draws);

            let be_point = cost::break_even((&p.point, &lab), (&b.point, &blab), site);
            let be_draws: Vec<f64> = p
                .draws
                .iter()
                .zip(&b.draws)
                .map(|(m, bm)| break_even_value(cost::break_even((m, &lab), (bm, &blab), site)))
                .collect();
            let (lo, hi) = interval(&be_draws, confidence);
            let share_never = be_draws.iter().filter(|v| v.is_infinite()).count() as f64 / be_draws.len().max(1) as f64;
            break_even = Some(BreakEvenFigure {
                point: be_point,
                ci_lo: break_even_of(lo),
                ci_hi: break_even_of(hi),
                share_never,
                range_favourable: cost::break_even(
                    (&p.point, &labor(&p.manifest, w_lo)),
                    (&b.point, &labor(&b.manifest, bw_hi)),
                    site,
                ),
                range_unfavourable: cost::break_even(
                    (&p.point, &labor(&p.manifest, w_hi)),
                    (&b.point, &labor(&b.manifest, bw_lo)),
                    site,
                ),
                sources: all.to_vec(),
            });

            if p.manifest.expertise.number() >= 3 && value >= 1.0 {
                let l4 = Labor {
                    level: Level::MlSpecialist,
                    weeks: w_mid,
                };
                talent_dependent = ratio(&p.point, &l4, &b.point, &blab, site) < 1.0;
            }
            sensitivity = sensitivities(p, b, w_mid, site);
        }
    }

    let rate = |l: Level| site.labor_usd_per_week.rate(l);
    let premium = rate(p.manifest.expertise) - rate(Level::ItGeneralist);
    let talent = Figure::new(premium * w_mid, &[DECLARED, SITE]).range(premium * w_lo, premium * w_hi);

    let energy_fig = |point: f64, f: fn(&Means) -> f64| {
        let d: Vec<f64> = p.means_draws.iter().map(f).collect();
        Figure::new(point, &[MEASURED]).ci(&d, confidence).estimated(estimated)
    };
    let energy_source = data
        .summary_cell(&p.cell.method, &p.cell.workload)
        .and_then(|s| s["energy"]["source"].as_str())
        .unwrap_or("unknown")
        .to_string();
    let energy_per_request = EnergyFigures {
        dynamic_j: energy_fig(p.means.dyn_j, |m| m.dyn_j),
        active_j: energy_fig(p.means.active_j, |m| m.active_j),
        amortized_j: energy_fig(p.means.amortized_j, |m| m.amortized_j),
        source: energy_source,
    };

    // Carbon per request at λ_w under the site: the cost model's carbon over its requests.
    let requests_h = p.rate_qps * site.hours() * 3600.0;
    let carbon_split = |m: &Measured| {
        let b = cost::cost_at(p.rate_qps, m, &lab, site);
        let op_kg = b.energy_kwh * site.grid_g_per_kwh / 1e3;
        let emb_kg = b.carbon_kg - op_kg;
        let per = |kg: f64| {
            if requests_h > 0.0 {
                kg * 1e3 / requests_h
            } else {
                f64::NAN
            }
        };
        (per(op_kg), per(emb_kg), per(b.carbon_kg))
    };
    let (op, emb, tot) = carbon_split(&p.point);
    let splits: Vec<(f64, f64, f64)> = p.draws.iter().map(carbon_split).collect();
    let fig = |v: f64, k: usize, src: &[&'static str]| {
        let d: Vec<f64> = splits.iter().map(|s| [s.0, s.1, s.2][k]).collect();
        Figure::new(v, src).ci(&d, confidence).estimated(estimated)
    };
    let n = p.cell.samples.len().max(1) as f64;
    let gco2e = CarbonFigures {
        operational_g: fig(op, 0, &[MEASURED, SITE]),
        embodied_g: fig(emb, 1, &[MEASURED, SITE]),
        total_g: fig(tot, 2, &[MEASURED, SITE]),
        run_recorded_g: p.cell.run_co2e_g / n,
    };

    let summary = data.summary_cell(&p.cell.method, &p.cell.workload);
    let mut latency_ms = BTreeMap::new();
    if let Some(s) = summary {
        for metric in ["ttft_ms", "e2e_ms", "tpot_ms"] {
            for q in ["p50", "p95", "p99"] {
                if let Some(f) = Figure::from_summary(&s["latency"][metric][q]) {
                    latency_ms.insert(format!("{}_{q}", metric.trim_end_matches("_ms")), f);
                }
            }
        }
    }
    let mut cdf_ms = BTreeMap::new();
    for (name, get) in [
        (
            "e2e",
            (|s: &crate::rundir::Sample| s.e2e_ms) as fn(&crate::rundir::Sample) -> f64,
        ),
        ("ttft", |s| s.ttft_ms),
    ] {
        let mut v: Vec<f64> = p
            .cell
            .samples
            .iter()
            .filter(|s| s.failed == 0.0)
            .map(get)
            .filter(|x| !x.is_nan())
            .collect();
        if !v.is_empty() {
            v.sort_by(f64::total_cmp);
            cdf_ms.insert(
                name.to_string(),
                (0..=100).map(|i| quantile_sorted(&v, i as f64 / 100.0)).collect(),
            );
        }
    }

    let curve = curve_rates()
        .into_iter()
        .map(|l| (l, cost::cost_at(l, &p.point, &lab, site).cost_per_1k_good_usd))
        .collect();

    let mut kept = BTreeMap::new();
    kept.insert("cost_per_1k_good_usd", cost_draws);
    if let Some(d) = &ratio_draws {
        kept.insert("oae_ratio", d.clone());
    }
    kept.insert(
        "energy_amortized_j",
        p.means_draws.iter().map(|m| m.amortized_j).collect(),
    );
    kept.insert("energy_dyn_j", p.means_draws.iter().map(|m| m.dyn_j).collect());

    let mut service = Figure::new(p.point.service_s, &[MEASURED]);
    service = service.ci(&p.draws.iter().map(|m| m.service_s).collect::<Vec<_>>(), confidence);
    let attainment = Figure::new(p.point.attainment, &[MEASURED])
        .ci(&p.draws.iter().map(|m| m.attainment).collect::<Vec<_>>(), confidence);
    let failed = p.cell.samples.iter().filter(|s| s.failed > 0.0).count() as u64;

    Row {
        method: p.cell.method.clone(),
        method_id: p.method_id.clone(),
        workload: p.cell.workload.clone(),
        device_class: device_class.to_string(),
        baseline: is_base,
        rate_qps: p.rate_qps,
        requests: p.cell.samples.len() as u64,
        failed,
        inputs: Inputs {
            service_s: service,
            attainment,
            quality: None,
            idle_w: Figure::new(p.idle_w, &[MEASURED]).estimated(estimated),
            setup_j: Figure::new(p.setup_j, &[MEASURED]).estimated(estimated),
            setup_s: p.setup_s,
            memory_bytes: Figure::new(p.memory_bytes, &[MEASURED]),
        },
        declared: Declared {
            expertise: p.manifest.expertise.name(),
            level: p.manifest.expertise.number(),
            engineer_weeks: [w_lo, w_mid, w_hi],
            components: p.manifest.components.clone(),
            tuning_knobs: p.manifest.tuning_knobs.clone(),
            evidence: p.manifest.evidence.clone(),
        },
        cost_per_1k_good_usd: cost_fig,
        breakdown: point,
        tor,
        oae_ratio: oae,
        verdict,
        break_even,
        talent_premium_usd: talent,
        talent_dependent,
        energy_per_request,
        gco2e_per_request: gco2e,
        latency_ms,
        robustness: None,
        sensitivity,
        curve,
        cdf_ms,
        counters: summary.map(|s| s["counters"].clone()).unwrap_or(Value::Null),
        valid: summary.is_none_or(|s| s["validity"]["valid"].as_bool().unwrap_or(true)),
        invalid_reasons: summary
            .and_then(|s| s["validity"]["reasons"].as_array())
            .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        draws: kept,
    }
}

/// One assumption varied alone: how to set it, its current value and the range searched.
struct Knob {
    name: &'static str,
    unit: &'static str,
    value: f64,
    range: [f64; 2],
    /// Sets the assumption to a value: in the site, or as the method's engineer-weeks (the
    /// `Option`; otherwise both methods' weeks follow the site's horizon).
    set: fn(&mut Site, &mut Option<f64>, f64, Level),
}

fn knobs(site: &Site, weeks: f64, level: Level) -> Vec<Knob> {
    let r = site.labor_usd_per_week.rate(level);
    vec![
        Knob {
            name: "labor rate of the method's level",
            unit: "USD/week",
            value: r,
            range: [r / 100.0, r * 100.0],
            set: |s, _, v, level| {
                // Scale every level so the method's level costs v.
                let f = v / s.labor_usd_per_week.rate(level).max(1e-12);
                let l = &mut s.labor_usd_per_week;
                l.it_generalist *= f;
                l.software_engineer *= f;
                l.ml_engineer *= f;
                l.ml_specialist *= f;
            },
        },
        Knob {
            name: "engineer-weeks of the method (over the horizon)",
            unit: "weeks",
            value: weeks,
            range: [weeks.max(0.01) / 100.0, weeks.max(0.01) * 100.0],
            set: |_, w, v, _| *w = Some(v),
        },
        Knob {
            name: "energy price",
            unit: "USD/kWh",
            value: site.energy_usd_per_kwh,
            range: [0.001, 10.0],
            set: |s, _, v, _| s.energy_usd_per_kwh = v,
        },
        Knob {
            name: "PUE",
            unit: "",
            value: site.pue,
            range: [1.0, 5.0],
            set: |s, _, v, _| s.pue = v,
        },
        Knob {
            name: "grid carbon intensity",
            unit: "gCO2e/kWh",
            value: site.grid_g_per_kwh,
            range: [1.0, 2000.0],
            set: |s, _, v, _| s.grid_g_per_kwh = v,
        },
        Knob {
            name: "carbon price",
            unit: "USD/tCO2e",
            value: site.carbon_usd_per_tonne,
            range: [0.1, 10_000.0],
            set: |s, _, v, _| s.carbon_usd_per_tonne = v,
        },
        Knob {
            name: "horizon",
            unit: "years",
            value: site.horizon_years,
            range: [0.05, 20.0],
            set: |s, _, v, _| s.horizon_years = v,
        },
        Knob {
            name: "device cost",
            unit: "USD/hour",
            value: site.device.usd_per_hour,
            range: [0.001, 100.0],
            set: |s, _, v, _| s.device.usd_per_hour = v,
        },
    ]
}

fn sensitivities(p: &Prepared, b: &Prepared, w_mid: f64, site: &Site) -> Vec<Sensitivity> {
    let level = p.manifest.expertise;
    knobs(site, w_mid, level)
        .into_iter()
        .map(|k| {
            let ratio_at = |v: f64| {
                let mut s = site.clone();
                let mut weeks = None;
                (k.set)(&mut s, &mut weeks, v, level);
                // Weeks over the (possibly changed) horizon: maintenance is per year.
                let mw = weeks.unwrap_or_else(|| p.manifest.weeks_over(s.horizon_years).1);
                let bw = b.manifest.weeks_over(s.horizon_years).1;
                cost::oae_ratio(
                    p.rate_qps,
                    (&p.point, &labor(&p.manifest, mw)),
                    (&b.point, &labor(&b.manifest, bw)),
                    &s,
                ) - 1.0
            };
            Sensitivity {
                assumption: k.name,
                unit: k.unit,
                value: k.value,
                flips_at: crossing(ratio_at, k.range, k.value),
                searched: k.range,
            }
        })
        .collect()
}

/// Where `f` changes sign on a log grid over `range`, nearest `near`, refined by bisection.
fn crossing(f: impl Fn(f64) -> f64, range: [f64; 2], near: f64) -> Option<f64> {
    let n = 80;
    let (lo, hi) = (range[0].ln(), range[1].ln());
    let xs: Vec<f64> = (0..=n).map(|i| (lo + (hi - lo) * i as f64 / n as f64).exp()).collect();
    let ys: Vec<f64> = xs.iter().map(|&x| f(x)).collect();
    let target = near.max(range[0]).ln();
    let mut best: Option<(f64, f64, f64)> = None;
    for i in 0..n {
        if (ys[i] >= 0.0) != (ys[i + 1] >= 0.0) && ys[i].is_finite() && ys[i + 1].is_finite() {
            let d = ((xs[i] * xs[i + 1]).sqrt().ln() - target).abs();
            if best.is_none_or(|b| d < b.0) {
                best = Some((d, xs[i], xs[i + 1]));
            }
        }
    }
    let (_, mut a, mut b) = best?;
    let fa_pos = f(a) >= 0.0;
    for _ in 0..60 {
        let m = (a * b).sqrt();
        if (f(m) >= 0.0) == fa_pos {
            a = m;
        } else {
            b = m;
        }
    }
    Some((a * b).sqrt())
}

fn add_robustness(data: &RunData, rows: &mut [Row]) {
    let Some(workloads) = data.run["workloads"].as_array() else {
        return;
    };
    let perturbations: Vec<(String, String, String)> = workloads
        .iter()
        .filter_map(|w| {
            let nominal = w["config"]["perturbs"].as_str()?;
            Some((
                w["name"].as_str()?.to_string(),
                nominal.to_string(),
                w["config"]["perturbation"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect();
    if perturbations.is_empty() {
        return;
    }
    let stat = |method: &str, workload: &str| {
        let c = data.summary_cell(method, workload)?;
        Some((
            c["goodput"]["goodput_qps"].as_f64(),
            c["latency"]["e2e_ms"]["p95"]["value"].as_f64(),
        ))
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    for row in rows.iter_mut() {
        let mine: Vec<_> = perturbations.iter().filter(|p| p.1 == row.workload).collect();
        if mine.is_empty() {
            continue;
        }
        let Some((good_n, p95_n)) = stat(&row.method, &row.workload) else {
            continue;
        };
        let list: Vec<Perturbation> = mine
            .iter()
            .filter_map(|(w, _, what)| {
                let (good_p, p95_p) = stat(&row.method, w)?;
                Some(Perturbation {
                    workload: w.clone(),
                    perturbation: if what.is_empty() { w.clone() } else { what.clone() },
                    goodput_ratio: ratio(good_p, good_n),
                    p95_e2e_ratio: ratio(p95_p, p95_n),
                })
            })
            .collect();
        let worst_goodput = list
            .iter()
            .filter_map(|p| Some((p.goodput_ratio?, p.perturbation.clone())))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let worst_p95_e2e = list
            .iter()
            .filter_map(|p| Some((p.p95_e2e_ratio?, p.perturbation.clone())))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        row.robustness = Some(Robustness {
            worst_goodput,
            worst_p95_e2e,
            perturbations: list,
        });
    }
}
