//! How much each gate metric moves from run to run on one machine when nothing changed,
//! measured from A/A runs (`oae gate calibrate DIR...`), and the floor it puts under the
//! gate's thresholds (`oae gate --noise FILE`).
//!
//! For every (method, workload, metric) the calibration takes the metric's value in each run
//! and its sample standard deviation σ across runs — as a percentage of the mean, or in
//! percentage points for shares. The change between two runs then has a standard deviation
//! of √2·σ, and the gate will not call a change a regression unless it exceeds
//! **k·√2·σ** (as well as the declared threshold, and with its interval above zero). With
//! k = [`DEFAULT_K`] = 3 a single metric of normally distributed run-to-run noise exceeds its
//! floor by chance 0.13 % of the time; over the 13 metrics of a cell at most ≈ 1.8 %
//! (Bonferroni). The self-test measures the rate the whole gate reaches (README, "the gate").

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ScoreError;
use crate::gate::{cell_samples, point};
use crate::metric::Metric;
use crate::rundir::RunData;
use crate::score::Scorecards;

/// Default multiple of the run-to-run standard deviation of a change.
pub const DEFAULT_K: f64 = 3.0;

/// What the gate calls [`Noise::reference`] in its reports.
pub const REFERENCE_NAME: &str = "built-in reference noise (a 2-vCPU VM)";

/// Run-to-run standard deviations (% of the mean) used when a machine has no calibration of
/// its own, measured by the gate self-test (`tests/gate_selftest.rs`, two sessions on
/// 2026-11-26) on a 2-vCPU cloud VM: dense on the embedded model, 27 A/A runs in four sets
/// (8 and 8 runs of one trial, 3 and 8 runs of three trials), each set's σ pooled by its
/// degrees of freedom and rounded up to the next whole percent (E2E p50: 4.7, 7.4, 3.9 and
/// 4.6 % pool to 5.6 → 6). Three trials per run did not clearly narrow the spread between
/// runs (TPOT pooled: 6.9 % with one trial, 5.2 % with three): trials back to back share the
/// machine's state, runs minutes apart do not — so one table serves both. Cost per 1k good
/// requests gets service time's (at low rates it hardly moves, at high rates it follows
/// service time at most linearly). Shares (attainment, failed share) and the OAE ratio (two
/// methods of one run, whose machine state cancels) get none: their thresholds alone apply.
/// The mock method's spread (≤ 2.6 % on every latency metric) is left out: it sleeps rather
/// than computes, and would understate a real model's.
pub const REFERENCE_SD: [(Metric, f64); 10] = [
    (Metric::E2eP50, 6.0),
    (Metric::E2eP95, 9.0),
    (Metric::E2eP99, 13.0),
    (Metric::TtftP50, 7.0),
    (Metric::TtftP95, 15.0),
    (Metric::TpotMean, 7.0),
    (Metric::ServiceMean, 7.0),
    (Metric::EnergyDyn, 6.0),
    (Metric::EnergyAmortized, 4.0),
    (Metric::CostPer1k, 7.0),
];
/// Schema tag of a noise file.
pub const SCHEMA: &str = "oae-gate-noise/1";

/// One metric of one cell across the calibration runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellNoise {
    /// Method label.
    pub method: String,
    /// Workload.
    pub workload: String,
    /// Metric name.
    pub metric: String,
    /// Its value in each run.
    pub values: Vec<f64>,
    /// Their mean.
    pub mean: f64,
    /// Run-to-run standard deviation: % of the mean, or percentage points for shares.
    pub sd: f64,
}

/// A noise calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noise {
    /// [`SCHEMA`].
    pub schema: String,
    /// The floor is `k × √2 × sd`.
    pub k: f64,
    /// The A/A run directories measured.
    pub runs: Vec<String>,
    /// Every metric of every cell.
    pub cells: Vec<CellNoise>,
    /// Per metric, the largest `sd` of any cell (for cells the calibration did not see).
    pub metrics: BTreeMap<String, f64>,
}

fn sd_of(metric: Metric, values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let sd = if metric.in_points() {
        var.sqrt() * 100.0
    } else if mean.abs() > 0.0 {
        var.sqrt() / mean.abs() * 100.0
    } else {
        return None;
    };
    Some((mean, sd))
}

impl Noise {
    /// The floors the gate applies when this machine has no calibration: [`REFERENCE_SD`]
    /// with k = [`DEFAULT_K`]. Its `runs` is empty.
    pub fn reference() -> Noise {
        Noise {
            schema: SCHEMA.into(),
            k: DEFAULT_K,
            runs: Vec::new(),
            cells: Vec::new(),
            metrics: REFERENCE_SD.iter().map(|(m, sd)| (m.name().to_string(), *sd)).collect(),
        }
    }

    /// Whether this is [`Noise::reference`] rather than a calibration of this machine.
    pub fn is_reference(&self) -> bool {
        self.runs.is_empty()
    }

    /// Measures the run-to-run spread of every metric over A/A runs of one suite.
    pub fn calibrate(runs: &[(&RunData, &Scorecards)], k: f64) -> Result<Noise, ScoreError> {
        if runs.len() < 3 {
            return Err(ScoreError::Usage(format!(
                "calibration needs at least 3 A/A runs of the same suite, got {}; run it again with more",
                runs.len()
            )));
        }
        if !(k.is_finite() && k > 0.0) {
            return Err(ScoreError::Usage(format!("--k {k}: give a positive multiple")));
        }
        let mut cells = Vec::new();
        for row in &runs[0].1.rows {
            for metric in Metric::ALL {
                let values: Vec<f64> = runs
                    .iter()
                    .filter_map(|(d, c)| {
                        let r = c
                            .rows
                            .iter()
                            .find(|r| r.method == row.method && r.workload == row.workload)?;
                        point(metric, r, cell_samples(d, &row.method, &row.workload)?)
                    })
                    .filter(|v| v.is_finite())
                    .collect();
                if values.len() < runs.len() {
                    continue; // not in every run, or no value: nothing to learn from
                }
                if let Some((mean, sd)) = sd_of(metric, &values) {
                    cells.push(CellNoise {
                        method: row.method.clone(),
                        workload: row.workload.clone(),
                        metric: metric.name().into(),
                        values,
                        mean,
                        sd,
                    });
                }
            }
        }
        let mut metrics: BTreeMap<String, f64> = BTreeMap::new();
        for c in &cells {
            let e = metrics.entry(c.metric.clone()).or_insert(0.0);
            *e = e.max(c.sd);
        }
        Ok(Noise {
            schema: SCHEMA.into(),
            k,
            runs: runs.iter().map(|(d, _)| d.dir.display().to_string()).collect(),
            cells,
            metrics,
        })
    }

    /// The floor under `metric`'s threshold in (method, workload): `k × √2 × sd` of that
    /// cell, else of the metric's largest; `None` when the calibration did not measure it.
    pub fn floor(&self, method: &str, workload: &str, metric: Metric) -> Option<f64> {
        let sd = self
            .cells
            .iter()
            .find(|c| c.method == method && c.workload == workload && c.metric == metric.name())
            .map(|c| c.sd)
            .or_else(|| self.metrics.get(metric.name()).copied())?;
        Some(self.k * std::f64::consts::SQRT_2 * sd)
    }

    /// Reads a noise file; errors name the file, line and field.
    pub fn read(path: &Path) -> Result<Noise, ScoreError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScoreError::io(path, e))?;
        let noise: Noise = serde_json::from_str(&text).map_err(|e| ScoreError::Data {
            file: file.clone(),
            line: e.line(),
            field: String::new(),
            message: format!("not a noise calibration ({e}); write one with `oae gate calibrate DIR...`"),
        })?;
        if noise.runs.is_empty() {
            return Err(ScoreError::Data {
                file,
                line: 0,
                field: "runs".into(),
                message: "names no calibration runs; write the file with `oae gate calibrate DIR...`".into(),
            });
        }
        if noise.schema != SCHEMA {
            return Err(ScoreError::Data {
                file,
                line: 0,
                field: "schema".into(),
                message: format!("`{}` is not `{SCHEMA}`", noise.schema),
            });
        }
        for name in noise.metrics.keys().chain(noise.cells.iter().map(|c| &c.metric)) {
            Metric::parse(name).map_err(|m| ScoreError::Data {
                file: path.display().to_string(),
                line: 0,
                field: "metrics".into(),
                message: m,
            })?;
        }
        Ok(noise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_in_percent_of_the_mean_or_in_points_for_shares() {
        let (mean, sd) = sd_of(Metric::E2eP50, &[90.0, 110.0, 90.0, 110.0]).unwrap();
        assert_eq!(mean, 100.0);
        assert!((sd - 11.547).abs() < 1e-3, "{sd}");
        let (_, pp) = sd_of(Metric::Attainment, &[0.9, 1.0]).unwrap();
        assert!((pp - 7.071).abs() < 1e-3, "{pp}");
        assert!(sd_of(Metric::E2eP50, &[1.0]).is_none());
    }

    #[test]
    fn reference_floors_are_k_root_two_sd_and_leave_shares_alone() {
        let r = Noise::reference();
        assert!(r.is_reference());
        let f = r.floor("any", "where", Metric::E2eP50).unwrap();
        assert!((f - DEFAULT_K * std::f64::consts::SQRT_2 * 6.0).abs() < 1e-9, "{f}");
        assert_eq!(r.floor("any", "where", Metric::Attainment), None);
        assert_eq!(r.floor("any", "where", Metric::OaeRatio), None);
    }

    #[test]
    fn a_noise_file_without_runs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("noise.json");
        std::fs::write(&path, serde_json::to_vec(&Noise::reference()).unwrap()).unwrap();
        let e = Noise::read(&path).unwrap_err().to_string();
        assert!(e.contains("runs") && e.contains("oae gate calibrate"), "{e}");
    }
}
