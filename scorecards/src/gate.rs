//! The CI regression gate: compare a current run with a baseline run per (method, workload,
//! metric), noise-aware.
//!
//! For each metric the change is expressed so that positive means worse: percent of the
//! baseline for times, energy and cost; percentage points for shares. Its confidence interval
//! comes from bootstrap resampling of both runs' requests (independently; the scorecard's own
//! draws for cost and OAE ratio). A metric **regresses** when the change exceeds its threshold
//! *and* its interval lies above zero — a change at noise level, or a significant one smaller
//! than the threshold, passes. A cell missing from the current run fails the gate.

use serde::Serialize;

use crate::bootstrap::{SplitMix, by_trial, draw_indices, interval};
use crate::metric::{Metric, Thresholds};
use crate::noise::Noise;
use crate::rundir::{RunData, Sample};
use crate::score::{Row, Scorecards};

/// How a metric is computed from a cell.
enum Stat {
    Quantile(fn(&Sample) -> f64, f64),
    Mean(fn(&Sample) -> f64),
    Share(fn(&Sample) -> f64),
    Scorecard(&'static str),
}

/// How `metric` is computed from a cell's samples, or taken from the scorecard.
fn stat_of(metric: Metric) -> Stat {
    match metric {
        Metric::E2eP50 => Stat::Quantile(|s| s.e2e_ms, 0.50),
        Metric::E2eP95 => Stat::Quantile(|s| s.e2e_ms, 0.95),
        Metric::E2eP99 => Stat::Quantile(|s| s.e2e_ms, 0.99),
        Metric::TtftP50 => Stat::Quantile(|s| s.ttft_ms, 0.50),
        Metric::TtftP95 => Stat::Quantile(|s| s.ttft_ms, 0.95),
        Metric::TpotMean => Stat::Mean(|s| s.tpot_ms),
        Metric::ServiceMean => Stat::Mean(|s| s.service_s * 1e3),
        Metric::Attainment => Stat::Share(|s| s.good),
        Metric::FailedShare => Stat::Share(|s| s.failed),
        Metric::EnergyDyn => Stat::Scorecard("energy_dyn_j"),
        Metric::EnergyAmortized => Stat::Scorecard("energy_amortized_j"),
        Metric::CostPer1k => Stat::Scorecard("cost_per_1k_good_usd"),
        Metric::OaeRatio => Stat::Scorecard("oae_ratio"),
        Metric::Quality => Stat::Mean(|s| s.quality),
    }
}

/// The outcome of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Within the threshold or within noise.
    Pass,
    /// Worse beyond the threshold, and significantly so.
    Regression,
    /// Better beyond the threshold, significantly.
    Improvement,
    /// Not enough data to compare (noted, does not fail).
    Skipped,
    /// The cell is in the baseline but not in the current run (fails).
    Missing,
    /// Worse beyond the threshold and noise, but reported only: an energy figure from a
    /// modelled (estimated) meter or from a machine busy with other work, unless the gate
    /// was told to count it (`strict_energy`).
    Advisory,
}

/// One (method, workload, metric) comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Method label.
    pub method: String,
    /// Workload.
    pub workload: String,
    /// Metric (`None`: the whole cell, when it is missing from the current run).
    pub metric: Option<Metric>,
    /// Baseline run's value.
    pub baseline: Option<f64>,
    /// Current run's value.
    pub current: Option<f64>,
    /// Change, positive = worse: percent of the baseline (points for shares).
    pub change: Option<f64>,
    /// Confidence interval of the change.
    pub ci_lo: Option<f64>,
    /// Upper end.
    pub ci_hi: Option<f64>,
    /// `%` or `pp`.
    pub unit: &'static str,
    /// Allowed worsening: the declared threshold, or the calibrated noise floor when larger.
    pub threshold: f64,
    /// The calibrated noise floor that applied (`oae gate calibrate`), when one did.
    pub noise_floor: Option<f64>,
    /// Verdict.
    pub status: Status,
    /// Why.
    pub note: String,
}

/// Everything `oae gate` writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateReport {
    /// Schema tag.
    pub schema: &'static str,
    /// Baseline run directory.
    pub baseline_dir: String,
    /// Current run directory.
    pub current_dir: String,
    /// Either run is partial.
    pub partial: bool,
    /// Thresholds applied.
    pub thresholds: Thresholds,
    /// The noise floors used, if any: a calibration's file, or [`crate::noise::REFERENCE_NAME`].
    pub noise: Option<String>,
    /// Both sides came from one interleaved run (`oae gate --paired`).
    pub paired: bool,
    /// Trials of the baseline run and of the current run.
    pub trials: [u32; 2],
    /// Confidence of the intervals.
    pub confidence: f64,
    /// Bootstrap resamples.
    pub draws: usize,
    /// True when nothing regressed and nothing is missing.
    pub passed: bool,
    /// Count of regressions (and missing cells).
    pub failures: usize,
    /// Every comparison.
    pub comparisons: Vec<Comparison>,
    /// Notes for the reader.
    pub warnings: Vec<String>,
}

/// Draws of a sample statistic for the gate (independent of the scorecard's): hierarchical
/// over trials when the run has two or more.
fn sample_draws(samples: &[Sample], stat: &Stat, draws: usize, seed: u64, stream: u64) -> (Option<f64>, Vec<f64>) {
    let kept: Vec<(f64, u32)> = match stat {
        Stat::Quantile(f, _) | Stat::Mean(f) | Stat::Share(f) => samples
            .iter()
            .map(|s| (f(s), s.trial))
            .filter(|v| !v.0.is_nan())
            .collect(),
        Stat::Scorecard(_) => unreachable!("scorecard metrics use the scorecard's draws"),
    };
    if kept.is_empty() {
        return (None, Vec::new());
    }
    let values: Vec<f64> = kept.iter().map(|v| v.0).collect();
    let groups = by_trial(&kept, |v| v.1);
    let reduce = |v: &mut Vec<f64>| -> f64 {
        match stat {
            Stat::Quantile(_, q) => {
                let k = ((v.len() - 1) as f64 * q).round() as usize;
                *v.select_nth_unstable_by(k, f64::total_cmp).1
            }
            _ => v.iter().sum::<f64>() / v.len() as f64,
        }
    };
    let point = reduce(&mut values.clone());
    let mut buf = Vec::with_capacity(values.len());
    let out = (0..draws)
        .map(|d| {
            let mut rng = SplitMix::new(seed, stream, d as u64);
            buf.clear();
            draw_indices(&mut rng, values.len(), &groups, |i| buf.push(values[i]));
            reduce(&mut buf)
        })
        .collect();
    (Some(point), out)
}

/// Fewest requests for a percentile to be gated at all: its bootstrap is meaningless below.
fn min_samples(stat: &Stat) -> usize {
    match stat {
        Stat::Quantile(_, q) => ((1.0 / (1.0 - q)).ceil() as usize * 2).max(10),
        _ => 5,
    }
}

/// How strictly to compare two runs.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Thresholds and the metrics gated by default.
    pub thresholds: Thresholds,
    /// The metrics to gate.
    pub metrics: Vec<Metric>,
    /// Bootstrap resamples.
    pub draws: usize,
    /// Resampling seed.
    pub seed: u64,
    /// Run-to-run noise — calibrated on this machine or [`Noise::reference`] — named: each
    /// metric's floor under its threshold.
    pub noise: Option<(String, Noise)>,
    /// Both sides come from one interleaved run (`oae gate --paired`): nothing is compared
    /// across runs.
    pub paired: bool,
    /// Let energy metrics fail the gate even when the energy was modelled (estimated) or
    /// the machine was busy with other work ([`BUSY_SHARE`]).
    pub strict_energy: bool,
}

/// The settings of one comparison of two runs.
struct Settings<'a> {
    config: &'a GateConfig,
    confidence: f64,
}

/// Compares `current` with `base`.
pub fn compare(base: (&RunData, &Scorecards), current: (&RunData, &Scorecards), config: &GateConfig) -> GateReport {
    let settings = Settings {
        config,
        confidence: current.1.bootstrap.confidence,
    };
    let (thresholds, metrics, draws) = (&config.thresholds, &config.metrics, config.draws);
    let trials = [base.0.run.run.trials, current.0.run.run.trials];
    let mut comparisons = Vec::new();
    let mut warnings = Vec::new();
    let partial = base.1.run.partial || current.1.run.partial;
    if partial {
        warnings.push("PARTIAL RUN: the baseline or the current run did not complete; compare with care".into());
    }
    if trials.iter().any(|&t| t < 2) {
        warnings.push(
            "a run with one trial: its intervals resample requests, not runs, and miss run-to-run noise (noise floors cover it)"
                .into(),
        );
    }
    match &config.noise {
        Some((name, n)) if n.is_reference() => warnings.push(format!(
            "this machine is not calibrated: thresholds are raised to the floors of the {name} (k = {} × the spread measured there); `oae gate calibrate` on {} A/A runs measures this machine's, `--noise FILE` uses them",
            n.k,
            if config.paired { "paired" } else { "separate" }
        )),
        Some(_) => {}
        None if !config.paired => warnings.push(
            "no noise floors: a change beyond its threshold with an interval above zero fails, however much runs differ on this machine".into(),
        ),
        None => {}
    }
    if base.1.baseline != current.1.baseline {
        warnings.push(format!(
            "the runs use different baselines for oae_ratio (`{}` vs `{}`)",
            base.1.baseline, current.1.baseline
        ));
    }
    for (stream, brow) in base.1.rows.iter().enumerate() {
        let Some(crow) = find_row(current.1, &brow.method, &brow.workload) else {
            comparisons.push(Comparison {
                method: brow.method.clone(),
                workload: brow.workload.clone(),
                metric: None,
                baseline: None,
                current: None,
                change: None,
                ci_lo: None,
                ci_hi: None,
                unit: "",
                threshold: 0.0,
                noise_floor: None,
                status: Status::Missing,
                note: "in the baseline run but not in the current one".into(),
            });
            continue;
        };
        let (Some(bs), Some(cs)) = (
            samples_of(base.0, &brow.method, &brow.workload),
            samples_of(current.0, &brow.method, &brow.workload),
        ) else {
            continue;
        };
        let busy = busy_run(base.0, current.0, &brow.method, &brow.workload);
        if let Some(why) = &busy {
            warnings.push(format!(
                "`{}` on `{}`: {why}; its latency and energy changes may be that work's, not the method's — re-run on a quiet machine, or use --paired",
                brow.method, brow.workload
            ));
        }
        let doubt = energy_doubt(brow, crow, busy.as_deref());
        let scored = |s: &[Sample]| s.iter().any(|x| x.quality.is_finite());
        for &metric in metrics.iter() {
            if metric == Metric::Quality && !scored(bs) && !scored(cs) {
                continue; // no task in this cell: nothing to judge
            }
            let pair = Pair {
                brow,
                crow,
                base: bs,
                current: cs,
                stream: stream as u64,
                energy_doubt: doubt.as_deref(),
            };
            comparisons.push(compare_metric(&settings, &pair, metric));
        }
    }
    for r in &current.1.rows {
        if find_row(base.1, &r.method, &r.workload).is_none() {
            warnings.push(format!(
                "`{}` on `{}` is new in the current run: not gated",
                r.method, r.workload
            ));
        }
    }
    let failures = comparisons
        .iter()
        .filter(|c| matches!(c.status, Status::Regression | Status::Missing))
        .count();
    GateReport {
        schema: "oae-gate/1",
        baseline_dir: base.0.dir.display().to_string(),
        current_dir: current.0.dir.display().to_string(),
        partial,
        thresholds: thresholds.clone(),
        noise: config.noise.as_ref().map(|n| n.0.clone()),
        paired: config.paired,
        trials,
        confidence: settings.confidence,
        draws,
        passed: failures == 0,
        failures,
        comparisons,
        warnings,
    }
}

fn find_row<'a>(s: &'a Scorecards, method: &str, workload: &str) -> Option<&'a Row> {
    s.rows.iter().find(|r| r.method == method && r.workload == workload)
}

fn samples_of<'a>(d: &'a RunData, method: &str, workload: &str) -> Option<&'a [Sample]> {
    d.cells
        .iter()
        .find(|c| c.method == method && c.workload == workload)
        .map(|c| c.samples.as_slice())
}

/// One cell in both runs.
struct Pair<'a> {
    brow: &'a Row,
    crow: &'a Row,
    base: &'a [Sample],
    current: &'a [Sample],
    stream: u64,
    /// Why this cell's energy is not the method's alone, if it is not.
    energy_doubt: Option<&'a str>,
}

/// Share of the machine's CPU capacity other processes may use during a cell before its
/// energy counts as not the method's alone: 10 %. An idle VM's background (kernel threads,
/// sshd, the sampler's own reads are oae's) stays well under 1 %; a package install or a
/// co-scheduled test run takes a whole vCPU (50 % of a 2-vCPU machine).
pub const BUSY_SHARE: f64 = 0.10;

/// The share of the machine's CPU other processes used during (method, workload) of `d`, when
/// above [`BUSY_SHARE`].
fn busy_share(d: &RunData, method: &str, workload: &str) -> Option<f64> {
    let cell = d
        .summary
        .as_ref()?
        .cells
        .iter()
        .find(|c| c.method == method && c.workload == workload)?;
    cell.host_other_cpu_share(d.run.host.logical_cpus)
        .filter(|&s| s > BUSY_SHARE)
}

/// Which of the two runs shared the machine with other work during (method, workload), and
/// how much of its CPU that work took.
fn busy_run(base: &RunData, current: &RunData, method: &str, workload: &str) -> Option<String> {
    [("baseline", base), ("current", current)]
        .into_iter()
        .find_map(|(which, d)| busy_share(d, method, workload).map(|s| (which, s)))
        .map(|(which, share)| {
            format!(
                "other processes used {:.0} % of the machine's CPU during the {which} run",
                share * 100.0
            )
        })
}

/// Why the energy of a cell cannot be gated as measured: modelled energy in either run, or
/// a machine busy with other work (`busy`).
fn energy_doubt(brow: &Row, crow: &Row, busy: Option<&str>) -> Option<String> {
    if brow.energy_per_request.amortized_j.estimated || crow.energy_per_request.amortized_j.estimated {
        return Some("the energy is modelled, not measured".into());
    }
    busy.map(str::to_string)
}

/// The change of `metric`, positive = worse: percent of the baseline, points for shares.
pub(crate) fn change_of(metric: Metric, b: f64, c: f64) -> f64 {
    let sign = if metric.higher_is_better() { -1.0 } else { 1.0 };
    if metric.in_points() {
        sign * (c - b) * 100.0
    } else if b.abs() > 0.0 {
        sign * (c - b) / b.abs() * 100.0
    } else if c == b {
        0.0
    } else {
        f64::NAN
    }
}

/// Regression = worse beyond the threshold *and* beyond noise; the mirror image is an
/// improvement; everything else passes, with a note saying why.
fn verdict(change: f64, lo: f64, hi: f64, threshold: f64) -> (Status, String) {
    if change > threshold && lo > 0.0 {
        (
            Status::Regression,
            format!("worse by more than {threshold} and beyond noise"),
        )
    } else if change < -threshold && hi < 0.0 {
        (Status::Improvement, "better beyond the threshold and noise".to_string())
    } else if change > threshold {
        (Status::Pass, "worse than the threshold but within noise".to_string())
    } else if lo > 0.0 {
        (Status::Pass, "significant but within the threshold".to_string())
    } else {
        (Status::Pass, "within threshold".to_string())
    }
}

fn compare_metric(settings: &Settings<'_>, pair: &Pair<'_>, metric: Metric) -> Comparison {
    let (brow, crow) = (pair.brow, pair.crow);
    let stat = stat_of(metric);
    let config = settings.config;
    let floor = config
        .noise
        .as_ref()
        .and_then(|(_, n)| n.floor(&brow.method, &brow.workload, metric));
    let threshold = config.thresholds.of(metric).max(floor.unwrap_or(0.0));
    let ((bp, bd), (cp, cd)) = match &stat {
        Stat::Scorecard(key) => (scorecard_draws(brow, key), scorecard_draws(crow, key)),
        _ => {
            let n = min_samples(&stat);
            if pair.base.len() < n || pair.current.len() < n {
                return skipped(brow, metric, threshold, format!("fewer than {n} requests in a run"));
            }
            let (draws, seed) = (config.draws, config.seed);
            (
                sample_draws(pair.base, &stat, draws, seed, pair.stream),
                sample_draws(pair.current, &stat, draws, seed ^ 0x5EED, pair.stream),
            )
        }
    };
    let (Some(bp), Some(cp)) = (bp, cp) else {
        return skipped(brow, metric, threshold, "no values in a run".into());
    };
    let change = change_of(metric, bp, cp);
    if !change.is_finite() {
        return skipped(brow, metric, threshold, "baseline value is 0 or not finite".into());
    }
    let diffs: Vec<f64> = bd
        .iter()
        .zip(&cd)
        .map(|(&b, &c)| change_of(metric, b, c))
        .filter(|d| d.is_finite())
        .collect();
    let (lo, hi) = if diffs.is_empty() {
        (Some(change), Some(change))
    } else {
        interval(&diffs, settings.confidence)
    };
    let (mut status, mut note) = verdict(change, lo.unwrap_or(change), hi.unwrap_or(change), threshold);
    if floor.is_some_and(|f| f >= config.thresholds.of(metric)) {
        note.push_str(" (threshold raised to the calibrated noise floor)");
    }
    if let Some(why) = pair
        .energy_doubt
        .filter(|_| metric.is_energy() && !config.strict_energy)
        && status == Status::Regression
    {
        status = Status::Advisory;
        note = format!("{note}; advisory: {why} (--strict-energy to fail on it)");
    }
    Comparison {
        method: brow.method.clone(),
        workload: brow.workload.clone(),
        metric: Some(metric),
        baseline: Some(bp),
        current: Some(cp),
        change: Some(change),
        ci_lo: lo,
        ci_hi: hi,
        unit: if metric.in_points() { "pp" } else { "%" },
        threshold,
        noise_floor: floor,
        status,
        note,
    }
}

/// The value of `metric` for one cell of one run, as the gate compares it.
pub fn point(metric: Metric, row: &Row, samples: &[Sample]) -> Option<f64> {
    match stat_of(metric) {
        Stat::Scorecard(key) => scorecard_draws(row, key).0,
        stat => sample_draws(samples, &stat, 0, 0, 0).0,
    }
}

/// The samples of (method, workload) in `data`.
pub fn cell_samples<'a>(data: &'a RunData, method: &str, workload: &str) -> Option<&'a [Sample]> {
    samples_of(data, method, workload)
}

fn scorecard_draws(row: &Row, key: &str) -> (Option<f64>, Vec<f64>) {
    let point = match key {
        "cost_per_1k_good_usd" => Some(row.cost_per_1k_good_usd.value),
        "oae_ratio" => row.oae_ratio.as_ref().map(|f| f.value),
        "energy_amortized_j" => Some(row.energy_per_request.amortized_j.value),
        "energy_dyn_j" => Some(row.energy_per_request.dynamic_j.value),
        _ => None,
    }
    .filter(|v| v.is_finite());
    (point, row.draws.get(key).cloned().unwrap_or_default())
}

fn skipped(row: &Row, metric: Metric, threshold: f64, note: String) -> Comparison {
    Comparison {
        method: row.method.clone(),
        workload: row.workload.clone(),
        metric: Some(metric),
        baseline: None,
        current: None,
        change: None,
        ci_lo: None,
        ci_hi: None,
        unit: if metric.in_points() { "pp" } else { "%" },
        threshold,
        noise_floor: None,
        status: Status::Skipped,
        note,
    }
}
