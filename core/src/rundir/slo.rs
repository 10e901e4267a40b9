//! Service-level objectives and the one rule for a *good* request.
//!
//! The suite's `[slo]` is parsed into [`Slo`], recorded in run.json and in every cell's
//! goodput, and [`Slo::good`] is the only place that decides whether a request counts as
//! good — for goodput in summary.json, SLO attainment in the scorecards and the gate alike.

use serde::{Deserialize, Serialize};

use super::Outcome;
use crate::config::PositiveF64;

/// Service-level objectives: a request is *good* when it succeeded and meets every one set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Time to first token, ms.
    pub ttft_ms: Option<PositiveF64>,
    /// Mean time per output token after the first, ms.
    pub tpot_ms: Option<PositiveF64>,
    /// End to end, ms.
    pub e2e_ms: Option<PositiveF64>,
    /// A right-answer bar: `{ scorer = "f1", min = 0.5 }`. A request is good only when its
    /// answer scored at least `min` — only right answers count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityBar>,
}

/// The quality a request's answer must reach to count as good.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QualityBar {
    /// The scorer whose score is compared (`em`, `f1`, `contains`, `numeric`, `choice`).
    pub scorer: String,
    /// The least score that counts as right, in [0, 1].
    pub min: f64,
}

impl QualityBar {
    /// Whether a request with these scores meets the bar (a request not scored by this
    /// scorer — no answer, no reference — does not).
    pub fn met(&self, scores: &std::collections::BTreeMap<String, f64>) -> bool {
        scores.get(&self.scorer).is_some_and(|&v| v >= self.min)
    }
}

impl Slo {
    /// Whether a request with these figures is within the latency objectives: outcome ok and
    /// within every one set. A one-token answer has no TPOT and cannot violate a per-token
    /// objective. The quality bar is checked by `RequestRecord::good`.
    pub fn good(&self, outcome: Outcome, ttft_ms: Option<f64>, e2e_ms: Option<f64>, tpot_ms: Option<f64>) -> bool {
        let within = |limit: Option<PositiveF64>, v: Option<f64>| limit.is_none_or(|l| v.is_some_and(|v| v <= l.get()));
        outcome == Outcome::Ok
            && within(self.ttft_ms, ttft_ms)
            && within(self.e2e_ms, e2e_ms)
            && (tpot_ms.is_none() || within(self.tpot_ms, tpot_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_bar_needs_a_score_at_least_min() {
        let bar = QualityBar {
            scorer: "f1".into(),
            min: 0.5,
        };
        let scores = |v: f64| std::collections::BTreeMap::from([("f1".to_string(), v)]);
        assert!(bar.met(&scores(0.5)));
        assert!(!bar.met(&scores(0.49)));
        assert!(!bar.met(&std::collections::BTreeMap::new()));
    }

    #[test]
    fn good_needs_ok_and_every_objective() {
        let slo = Slo {
            ttft_ms: Some(PositiveF64(100.0)),
            tpot_ms: Some(PositiveF64(10.0)),
            e2e_ms: Some(PositiveF64(500.0)),
            quality: None,
        };
        assert!(
            slo.good(Outcome::Ok, Some(100.0), Some(500.0), Some(10.0)),
            "limits are inclusive"
        );
        assert!(
            !slo.good(Outcome::Error, Some(1.0), Some(1.0), Some(1.0)),
            "failures are never good"
        );
        assert!(!slo.good(Outcome::Ok, Some(100.1), Some(1.0), Some(1.0)));
        assert!(!slo.good(Outcome::Ok, Some(1.0), Some(500.1), Some(1.0)));
        assert!(!slo.good(Outcome::Ok, Some(1.0), Some(1.0), Some(10.1)));
        assert!(
            !slo.good(Outcome::Ok, None, Some(1.0), Some(1.0)),
            "no TTFT cannot meet a TTFT objective"
        );
        assert!(
            slo.good(Outcome::Ok, Some(1.0), Some(1.0), None),
            "one token: no TPOT to violate"
        );
        assert!(
            Slo::default().good(Outcome::Ok, None, None, None),
            "no objectives: ok is good"
        );
        assert!(!Slo::default().good(Outcome::Timeout, None, None, None));
    }
}
