//! What a suite says about scoring — `[score]` (the baseline) and `[gate]` (regression
//! thresholds) — and each method's declared manifest, as recorded in run.json:
//!
//! ```toml
//! [score]
//! baseline = "dense-greedy"            # label of the baseline method (default: the first dense)
//! [gate]
//! threshold_pct = 5.0                  # allowed worsening of every metric, percent
//! thresholds = { e2e_p95_ms = 10.0, attainment = 2.0 }   # per metric (shares: points)
//! metrics = ["e2e_p95_ms", "ttft_p95_ms", "attainment"]  # gate only these (default: all)
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use oae_core::ConfigError;
use oae_core::config::ConfigTable;
use oae_core::rundir::{GateSettings, ScoringSettings};

use crate::ScoreError;
use crate::manifest::Manifest;
use crate::metric::{Metric, Thresholds};
use crate::rundir::RunData;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreSection {
    baseline: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GateSection {
    threshold_pct: Option<f64>,
    #[serde(default)]
    thresholds: BTreeMap<String, f64>,
    metrics: Option<Vec<String>>,
}

/// Scoring settings of a suite, plus the manifests recorded with a run.
#[derive(Debug, Clone, Default)]
pub struct Scoring {
    /// Baseline label.
    pub baseline: Option<String>,
    /// Gate thresholds.
    pub thresholds: Thresholds,
    /// Declared manifests by method id.
    pub manifests: BTreeMap<String, Manifest>,
    /// Manifests a method composed from its configuration, by label.
    pub label_manifests: BTreeMap<String, Manifest>,
}

fn thresholds_from(section: GateSection, err: impl Fn(&str, String) -> ConfigError) -> Result<Thresholds, ConfigError> {
    let mut t = Thresholds::default();
    if let Some(d) = section.threshold_pct {
        if !(d.is_finite() && d >= 0.0) {
            return Err(err("threshold_pct", format!("must be a percentage >= 0, got {d}")));
        }
        t.default_pct = d;
    }
    for (name, v) in section.thresholds {
        let metric = Metric::parse(&name).map_err(|m| err("thresholds", m))?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(err(
                "thresholds",
                format!("`{name}` must be a percentage >= 0, got {v}"),
            ));
        }
        t.per_metric.insert(metric, v);
    }
    if let Some(names) = section.metrics {
        if names.is_empty() {
            return Err(err("metrics", "lists no metric; remove it to gate every metric".into()));
        }
        t.metrics = names
            .iter()
            .map(|n| Metric::parse(n).map_err(|m| err("metrics", m)))
            .collect::<Result<_, _>>()?;
    }
    Ok(t)
}

impl Scoring {
    /// Checks a suite's `[score]` and `[gate]` tables (errors name the file, line and key).
    pub fn from_suite(score: Option<&ConfigTable>, gate: Option<&ConfigTable>) -> Result<Scoring, ConfigError> {
        let baseline = match score {
            Some(t) => t.decode::<ScoreSection>()?.baseline,
            None => None,
        };
        let thresholds = match gate {
            Some(t) => thresholds_from(t.decode()?, |k, m| t.error(k, m))?,
            None => Thresholds::default(),
        };
        Ok(Scoring {
            baseline,
            thresholds,
            manifests: BTreeMap::new(),
            label_manifests: BTreeMap::new(),
        })
    }

    /// The run.json `scoring` record: these settings, each method's manifest text by id and
    /// the manifests methods composed from their configuration, by label.
    pub fn to_settings(
        &self,
        manifests: &BTreeMap<String, String>,
        label_manifests: &BTreeMap<String, String>,
    ) -> ScoringSettings {
        ScoringSettings {
            baseline: self.baseline.clone(),
            gate: GateSettings {
                threshold_pct: self.thresholds.default_pct,
                thresholds: self
                    .thresholds
                    .per_metric
                    .iter()
                    .map(|(m, v)| (m.name().to_string(), *v))
                    .collect(),
                metrics: self.thresholds.metrics.iter().map(|m| m.name().to_string()).collect(),
            },
            manifests: manifests.clone(),
            label_manifests: label_manifests.clone(),
        }
    }

    /// Reads what a run recorded (nothing, for a run whose caller recorded no scoring).
    pub fn from_run(data: &RunData) -> Result<Scoring, ScoreError> {
        let Some(v) = &data.run.scoring else {
            return Ok(Scoring::default());
        };
        let file = data.dir.join("run.json").display().to_string();
        let gate = GateSection {
            threshold_pct: Some(v.gate.threshold_pct),
            thresholds: v.gate.thresholds.clone(),
            metrics: Some(v.gate.metrics.clone()),
        };
        let thresholds = thresholds_from(gate, |k, m| ConfigError {
            file: file.clone(),
            line: 0,
            key: format!("scoring.gate.{k}"),
            message: m,
        })?;
        let mut manifests = BTreeMap::new();
        for (id, text) in &v.manifests {
            let label = format!("{file} (scoring.manifests.{id})");
            manifests.insert(id.clone(), Manifest::parse(&label, text)?);
        }
        let mut label_manifests = BTreeMap::new();
        for (method, text) in &v.label_manifests {
            let label = format!("{file} (scoring.label_manifests.{method})");
            label_manifests.insert(method.clone(), Manifest::parse(&label, text)?);
        }
        Ok(Scoring {
            baseline: v.baseline.clone(),
            thresholds,
            manifests,
            label_manifests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oae_core::config::{SourceFile, SpannedEntries};

    /// Parses the `[score]` / `[gate]` tables of a suite text as the harness does.
    fn suite(text: &str) -> Result<Scoring, ConfigError> {
        #[derive(Deserialize)]
        struct Doc {
            score: Option<toml::Spanned<SpannedEntries>>,
            gate: Option<toml::Spanned<SpannedEntries>>,
        }
        let source = SourceFile::new("suite.toml", text);
        let doc: Doc = toml::from_str(text).unwrap();
        let table = |key: &str, t: toml::Spanned<SpannedEntries>| {
            ConfigTable::new(source.clone(), key, t.span(), t.into_inner())
        };
        let score = doc.score.map(|t| table("score", t));
        let gate = doc.gate.map(|t| table("gate", t));
        Scoring::from_suite(score.as_ref(), gate.as_ref())
    }

    #[test]
    fn gate_sections_are_checked_with_file_line_and_key() {
        let s = suite("[score]\nbaseline = \"dense\"\n[gate]\nthreshold_pct = 3\nthresholds = { e2e_p95_ms = 10 }\nmetrics = [\"e2e_p95_ms\", \"attainment\"]\n").unwrap();
        assert_eq!(s.baseline.as_deref(), Some("dense"));
        assert_eq!(s.thresholds.of(Metric::E2eP95), 10.0);
        assert_eq!(s.thresholds.of(Metric::TtftP95), 3.0);
        assert_eq!(s.thresholds.metrics, vec![Metric::E2eP95, Metric::Attainment]);
        let e = suite("[gate]\nthresholds = { latency = 10 }\n").unwrap_err();
        assert!(
            e.to_string().contains("suite.toml:2")
                && e.key == "gate.thresholds"
                && e.message.contains("unknown metric `latency`"),
            "{e}"
        );
        let e = suite("[gate]\nthreshold_pct = -1\n").unwrap_err();
        assert!(e.key == "gate.threshold_pct" && e.message.contains(">= 0"), "{e}");
        let e = suite("[gate]\nmetrics = []\n").unwrap_err();
        assert!(e.key == "gate.metrics" && e.message.contains("lists no metric"), "{e}");
        let e = suite("[score]\nbaselin = \"dense\"\n").unwrap_err();
        assert!(
            e.message.contains("unknown field") && e.message.contains("baselin"),
            "{e}"
        );
    }

    #[test]
    fn threshold_flags_parse_and_reject_nonsense() {
        let mut t = Thresholds::default();
        t.apply_flags(&["e2e_p95_ms=12.5".into()]).unwrap();
        assert_eq!(t.of(Metric::E2eP95), 12.5);
        for bad in ["e2e_p95_ms", "e2e_p95_ms=-3", "nope=3"] {
            assert!(t.apply_flags(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
