//! Scoring a run directory: measured figures (with bootstrap CIs over requests), declared
//! adoption costs (with their ranges) and site assumptions merged into one scorecard per
//! (method, workload) — the math of docs/scoring.md.
//!
//! [`types`] holds what scorecards.json contains; this module the pipeline (read what each
//! cell needs, resample, pick the baseline); [`row`] one scorecard; [`sensitivity`] and
//! [`robustness`] the tables added to it.

mod robustness;
mod row;
mod sensitivity;
mod types;

use std::collections::BTreeMap;

use oae_core::rundir::carbon::CarbonOverrides;

pub use types::*;

use crate::ScoreError;
use crate::bootstrap::{Means, means, resample_means};
use crate::cost::{Labor, Measured};
use crate::manifest::Manifest;
use crate::rundir::{Cell, RunData};
use crate::scoring::Scoring;
use crate::site::Site;

/// How to score.
#[derive(Debug, Clone)]
pub struct Options {
    /// Site assumptions.
    pub site: Site,
    /// Where they came from.
    pub site_source: String,
    /// Carbon keys the site file set: they replace what the run recorded.
    pub carbon_overrides: CarbonOverrides,
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
    /// The site's request rate, req/s: every cell is costed at it instead of its workload's
    /// mean rate (`oae score --rate`).
    pub rate_qps: Option<f64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            site: Site::default(),
            site_source: "defaults".into(),
            carbon_overrides: CarbonOverrides::default(),
            manifests: BTreeMap::new(),
            manifest_overrides: BTreeMap::new(),
            baseline: None,
            draws: None,
            seed: 0x0AE,
            rate_qps: None,
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

/// One cell with everything scoring needs: its declared manifest, the measured point
/// estimates and their bootstrap draws.
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

/// The site with the run's carbon assumptions (grid, PUE, embodied carbon, lifetime), each
/// replaced where the site file sets it.
fn site_for(data: &RunData, opts: &Options) -> (Site, oae_core::rundir::CarbonAssumptions) {
    let carbon = opts.carbon_overrides.apply(&data.run.carbon);
    let mut site = opts.site.clone();
    site.grid_g_per_kwh = carbon.grid.g_per_kwh;
    site.pue = carbon.pue.value;
    site.device.embodied_kg = carbon.embodied.kg;
    site.device.lifetime_years = carbon.embodied.lifetime_years;
    (site, carbon)
}

/// The baseline label: the flag, else the one the run recorded; it must be a method of the
/// run.
fn baseline_of(
    data: &RunData,
    opts: &Options,
    scoring: &Scoring,
    warnings: &mut Vec<String>,
) -> Result<String, ScoreError> {
    let labels: Vec<&str> = data.run.methods.iter().map(|m| m.label.as_str()).collect();
    let chosen = opts.baseline.clone().or(scoring.baseline.clone());
    match chosen {
        Some(b) if data.cells.iter().any(|c| c.method == b) => Ok(b),
        Some(b) => Err(ScoreError::Usage(format!(
            "baseline `{b}` is not a method of this run; labels: {}",
            labels.join(", ")
        ))),
        None => {
            let first = data.cells[0].method.clone();
            warnings.push(format!(
                "the run recorded no baseline (run.json `scoring` is null): `{first}`, its first method, is the baseline; pass --against LABEL to choose"
            ));
            Ok(first)
        }
    }
}

/// Scores a run.
pub fn score(data: &RunData, opts: &Options) -> Result<Scorecards, ScoreError> {
    let (site, carbon) = site_for(data, opts);
    let scoring = Scoring::from_run(data)?;
    let confidence = data.run.run.confidence;
    let mut warnings = Vec::new();
    if !data.complete() {
        warnings.push(format!(
            "PARTIAL RUN: status `{}`{}; these figures cover only what was recorded",
            data.run.status.as_str(),
            data.run
                .abort_reason
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
    let baseline = baseline_of(data, opts, &scoring, &mut warnings)?;
    let host = &data.run.host;
    let device_class = format!(
        "{} · {} ({} logical CPUs)",
        data.run.run.device, host.cpu_model, host.logical_cpus
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
        let ctx = row::Context {
            data,
            site: &site,
            confidence,
            device_class: &device_class,
        };
        rows.push(row::score_row(&ctx, p, base));
    }
    robustness::add_robustness(data, &mut rows);

    Ok(Scorecards {
        schema: SCHEMA,
        run: RunInfo {
            dir: data.dir.display().to_string(),
            suite: data.run.suite.name.clone(),
            status: data.run.status.as_str().to_string(),
            partial: !data.complete(),
            abort_reason: data.run.abort_reason.clone(),
            started_utc: Some(data.run.started_utc.clone()),
            oae_version: Some(data.run.oae_version.clone()),
            git_sha: data.run.git_sha.clone(),
        },
        site,
        site_source: opts.site_source.clone(),
        carbon,
        baseline,
        bootstrap: BootstrapInfo {
            draws,
            confidence,
            seed: opts.seed,
        },
        rows,
        not_applicable: data.run.not_applicable.clone(),
        warnings,
    })
}

/// The declared manifest of a method: a site override (of its label, else its id), else the
/// one the run recorded (composed for its label, else its id's), else the one this oae ships.
fn manifest_of(method_id: &str, label: &str, opts: &Options, scoring: &Scoring) -> Result<Manifest, ScoreError> {
    if let Some(m) = opts
        .manifest_overrides
        .get(label)
        .or(opts.manifest_overrides.get(method_id))
        .or(scoring.label_manifests.get(label))
        .or(scoring.manifests.get(method_id))
    {
        return Ok(m.clone());
    }
    match opts.manifests.get(method_id) {
        Some((file, text)) => Ok(Manifest::parse(file, text)?),
        None => Err(ScoreError::Usage(format!(
            "no adoption-cost manifest for method `{method_id}` (label `{label}`): the run did not record one and this oae has none; add methods/src/{method_id}/manifest.toml"
        ))),
    }
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
    let entry = data.run.method(&cell.method);
    let method_id = entry.map_or_else(|| cell.method.clone(), |m| m.id.clone());
    let manifest = manifest_of(&method_id, &cell.method, opts, scoring)?;
    let summary = data.summary_cell(&cell.method, &cell.workload);
    let idle_w = summary
        .and_then(|s| s.energy.as_ref()?.idle_w)
        .or_else(|| entry.and_then(|m| m.idle_baseline.idle_w(&data.run.energy.meters)));
    let idle_w = idle_w.unwrap_or_else(|| {
        warnings.push(if data.run.energy.meters.is_empty() {
            // No meter at all (an imported peer run, or a machine with no source): say why.
            let why: Vec<&str> = data.run.energy.unavailable.iter().map(|u| u.reason.as_str()).collect();
            format!(
                "`{}` on `{}`: the run measured no energy{}; energy, idle power and carbon count as 0 — the cost is understated",
                cell.method,
                cell.workload,
                why.first().map(|w| format!(" ({w})")).unwrap_or_default()
            )
        } else {
            format!(
                "`{}` on `{}`: no loaded-idle power recorded (idle_baseline_s = 0?); idle energy counted as 0 — the cost is understated",
                cell.method, cell.workload
            )
        });
        0.0
    });
    let setup_j = entry.and_then(|m| m.setup_energy_j).unwrap_or(0.0);
    let setup_s = entry.map_or(0.0, |m| m.setup_s);
    let weight_bytes = entry.and_then(|m| m.weight_bytes).unwrap_or_else(|| {
        warnings.push(format!(
            "`{}`: the method reported no weight size; its memory counts only the KV cache",
            cell.method
        ));
        0
    });
    let memory_bytes = weight_bytes as f64 + cell.kv_bytes_peak;
    let workload = data.run.workload(&cell.workload);
    let rate_qps = opts
        .rate_qps
        .or_else(|| workload.and_then(|w| w.mean_rate_qps_before_compression))
        .or_else(|| workload.map(|w| w.offered_rate_qps))
        .or_else(|| summary.map(|s| s.offered_rate_qps))
        .unwrap_or(0.0);

    // With an SLO quality bar, attainment already counts only right answers; without one,
    // q multiplies it (the expected right answers among the on-time ones).
    let quality_in_attainment = data.run.slo.quality.is_some();
    let to_measured = |m: &Means| Measured {
        service_s: if m.service_s.is_nan() { 0.0 } else { m.service_s },
        attainment: if m.attainment.is_nan() { 0.0 } else { m.attainment },
        quality: (!quality_in_attainment && m.quality.is_finite()).then_some(m.quality),
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
