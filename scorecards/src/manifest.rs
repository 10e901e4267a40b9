//! Adoption-cost manifests: what a method costs people to deploy and keep running.
//!
//! Each method ships `methods/src/<id>/manifest.toml`:
//!
//! ```toml
//! method = "speculative"
//! expertise = "ml-engineer"            # it-generalist | software-engineer | ml-engineer | ml-specialist
//! components = ["draft model", "acceptance monitoring"]
//! tuning_knobs = ["gamma", "draft depth"]
//! evidence = "where the estimate comes from"
//! [engineer_weeks]
//! deploy = [2, 4]                      # a point value or [low, high]
//! maintain_per_year = 2
//! ```

use serde::{Deserialize, Serialize};

use oae_core::ConfigError;
use oae_core::config::ConfigTable;

/// Expertise a method needs, L1..L4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// L1: IT generalist.
    ItGeneralist,
    /// L2: software engineer.
    SoftwareEngineer,
    /// L3: ML engineer.
    MlEngineer,
    /// L4: ML specialist (hyperscale-grade ML systems expertise).
    MlSpecialist,
}

impl Level {
    /// 1..=4.
    pub fn number(self) -> u8 {
        self as u8 + 1
    }

    /// The name used in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Level::ItGeneralist => "it-generalist",
            Level::SoftwareEngineer => "software-engineer",
            Level::MlEngineer => "ml-engineer",
            Level::MlSpecialist => "ml-specialist",
        }
    }
}

/// Engineer-weeks: a point value or a `[low, high]` range.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Weeks {
    /// One value.
    Point(f64),
    /// An interval.
    Range([f64; 2]),
}

impl Weeks {
    /// Lower end.
    pub fn low(self) -> f64 {
        match self {
            Weeks::Point(v) => v,
            Weeks::Range([l, _]) => l,
        }
    }
    /// Upper end.
    pub fn high(self) -> f64 {
        match self {
            Weeks::Point(v) => v,
            Weeks::Range([_, h]) => h,
        }
    }
    /// Midpoint (the central estimate).
    pub fn mid(self) -> f64 {
        (self.low() + self.high()) / 2.0
    }
    fn check(self) -> Result<(), String> {
        let (l, h) = (self.low(), self.high());
        if !(l.is_finite() && h.is_finite()) || l < 0.0 {
            return Err(format!("engineer-weeks must be finite and >= 0, got {l}..{h}"));
        }
        if l > h {
            return Err(format!("range [{l}, {h}] is reversed; write [low, high]"));
        }
        Ok(())
    }
}

/// Declared engineer-weeks.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineerWeeks {
    /// To deploy once.
    pub deploy: Weeks,
    /// To keep running, per year.
    pub maintain_per_year: Weeks,
}

/// A method's declared adoption cost.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The method id it describes.
    pub method: String,
    /// Engineer-weeks.
    pub engineer_weeks: EngineerWeeks,
    /// Expertise level.
    pub expertise: Level,
    /// Moving parts to operate.
    pub components: Vec<String>,
    /// What must be tuned and re-tuned.
    pub tuning_knobs: Vec<String>,
    /// Where the estimate comes from.
    pub evidence: String,
}

impl Manifest {
    /// Parses and checks a manifest; errors name the file, line and field.
    pub fn parse(label: &str, text: &str) -> Result<Manifest, ConfigError> {
        let table = ConfigTable::parse(label, text)?;
        let m: Manifest = table.decode()?;
        for (key, w) in [
            ("deploy", m.engineer_weeks.deploy),
            ("maintain_per_year", m.engineer_weeks.maintain_per_year),
        ] {
            w.check().map_err(|message| ConfigError {
                file: label.to_string(),
                line: line_of_key(text, key),
                key: format!("engineer_weeks.{key}"),
                message,
            })?;
        }
        if m.evidence.trim().is_empty() {
            return Err(table.error("evidence", "say where the estimate comes from"));
        }
        Ok(m)
    }

    /// Labour hours-equivalent in engineer-weeks over `horizon_years`, at (low, mid, high).
    pub fn weeks_over(&self, horizon_years: f64) -> (f64, f64, f64) {
        let e = &self.engineer_weeks;
        (
            e.deploy.low() + e.maintain_per_year.low() * horizon_years,
            e.deploy.mid() + e.maintain_per_year.mid() * horizon_years,
            e.deploy.high() + e.maintain_per_year.high() * horizon_years,
        )
    }
}

/// 1-based line where `key = …` is written (0 when not found).
fn line_of_key(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"method = "dense"
expertise = "software-engineer"
components = ["model server"]
tuning_knobs = []
evidence = "a guess for the test"
[engineer_weeks]
deploy = [1, 2]
maintain_per_year = 0.5
"#;

    #[test]
    fn parses_points_and_ranges() {
        let m = Manifest::parse("m.toml", GOOD).unwrap();
        assert_eq!(m.expertise, Level::SoftwareEngineer);
        assert_eq!(m.engineer_weeks.deploy, Weeks::Range([1.0, 2.0]));
        assert_eq!(m.weeks_over(2.0), (2.0, 2.5, 3.0));
    }

    #[test]
    fn bad_manifests_name_file_line_and_field() {
        let err = |t: &str| Manifest::parse("m.toml", t).unwrap_err().to_string();
        let e = err(&GOOD.replace("evidence = \"a guess for the test\"\n", ""));
        assert!(
            e.contains("m.toml") && e.contains("evidence") && e.contains("missing"),
            "{e}"
        );
        let e = err(&GOOD.replace("software-engineer", "wizard"));
        assert!(
            e.contains("m.toml:2") && e.contains("expertise") && e.contains("wizard"),
            "{e}"
        );
        let e = err(&GOOD.replace("deploy = [1, 2]", "deploy = -3"));
        assert!(
            e.contains("m.toml:7") && e.contains("engineer_weeks.deploy") && e.contains(">= 0"),
            "{e}"
        );
        let e = err(&GOOD.replace("deploy = [1, 2]", "deploy = [4, 2]"));
        assert!(e.contains("reversed"), "{e}");
    }
}
