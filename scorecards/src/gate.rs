//! The CI regression gate: compare a current run with a baseline run per (method, workload,
//! metric), noise-aware.
//!
//! For each metric the change is expressed so that positive means worse: percent of the
//! baseline for times, energy and cost; percentage points for shares. Its confidence interval
//! comes from bootstrap resampling of both runs' requests (independently; the scorecard's own
//! draws for cost and OAE ratio). A metric **regresses** when the change exceeds its threshold
//! *and* its interval lies above zero — a change at noise level, or a significant one smaller
//! than the threshold, passes. A cell missing from the current run fails the gate.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::bootstrap::{SplitMix, interval};
use crate::rundir::{RunData, Sample};
use crate::score::{Row, Scorecards};
use crate::scoring::Thresholds;

/// A gated metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// E2E latency p50, ms.
    E2eP50,
    /// E2E latency p95, ms.
    E2eP95,
    /// E2E latency p99, ms.
    E2eP99,
    /// TTFT p50, ms.
    TtftP50,
    /// TTFT p95, ms.
    TtftP95,
    /// Mean time per output token, ms.
    TpotMean,
    /// Mean service time, ms.
    ServiceMean,
    /// Share of requests good within the SLOs (higher is better).
    Attainment,
    /// Share of failed requests.
    FailedShare,
    /// Dynamic energy per request, J.
    EnergyDyn,
    /// Amortized energy per request, J.
    EnergyAmortized,
    /// Cost per 1k good requests, USD.
    CostPer1k,
    /// OAE ratio against the suite's baseline (higher is better).
    OaeRatio,
}

/// How a metric is computed from a cell.
enum Stat {
    Quantile(fn(&Sample) -> f64, f64),
    Mean(fn(&Sample) -> f64),
    Share(fn(&Sample) -> f64),
    Scorecard(&'static str),
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 13] = [
        Metric::E2eP50,
        Metric::E2eP95,
        Metric::E2eP99,
        Metric::TtftP50,
        Metric::TtftP95,
        Metric::TpotMean,
        Metric::ServiceMean,
        Metric::Attainment,
        Metric::FailedShare,
        Metric::EnergyDyn,
        Metric::EnergyAmortized,
        Metric::CostPer1k,
        Metric::OaeRatio,
    ];

    /// Name in suites, flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::E2eP50 => "e2e_p50_ms",
            Metric::E2eP95 => "e2e_p95_ms",
            Metric::E2eP99 => "e2e_p99_ms",
            Metric::TtftP50 => "ttft_p50_ms",
            Metric::TtftP95 => "ttft_p95_ms",
            Metric::TpotMean => "tpot_mean_ms",
            Metric::ServiceMean => "service_mean_ms",
            Metric::Attainment => "attainment",
            Metric::FailedShare => "failed_share",
            Metric::EnergyDyn => "energy_dyn_j",
            Metric::EnergyAmortized => "energy_amortized_j",
            Metric::CostPer1k => "cost_per_1k_good_usd",
            Metric::OaeRatio => "oae_ratio",
        }
    }

    /// Parses a metric name; the error lists the valid ones.
    pub fn parse(name: &str) -> Result<Metric, String> {
        Metric::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            let names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
            format!("unknown metric `{name}`; valid metrics: {}", names.join(", "))
        })
    }

    /// Whether larger values are better.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Attainment | Metric::OaeRatio)
    }

    /// Whether the change is in percentage points (shares) rather than percent.
    pub fn in_points(self) -> bool {
        matches!(self, Metric::Attainment | Metric::FailedShare)
    }

    fn stat(self) -> Stat {
        match self {
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
        }
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
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
    /// Allowed worsening.
    pub threshold: f64,
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

/// Draws of a sample statistic for the gate (independent of the scorecard's).
fn sample_draws(samples: &[Sample], stat: &Stat, draws: usize, seed: u64, stream: u64) -> (Option<f64>, Vec<f64>) {
    let values: Vec<f64> = match stat {
        Stat::Quantile(f, _) | Stat::Mean(f) | Stat::Share(f) => {
            samples.iter().map(f).filter(|v| !v.is_nan()).collect()
        }
        Stat::Scorecard(_) => unreachable!("scorecard metrics use the scorecard's draws"),
    };
    if values.is_empty() {
        return (None, Vec::new());
    }
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
            buf.extend((0..values.len()).map(|_| values[rng.below(values.len())]));
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

/// Compares `current` with `base`.
#[allow(clippy::too_many_arguments)]
pub fn compare(
    base: (&RunData, &Scorecards),
    current: (&RunData, &Scorecards),
    thresholds: &Thresholds,
    metrics: &[Metric],
    draws: usize,
    seed: u64,
) -> GateReport {
    let confidence = current.1.bootstrap.confidence;
    let mut comparisons = Vec::new();
    let mut warnings = Vec::new();
    let partial = base.1.run.partial || current.1.run.partial;
    if partial {
        warnings.push("PARTIAL RUN: the baseline or the current run did not complete; compare with care".into());
    }
    if base.1.baseline != current.1.baseline {
        warnings.push(format!(
            "the runs use different baselines for oae_ratio (`{}` vs `{}`)",
            base.1.baseline, current.1.baseline
        ));
    }
    let rows_of = |s: &Scorecards| -> BTreeMap<(String, String), usize> {
        s.rows
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.method.clone(), r.workload.clone()), i))
            .collect()
    };
    let cur_rows = rows_of(current.1);
    for (stream, brow) in base.1.rows.iter().enumerate() {
        let key = (brow.method.clone(), brow.workload.clone());
        let Some(&ci) = cur_rows.get(&key) else {
            comparisons.push(Comparison {
                method: key.0,
                workload: key.1,
                metric: None,
                baseline: None,
                current: None,
                change: None,
                ci_lo: None,
                ci_hi: None,
                unit: "",
                threshold: 0.0,
                status: Status::Missing,
                note: "in the baseline run but not in the current one".into(),
            });
            continue;
        };
        let crow = &current.1.rows[ci];
        let bcell = base
            .0
            .cells
            .iter()
            .find(|c| c.method == brow.method && c.workload == brow.workload);
        let ccell = current
            .0
            .cells
            .iter()
            .find(|c| c.method == crow.method && c.workload == crow.workload);
        let (Some(bcell), Some(ccell)) = (bcell, ccell) else {
            continue;
        };
        for &metric in metrics {
            let stat = metric.stat();
            let threshold = thresholds.of(metric);
            let ((bp, bd), (cp, cd)) = match &stat {
                Stat::Scorecard(key) => (scorecard_draws(brow, key), scorecard_draws(crow, key)),
                _ => {
                    let n = min_samples(&stat);
                    if bcell.samples.len() < n || ccell.samples.len() < n {
                        comparisons.push(skipped(
                            brow,
                            metric,
                            threshold,
                            format!("fewer than {n} requests in a run"),
                        ));
                        continue;
                    }
                    (
                        sample_draws(&bcell.samples, &stat, draws, seed, stream as u64),
                        sample_draws(&ccell.samples, &stat, draws, seed ^ 0x5EED, stream as u64),
                    )
                }
            };
            let (Some(bp), Some(cp)) = (bp, cp) else {
                comparisons.push(skipped(brow, metric, threshold, "no values in a run".into()));
                continue;
            };
            let change_of = |b: f64, c: f64| -> f64 {
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
            };
            let change = change_of(bp, cp);
            if !change.is_finite() {
                comparisons.push(skipped(
                    brow,
                    metric,
                    threshold,
                    "baseline value is 0 or not finite".into(),
                ));
                continue;
            }
            let diffs: Vec<f64> = bd
                .iter()
                .zip(&cd)
                .map(|(&b, &c)| change_of(b, c))
                .filter(|d| d.is_finite())
                .collect();
            let (lo, hi) = if diffs.is_empty() {
                (Some(change), Some(change))
            } else {
                interval(&diffs, confidence)
            };
            let (lo_v, hi_v) = (lo.unwrap_or(change), hi.unwrap_or(change));
            let (status, note) = if change > threshold && lo_v > 0.0 {
                (
                    Status::Regression,
                    format!("worse by more than {threshold} and beyond noise"),
                )
            } else if change < -threshold && hi_v < 0.0 {
                (Status::Improvement, "better beyond the threshold and noise".to_string())
            } else if change > threshold {
                (Status::Pass, "worse than the threshold but within noise".to_string())
            } else if lo_v > 0.0 {
                (Status::Pass, "significant but within the threshold".to_string())
            } else {
                (Status::Pass, "within threshold".to_string())
            };
            comparisons.push(Comparison {
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
                status,
                note,
            });
        }
    }
    for r in &current.1.rows {
        if !base
            .1
            .rows
            .iter()
            .any(|b| b.method == r.method && b.workload == r.workload)
        {
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
        confidence,
        draws,
        passed: failures == 0,
        failures,
        comparisons,
        warnings,
    }
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
        status: Status::Skipped,
        note,
    }
}
