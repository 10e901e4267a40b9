//! Carbon in the run directory: the one set of carbon assumptions a run resolves and records
//! (run.json `carbon`), and the per-cell carbon figures of summary.json.
//!
//! One model serves the run and the scorecards. The run resolves every assumption once —
//! a key set explicitly in the site file (`--site`) wins, then the suite's `[carbon]`, then
//! the documented default — and records the result with the source of each value. Scoring
//! uses what the run recorded; a site file given to `oae score` overrides only the keys it
//! sets, and the scorecards say so.

use serde::{Deserialize, Serialize};

/// The grid carbon intensity a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// gCO2e/kWh: the value, or for an hourly series its mean over the whole series (the
    /// figure scoring uses for a horizon; each cell records its own window's mean).
    pub g_per_kwh: f64,
    /// Where it comes from, in words.
    pub source: String,
    /// Data year of a table value.
    #[serde(deserialize_with = "super::present")]
    pub year: Option<u32>,
    /// The hourly series file, when the run used one.
    #[serde(deserialize_with = "super::present")]
    pub series: Option<String>,
    /// Anything the reader should know (world fallback).
    #[serde(deserialize_with = "super::present")]
    pub note: Option<String>,
}

/// Power usage effectiveness of the facility.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pue {
    /// Facility energy / IT energy (≥ 1).
    pub value: f64,
    /// Where it comes from.
    pub source: String,
    /// Whether it is oae's documented default.
    pub default: bool,
}

/// The embodied carbon charged for the reserved hardware.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embodied {
    /// kgCO2e of the reserved hardware (one device of the class the run measured).
    pub kg: f64,
    /// Amortization period, years.
    pub lifetime_years: f64,
    /// What was counted, e.g. `node × 2/96 vCPUs`, `gpu:0`.
    pub parts: Vec<String>,
    /// Where the figures come from.
    pub source: String,
}

impl Embodied {
    /// Amortization rate, gCO2e per reserved second.
    pub fn g_per_s(&self) -> f64 {
        self.kg * 1000.0 / (self.lifetime_years * 365.25 * 86_400.0)
    }
}

/// run.json `carbon`: every carbon assumption of the run, resolved once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarbonAssumptions {
    /// Grid intensity.
    pub grid: Grid,
    /// Facility PUE.
    pub pue: Pue,
    /// Embodied carbon of the reserved hardware.
    pub embodied: Embodied,
    /// Which source wins when several set a value.
    pub precedence: String,
}

/// The precedence rule, as recorded.
pub const PRECEDENCE: &str = "site file (--site) key > suite [carbon] key > documented default";

/// Carbon keys a site file sets explicitly: they win over the suite's `[carbon]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CarbonOverrides {
    /// The site file, for provenance.
    pub file: String,
    /// `grid_g_per_kwh`.
    pub grid_g_per_kwh: Option<f64>,
    /// `pue`.
    pub pue: Option<f64>,
    /// `[device] embodied_kg`.
    pub embodied_kg: Option<f64>,
    /// `[device] lifetime_years`.
    pub lifetime_years: Option<f64>,
}

impl CarbonOverrides {
    /// Whether the site file sets any carbon key.
    pub fn any(&self) -> bool {
        self.grid_g_per_kwh.is_some()
            || self.pue.is_some()
            || self.embodied_kg.is_some()
            || self.lifetime_years.is_some()
    }

    /// `assumptions` with every key this site file sets replacing the recorded one.
    pub fn apply(&self, assumptions: &CarbonAssumptions) -> CarbonAssumptions {
        let mut a = assumptions.clone();
        let from = |key: &str| format!("site file {} ({key})", self.file);
        if let Some(v) = self.grid_g_per_kwh {
            a.grid = Grid {
                g_per_kwh: v,
                source: from("grid_g_per_kwh"),
                year: None,
                series: None,
                note: None,
            };
        }
        if let Some(v) = self.pue {
            a.pue = Pue {
                value: v,
                source: from("pue"),
                default: false,
            };
        }
        if let Some(kg) = self.embodied_kg {
            a.embodied.kg = kg;
            a.embodied.parts = vec![from("device.embodied_kg")];
            a.embodied.source = "user".into();
        }
        if let Some(years) = self.lifetime_years {
            a.embodied.lifetime_years = years;
        }
        a
    }
}

/// gCO2e per request, split by where the energy went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breakdown {
    /// From dynamic energy (above idle); `None` without an idle baseline.
    #[serde(deserialize_with = "super::present")]
    pub dynamic_g: Option<f64>,
    /// From idle energy (idle share while busy + share of the gap bucket); `None` without a
    /// baseline.
    #[serde(deserialize_with = "super::present")]
    pub idle_g: Option<f64>,
    /// Operational total (dynamic + idle), from the amortized energy.
    pub operational_g: f64,
    /// Embodied share.
    pub embodied_g: f64,
    /// Operational + embodied.
    pub total_g: f64,
}

/// The carbon figures of one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarbonSummary {
    /// Grid intensity used, gCO2e/kWh.
    pub intensity_g_per_kwh: f64,
    /// Where it comes from.
    pub intensity_source: String,
    /// Data year of a table value.
    #[serde(deserialize_with = "super::present")]
    pub intensity_year: Option<u32>,
    /// Anything the reader should know (world fallback, extrapolated series).
    #[serde(deserialize_with = "super::present")]
    pub intensity_note: Option<String>,
    /// Facility PUE.
    pub pue_facility: f64,
    /// Whether the PUE is oae's documented default.
    pub pue_default: bool,
    /// Mean per measured request, device level (PUE 1).
    pub per_request_device: Breakdown,
    /// Mean per measured request, facility level.
    pub per_request_facility: Breakdown,
    /// Facility-level total per 1,000 requests, g.
    pub per_1k_requests_facility_g: f64,
    /// Embodied carbon of the reserved hardware and how it was amortized.
    pub embodied: Embodied,
    /// Reserved wall time charged to this cell, s (replay window + idle skipped by compression).
    pub reserved_s: f64,
    /// Requests the figures are averaged over.
    pub requests: usize,
    /// Always true: embodied carbon is an estimate; operational carbon inherits the energy's flag.
    pub estimated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> CarbonAssumptions {
        CarbonAssumptions {
            grid: Grid {
                g_per_kwh: 350.0,
                source: "suite [carbon] region".into(),
                year: Some(2023),
                series: None,
                note: None,
            },
            pue: Pue {
                value: 1.56,
                source: "default".into(),
                default: true,
            },
            embodied: Embodied {
                kg: 52.1,
                lifetime_years: 6.0,
                parts: vec!["node".into()],
                source: "table".into(),
            },
            precedence: PRECEDENCE.into(),
        }
    }

    #[test]
    fn a_site_file_replaces_only_the_keys_it_sets() {
        let o = CarbonOverrides {
            file: "site.toml".into(),
            pue: Some(1.2),
            ..CarbonOverrides::default()
        };
        assert!(o.any());
        let a = o.apply(&recorded());
        assert_eq!(a.pue.value, 1.2);
        assert!(a.pue.source.contains("site.toml") && !a.pue.default);
        assert_eq!(a.grid, recorded().grid, "the grid the run recorded stays");
        assert_eq!(a.embodied, recorded().embodied);
        assert!(!CarbonOverrides::default().any());
        assert_eq!(CarbonOverrides::default().apply(&recorded()), recorded());
    }

    #[test]
    fn six_years_of_a_node_is_13_mg_per_second() {
        let e = Embodied {
            kg: 2500.0,
            lifetime_years: 6.0,
            parts: vec![],
            source: String::new(),
        };
        assert!((e.g_per_s() - 0.0132).abs() < 1e-4, "{}", e.g_per_s());
    }
}
