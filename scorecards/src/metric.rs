//! The gate's metrics and thresholds: what can be gated, which direction is worse, and how
//! much worse a metric may get before the gate fails.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::ScoreError;

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
    /// Mean answer quality of ok requests, by the quality scorer (higher is better; cells
    /// without a task are not compared).
    Quality,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 14] = [
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
        Metric::Quality,
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
            Metric::Quality => "quality",
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
        matches!(self, Metric::Attainment | Metric::OaeRatio | Metric::Quality)
    }

    /// Whether the metric is an energy figure (advisory when the energy is modelled).
    pub fn is_energy(self) -> bool {
        matches!(self, Metric::EnergyDyn | Metric::EnergyAmortized)
    }

    /// Whether the change is in percentage points (shares) rather than percent.
    pub fn in_points(self) -> bool {
        matches!(self, Metric::Attainment | Metric::FailedShare)
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Default allowed worsening of a metric before the gate fails, percent (or points).
pub const DEFAULT_THRESHOLD_PCT: f64 = 5.0;

/// Gate thresholds: a default and per-metric overrides, percent (points for shares).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thresholds {
    /// For every metric not listed.
    pub default_pct: f64,
    /// Per metric.
    pub per_metric: BTreeMap<Metric, f64>,
    /// Metrics gated (default: all).
    pub metrics: Vec<Metric>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            default_pct: DEFAULT_THRESHOLD_PCT,
            per_metric: BTreeMap::new(),
            metrics: Metric::ALL.to_vec(),
        }
    }
}

impl Thresholds {
    /// The threshold for `metric`.
    pub fn of(&self, metric: Metric) -> f64 {
        self.per_metric.get(&metric).copied().unwrap_or(self.default_pct)
    }

    /// Parses `name=pct` pairs from the command line (`--threshold e2e_p95_ms=10`).
    pub fn apply_flags(&mut self, flags: &[String]) -> Result<(), ScoreError> {
        for f in flags {
            let (name, v) = f.split_once('=').ok_or_else(|| {
                ScoreError::Usage(format!("--threshold `{f}`: write METRIC=PERCENT, e.g. e2e_p95_ms=10"))
            })?;
            let metric = Metric::parse(name.trim()).map_err(|m| ScoreError::Usage(format!("--threshold: {m}")))?;
            let pct: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|p: &f64| p.is_finite() && *p >= 0.0)
                .ok_or_else(|| ScoreError::Usage(format!("--threshold `{f}`: the percentage must be a number >= 0")))?;
            self.per_metric.insert(metric, pct);
        }
        Ok(())
    }
}
