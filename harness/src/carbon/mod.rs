//! Carbon: `gCO2e_r = kWh_r × PUE × CI + embodied_r`, per request, with its provenance.
//!
//! - **CI** (grid intensity): an hourly series from `[carbon] intensity_csv`, else a value
//!   from `intensity_g_per_kwh`, else the bundled country table for `region`
//!   ([`grid`]), else the world average — each recorded with its source and year.
//! - **PUE**: every figure is given at device level (PUE 1) and at facility level
//!   (`[carbon] pue`, default [`DEFAULT_PUE`]).
//! - **Embodied**: manufacturing emissions of the reserved hardware ([`embodied`]), amortized
//!   over *reserved* wall time (an idle reserved machine still uses up its embodied carbon),
//!   always flagged `estimated`.
//!
//! The suite's `[carbon]` and a site file's carbon keys resolve, once per run, to one set of
//! assumptions ([`CarbonConfig::resolve`] → `oae_core::rundir::CarbonAssumptions`, recorded in
//! run.json): a key the site file sets wins, then the suite's, then the default. The run's
//! per-request carbon and the scorecards both use that set.
//!
//! ```toml
//! [carbon]
//! region = "DEU"                 # ISO 3166-1 alpha-3 or country name; default: world average
//! intensity_g_per_kwh = 350      # overrides the region's table value
//! intensity_csv = "grid.csv"     # hourly series (timestamp_utc,g_co2e_per_kwh); overrides both
//! pue = 1.3                      # facility PUE (default 1.56)
//! embodied_kg = 1200             # overrides the table for the reserved hardware
//! lifetime_years = 5             # default 6
//! host_vcpus = 96                # a VM's host size: the VM is charged vCPUs / host_vcpus of a node
//! ```

pub mod embodied;
pub mod grid;
pub mod series;

use serde::Deserialize;
use toml::Spanned;

use oae_core::ConfigError;
use oae_core::config::SourceFile;
use oae_core::rundir::carbon::{Breakdown, CarbonAssumptions, CarbonOverrides, Grid, PRECEDENCE, Pue};
use oae_core::rundir::{CarbonSummary, Embodied};

pub use embodied::Hardware;
pub use grid::GridRow;
pub use series::Series;

/// Facility PUE used when the suite sets none: the industry-average annual PUE of the
/// Uptime Institute Global Data Center Survey 2024 (1.56).
pub const DEFAULT_PUE: f64 = 1.56;

/// The `[carbon]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarbonSection {
    region: Option<Spanned<String>>,
    intensity_g_per_kwh: Option<Spanned<f64>>,
    intensity_csv: Option<Spanned<String>>,
    pue: Option<Spanned<f64>>,
    embodied_kg: Option<Spanned<f64>>,
    lifetime_years: Option<Spanned<f64>>,
    host_vcpus: Option<Spanned<i64>>,
}

/// Where the grid intensity comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Intensity {
    /// A row of the bundled table.
    Table(&'static GridRow),
    /// No region given: the world average.
    World,
    /// A value the user gave, gCO2e/kWh.
    User(f64),
    /// A time series the user gave.
    Series(Series),
}

/// Validated carbon settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CarbonConfig {
    /// Grid intensity.
    pub intensity: Intensity,
    /// Facility PUE.
    pub pue: f64,
    /// Whether `pue` is the documented default.
    pub pue_default: bool,
    /// Embodied-carbon overrides.
    pub embodied: embodied::Overrides,
}

impl Default for CarbonConfig {
    fn default() -> Self {
        CarbonConfig {
            intensity: Intensity::World,
            pue: DEFAULT_PUE,
            pue_default: true,
            embodied: embodied::Overrides::default(),
        }
    }
}

impl CarbonConfig {
    /// Validates the section; relative paths are relative to the suite file.
    pub fn from_section(source: &SourceFile, s: CarbonSection) -> Result<CarbonConfig, ConfigError> {
        let positive =
            |v: &Option<Spanned<f64>>, key: &str, what: &str, zero_ok: bool| -> Result<Option<f64>, ConfigError> {
                match v {
                    None => Ok(None),
                    Some(x) if x.get_ref().is_finite() && (*x.get_ref() > 0.0 || (zero_ok && *x.get_ref() == 0.0)) => {
                        Ok(Some(*x.get_ref()))
                    }
                    Some(x) => Err(source.error_at(
                        x.span().start,
                        &format!("carbon.{key}"),
                        format!("must be {what}, got {}", x.get_ref()),
                    )),
                }
            };
        let user = positive(
            &s.intensity_g_per_kwh,
            "intensity_g_per_kwh",
            "a carbon intensity in gCO2e/kWh >= 0",
            true,
        )?;
        let pue = match &s.pue {
            Some(p) if p.get_ref().is_finite() && *p.get_ref() >= 1.0 => Some(*p.get_ref()),
            Some(p) => {
                return Err(source.error_at(
                    p.span().start,
                    "carbon.pue",
                    format!(
                        "must be >= 1 (facility energy / IT energy; 1.0 = no overhead), got {}",
                        p.get_ref()
                    ),
                ));
            }
            None => None,
        };
        let region = match &s.region {
            None => None,
            Some(r) => {
                Some(grid::lookup(r.get_ref()).map_err(|e| source.error_at(r.span().start, "carbon.region", e))?)
            }
        };
        if let (Some(a), Some(_)) = (&s.intensity_csv, &s.intensity_g_per_kwh) {
            return Err(source.error_at(
                a.span().start,
                "carbon.intensity_csv",
                "set either `intensity_csv` or `intensity_g_per_kwh`, not both",
            ));
        }
        let intensity = if let Some(csv) = &s.intensity_csv {
            let path = source.resolve(csv.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                source.error_at(
                    csv.span().start,
                    "carbon.intensity_csv",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let series = Series::parse(&path.display().to_string(), &text)
                .map_err(|e| source.error_at(csv.span().start, "carbon.intensity_csv", e))?;
            Intensity::Series(series)
        } else if let Some(v) = user {
            Intensity::User(v)
        } else if let Some(r) = region {
            Intensity::Table(r)
        } else {
            Intensity::World
        };
        let host_vcpus = match &s.host_vcpus {
            None => None,
            Some(h) if (1..=100_000).contains(h.get_ref()) => Some(*h.get_ref() as u32),
            Some(h) => {
                return Err(source.error_at(
                    h.span().start,
                    "carbon.host_vcpus",
                    format!("must be a whole number of vCPUs >= 1, got {}", h.get_ref()),
                ));
            }
        };
        Ok(CarbonConfig {
            intensity,
            pue: pue.unwrap_or(DEFAULT_PUE),
            pue_default: pue.is_none(),
            embodied: embodied::Overrides {
                kg: positive(&s.embodied_kg, "embodied_kg", "a mass in kgCO2e > 0", false)?,
                lifetime_years: positive(&s.lifetime_years, "lifetime_years", "a number of years > 0", false)?,
                host_vcpus,
            },
        })
    }

    /// Resolves every carbon assumption of the run: a key `site` sets wins, then this
    /// suite's `[carbon]`, then the documented default.
    pub fn resolve(&self, site: &CarbonOverrides, hardware: &Hardware) -> CarbonModel {
        let suite = CarbonAssumptions {
            grid: self.grid(),
            pue: Pue {
                value: self.pue,
                source: if self.pue_default {
                    "default: Uptime Institute Global Data Center Survey 2024 average".into()
                } else {
                    "suite [carbon] pue".into()
                },
                default: self.pue_default,
            },
            embodied: embodied::for_hardware(hardware, &self.embodied),
            precedence: PRECEDENCE.into(),
        };
        let assumptions = site.apply(&suite);
        let series = match &self.intensity {
            Intensity::Series(s) if site.grid_g_per_kwh.is_none() => Some(s.clone()),
            _ => None,
        };
        CarbonModel { assumptions, series }
    }

    /// The grid intensity this section gives (a series: its mean over the whole series).
    fn grid(&self) -> Grid {
        let (g_per_kwh, source, year, series, note) = match &self.intensity {
            Intensity::Table(r) => (
                r.g_per_kwh,
                format!("{} ({}), {}", r.code, r.name, grid::SOURCE),
                Some(r.year),
                None,
                None,
            ),
            Intensity::World => (
                grid::WORLD_G_PER_KWH,
                format!("world average (generation-weighted), {}", grid::SOURCE),
                None,
                None,
                Some("no [carbon] region set: world average used; set `region` for your grid".to_string()),
            ),
            Intensity::User(v) => (
                *v,
                "user value ([carbon] intensity_g_per_kwh)".to_string(),
                None,
                None,
                None,
            ),
            Intensity::Series(s) => (
                s.mean(),
                format!("time-weighted mean of {} over the whole series", s.file),
                None,
                Some(s.file.clone()),
                None,
            ),
        };
        Grid {
            g_per_kwh,
            source,
            year,
            series,
            note,
        }
    }
}

/// The run's carbon model: the resolved assumptions, and the hourly series behind the grid
/// intensity when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct CarbonModel {
    /// What run.json records and scoring uses.
    pub assumptions: CarbonAssumptions,
    series: Option<Series>,
}

/// The grid intensity one cell used.
#[derive(Debug, Clone, PartialEq)]
pub struct CellIntensity {
    /// gCO2e/kWh.
    pub g_per_kwh: f64,
    /// Where it comes from.
    pub source: String,
    /// Data year of a table value.
    pub year: Option<u32>,
    /// Anything the reader should know.
    pub note: Option<String>,
}

impl CarbonModel {
    /// A model of fixed assumptions (no series).
    pub fn fixed(assumptions: CarbonAssumptions) -> CarbonModel {
        CarbonModel {
            assumptions,
            series: None,
        }
    }

    /// Intensity over a UTC window (Unix seconds): an hourly series' time-weighted mean over
    /// the window, otherwise the run's one value.
    pub fn intensity_over(&self, from_unix: f64, to_unix: f64) -> CellIntensity {
        let g = &self.assumptions.grid;
        match &self.series {
            Some(s) => {
                let (v, outside) = s.mean_over(from_unix, to_unix);
                CellIntensity {
                    g_per_kwh: v,
                    source: format!("time-weighted mean of {} over the replay", s.file),
                    year: None,
                    note: outside
                        .then(|| "the replay reaches outside the series; its nearest value was extended".into()),
                }
            }
            None => CellIntensity {
                g_per_kwh: g.g_per_kwh,
                source: g.source.clone(),
                year: g.year,
                note: g.note.clone(),
            },
        }
    }
}

/// Per-request energy of a cell's measured, served requests, J.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestEnergy {
    /// Dynamic share, when an idle baseline exists.
    pub dyn_j: Option<f64>,
    /// Amortized energy (active + gap share).
    pub amortized_j: f64,
}

/// Carbon of one replay: every served record (one with amortized energy) gets its
/// facility-level `co2e_g`; the cell's summary is returned. `from_unix`/`to_unix` is the
/// replay's wall-clock window (for an hourly grid series), `reserved_s` the reserved time
/// charged to it.
pub fn attach_to_cell(
    model: &CarbonModel,
    records: &mut [crate::RequestRecord],
    (from_unix, to_unix): (f64, f64),
    reserved_s: f64,
) -> CarbonSummary {
    let served: Vec<usize> = (0..records.len())
        .filter(|&i| records[i].energy_amortized_j.is_some())
        .collect();
    let energies: Vec<RequestEnergy> = served
        .iter()
        .map(|&i| RequestEnergy {
            dyn_j: records[i].energy_dyn_j,
            amortized_j: records[i].energy_amortized_j.unwrap_or(0.0),
        })
        .collect();
    let (summary, per) = cell_carbon(model, model.intensity_over(from_unix, to_unix), &energies, reserved_s);
    for (&i, g) in served.iter().zip(per) {
        records[i].co2e_g = Some(g);
    }
    summary
}

/// The carbon of a cell's trials pooled: per-request figures averaged over every request
/// (weighted by each trial's requests), reserved time summed, the intensity weighted by
/// reserved time. One trial: its own summary, unchanged. `None` for no trials.
pub fn pool(parts: Vec<CarbonSummary>) -> Option<CarbonSummary> {
    if parts.len() <= 1 {
        return parts.into_iter().next();
    }
    let n: usize = parts.iter().map(|p| p.requests).sum();
    let reserved: f64 = parts.iter().map(|p| p.reserved_s).sum();
    let by_requests = |f: &dyn Fn(&CarbonSummary) -> f64| {
        if n == 0 {
            0.0
        } else {
            parts.iter().map(|p| f(p) * p.requests as f64).sum::<f64>() / n as f64
        }
    };
    let by_requests_opt = |f: &dyn Fn(&CarbonSummary) -> Option<f64>| {
        parts
            .iter()
            .map(|p| f(p).map(|v| v * p.requests as f64))
            .sum::<Option<f64>>()
            .map(|s| if n == 0 { 0.0 } else { s / n as f64 })
    };
    let breakdown = |side: fn(&CarbonSummary) -> &Breakdown| Breakdown {
        dynamic_g: by_requests_opt(&|p| side(p).dynamic_g),
        idle_g: by_requests_opt(&|p| side(p).idle_g),
        operational_g: by_requests(&|p| side(p).operational_g),
        embodied_g: by_requests(&|p| side(p).embodied_g),
        total_g: by_requests(&|p| side(p).total_g),
    };
    let first = &parts[0];
    let same_source = parts.iter().all(|p| p.intensity_source == first.intensity_source);
    let facility = breakdown(|p| &p.per_request_facility);
    Some(CarbonSummary {
        intensity_g_per_kwh: if reserved > 0.0 {
            parts.iter().map(|p| p.intensity_g_per_kwh * p.reserved_s).sum::<f64>() / reserved
        } else {
            first.intensity_g_per_kwh
        },
        intensity_source: if same_source {
            first.intensity_source.clone()
        } else {
            format!("reserved-time-weighted mean over {} replays", parts.len())
        },
        intensity_year: first.intensity_year,
        intensity_note: first.intensity_note.clone(),
        pue_facility: first.pue_facility,
        pue_default: first.pue_default,
        per_request_device: breakdown(|p| &p.per_request_device),
        per_1k_requests_facility_g: facility.total_g * 1000.0,
        per_request_facility: facility,
        embodied: first.embodied.clone(),
        reserved_s: reserved,
        requests: n,
        estimated: true,
    })
}

/// J to kWh.
pub fn kwh(j: f64) -> f64 {
    j / 3.6e6
}

/// Carbon of a cell: `requests` are its measured served requests, `reserved_s` the reserved
/// wall time charged to it (shared equally, like the gap bucket), `intensity` gCO2e/kWh.
/// Returns the summary and, per request, its facility-level total gCO2e.
pub fn cell_carbon(
    model: &CarbonModel,
    intensity: CellIntensity,
    requests: &[RequestEnergy],
    reserved_s: f64,
) -> (CarbonSummary, Vec<f64>) {
    let CellIntensity {
        g_per_kwh: ci,
        source,
        year,
        note,
    } = intensity;
    let pue = model.assumptions.pue.value;
    let embodied: &Embodied = &model.assumptions.embodied;
    let n = requests.len();
    let embodied_share = if n > 0 {
        embodied.g_per_s() * reserved_s / n as f64
    } else {
        0.0
    };
    let per_request: Vec<f64> = requests
        .iter()
        .map(|r| kwh(r.amortized_j) * pue * ci + embodied_share)
        .collect();
    let mean = |f: &dyn Fn(&RequestEnergy) -> Option<f64>| -> Option<f64> {
        if n == 0 {
            return None;
        }
        requests.iter().map(f).sum::<Option<f64>>().map(|s| s / n as f64)
    };
    let dyn_j = mean(&|r| r.dyn_j);
    let amort_j = mean(&|r| Some(r.amortized_j)).unwrap_or(0.0);
    let breakdown = |pue: f64| {
        let op = kwh(amort_j) * pue * ci;
        let dynamic = dyn_j.map(|d| kwh(d) * pue * ci);
        Breakdown {
            dynamic_g: dynamic,
            idle_g: dynamic.map(|d| op - d),
            operational_g: op,
            embodied_g: embodied_share,
            total_g: op + embodied_share,
        }
    };
    let facility = breakdown(pue);
    (
        CarbonSummary {
            intensity_g_per_kwh: ci,
            intensity_source: source,
            intensity_year: year,
            intensity_note: note,
            pue_facility: pue,
            pue_default: model.assumptions.pue.default,
            per_request_device: breakdown(1.0),
            per_request_facility: facility,
            per_1k_requests_facility_g: facility.total_g * 1000.0,
            embodied: embodied.clone(),
            reserved_s,
            requests: n,
            estimated: true,
        },
        per_request,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        carbon: CarbonSection,
    }

    fn config(label: &str, text: &str) -> Result<CarbonConfig, String> {
        let src = SourceFile::new(label, text);
        let f: File = toml::from_str(text).unwrap();
        CarbonConfig::from_section(&src, f.carbon).map_err(|e| e.to_string())
    }

    /// The worked example of docs/carbon.md, checked by hand:
    /// CI 400 g/kWh, PUE 1.5; two requests with 36 J dynamic of 180 J amortized and 72 J of
    /// 360 J; embodied 625 kg over 6 years; 100 s reserved.
    ///
    /// - mean dynamic 54 J = 1.5e-5 kWh → 0.006 g at the device, 0.009 g at the facility;
    /// - mean amortized 270 J = 7.5e-5 kWh → 0.030 g device, 0.045 g facility; idle = the rest
    ///   (0.024 g device, 0.036 g facility);
    /// - embodied 625,000 g / 189,345,600 s = 3.3008e-3 g/s × 100 s / 2 requests = 0.16504 g;
    /// - facility total per request 0.045 + 0.16504 = 0.21004 g → 210.04 g per 1k requests;
    /// - request 1: 180 J = 5e-5 kWh × 1.5 × 400 = 0.03 g + 0.16504 g = 0.19504 g.
    #[test]
    fn worked_example_checked_by_hand() {
        let model = CarbonModel::fixed(CarbonAssumptions {
            grid: Grid {
                g_per_kwh: 400.0,
                source: "user".into(),
                year: None,
                series: None,
                note: None,
            },
            pue: Pue {
                value: 1.5,
                source: "suite".into(),
                default: false,
            },
            embodied: Embodied {
                kg: 625.0,
                lifetime_years: 6.0,
                parts: vec![],
                source: String::new(),
            },
            precedence: PRECEDENCE.into(),
        });
        let reqs = [
            RequestEnergy {
                dyn_j: Some(36.0),
                amortized_j: 180.0,
            },
            RequestEnergy {
                dyn_j: Some(72.0),
                amortized_j: 360.0,
            },
        ];
        let (s, per) = cell_carbon(&model, model.intensity_over(0.0, 100.0), &reqs, 100.0);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.abs().max(1e-3);
        assert!(close(s.per_request_device.dynamic_g.unwrap(), 0.006));
        assert!(close(s.per_request_facility.dynamic_g.unwrap(), 0.009));
        assert!(close(s.per_request_device.operational_g, 0.030));
        assert!(close(s.per_request_facility.idle_g.unwrap(), 0.036));
        let emb_g = 625_000.0 / 189_345_600.0 * 100.0 / 2.0;
        assert!(close(s.per_request_facility.embodied_g, emb_g));
        assert!((emb_g - 0.16504).abs() < 1e-5);
        assert!(close(s.per_1k_requests_facility_g, (0.045 + emb_g) * 1000.0));
        assert!(close(per[0], 0.03 + emb_g));
        assert!(s.estimated);
    }

    fn hardware() -> Hardware {
        Hardware {
            vcpus: 2,
            virtual_machine: false,
            gpus: vec![],
        }
    }

    #[test]
    fn one_set_of_assumptions_site_keys_win_over_the_suite() {
        let suite = config("suite.toml", "[carbon]\nregion = \"FRA\"\npue = 1.3\n").unwrap();
        let alone = suite.resolve(&CarbonOverrides::default(), &hardware()).assumptions;
        assert!(alone.grid.source.starts_with("FRA") && alone.grid.year.is_some());
        assert_eq!((alone.pue.value, alone.pue.default), (1.3, false));
        assert_eq!(alone.embodied.kg, embodied::NODE_KG, "bare metal: the whole node");
        assert_eq!(alone.precedence, PRECEDENCE);
        let site = CarbonOverrides {
            file: "site.toml".into(),
            grid_g_per_kwh: Some(100.0),
            embodied_kg: Some(40.0),
            ..CarbonOverrides::default()
        };
        let both = suite.resolve(&site, &hardware()).assumptions;
        assert_eq!(both.grid.g_per_kwh, 100.0);
        assert!(both.grid.source.contains("site.toml"), "{}", both.grid.source);
        assert_eq!(
            both.pue.value, 1.3,
            "the suite's PUE stays: the site file does not set one"
        );
        assert_eq!(both.embodied.kg, 40.0);
        let model = suite.resolve(&site, &hardware());
        assert_eq!(
            model.intensity_over(0.0, 10.0).g_per_kwh,
            100.0,
            "cells use the resolved value"
        );
        let defaults = CarbonConfig::default().resolve(&CarbonOverrides::default(), &hardware());
        assert_eq!(defaults.assumptions.grid.g_per_kwh, grid::WORLD_G_PER_KWH);
        assert!(defaults.assumptions.pue.default && defaults.assumptions.pue.value == DEFAULT_PUE);
    }

    #[test]
    fn an_hourly_series_is_used_per_cell_and_its_mean_for_the_horizon() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("grid.csv"),
            "timestamp_utc,g_co2e_per_kwh\n0,100\n3600,300\n",
        )
        .unwrap();
        let suite = dir.path().join("s.toml");
        let c = config(&suite.display().to_string(), "[carbon]\nintensity_csv = \"grid.csv\"\n").unwrap();
        let m = c.resolve(&CarbonOverrides::default(), &hardware());
        assert_eq!(m.assumptions.grid.g_per_kwh, 200.0, "two hours, 100 then 300");
        assert!(m.assumptions.grid.series.is_some());
        assert_eq!(m.intensity_over(0.0, 1800.0).g_per_kwh, 100.0);
        assert_eq!(m.intensity_over(3600.0, 5400.0).g_per_kwh, 300.0);
        let over = CarbonOverrides {
            file: "site.toml".into(),
            grid_g_per_kwh: Some(50.0),
            ..CarbonOverrides::default()
        };
        let m = c.resolve(&over, &hardware());
        assert_eq!(
            m.intensity_over(0.0, 1800.0).g_per_kwh,
            50.0,
            "a site value replaces the series"
        );
    }

    #[test]
    fn pooled_trials_average_per_request_and_add_reserved_time() {
        let model = CarbonModel::fixed(
            CarbonConfig::default()
                .resolve(&CarbonOverrides::default(), &hardware())
                .assumptions,
        );
        let req = |j: f64| RequestEnergy {
            dyn_j: Some(j / 2.0),
            amortized_j: j,
        };
        let (a, _) = cell_carbon(&model, model.intensity_over(0.0, 1.0), &[req(100.0)], 10.0);
        let (b, _) = cell_carbon(
            &model,
            model.intensity_over(0.0, 1.0),
            &[req(400.0), req(400.0), req(400.0)],
            30.0,
        );
        let (all, _) = cell_carbon(
            &model,
            model.intensity_over(0.0, 1.0),
            &[req(100.0), req(400.0), req(400.0), req(400.0)],
            40.0,
        );
        let p = pool(vec![a.clone(), b]).unwrap();
        assert_eq!((p.requests, p.reserved_s), (4, 40.0));
        let close = |x: f64, y: f64| (x - y).abs() < 1e-12 * y.abs().max(1e-9);
        assert!(close(
            p.per_request_facility.operational_g,
            all.per_request_facility.operational_g
        ));
        assert!(close(p.per_request_facility.total_g, all.per_request_facility.total_g));
        assert!(close(
            p.per_request_device.dynamic_g.unwrap(),
            all.per_request_device.dynamic_g.unwrap()
        ));
        assert_eq!(pool(vec![a.clone()]), Some(a), "one trial: unchanged");
        assert_eq!(pool(vec![]), None);
    }

    #[test]
    fn bad_values_are_located_and_explained() {
        let e = config("suite.toml", "[carbon]\nregion = \"Germny\"\n").unwrap_err();
        assert!(
            e.contains("suite.toml:2") && e.contains("carbon.region") && e.contains("DEU (Germany)"),
            "{e}"
        );
        let e = config("suite.toml", "[carbon]\n\npue = 0.8\n").unwrap_err();
        assert!(
            e.contains("suite.toml:3") && e.contains("carbon.pue") && e.contains(">= 1"),
            "{e}"
        );
        let e = config("suite.toml", "[carbon]\nintensity_g_per_kwh = -3\n").unwrap_err();
        assert!(e.contains("carbon.intensity_g_per_kwh"), "{e}");
        let e = config("suite.toml", "[carbon]\nembodied_kg = 0\n").unwrap_err();
        assert!(e.contains("carbon.embodied_kg"), "{e}");
        let ok = config("suite.toml", "[carbon]\nregion = \"fra\"\n").unwrap();
        assert!(matches!(ok.intensity, Intensity::Table(r) if r.code == "FRA"));
        assert!(ok.pue_default && ok.pue == DEFAULT_PUE);
    }

    #[test]
    fn malformed_series_is_reported_with_its_own_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("grid.csv"),
            "timestamp_utc,g_co2e_per_kwh\n2025-01-01T00:00Z,abc\n",
        )
        .unwrap();
        let suite = dir.path().join("s.toml");
        let e = config(&suite.display().to_string(), "[carbon]\nintensity_csv = \"grid.csv\"\n").unwrap_err();
        assert!(e.contains("grid.csv:2: field `g_co2e_per_kwh`"), "{e}");
    }
}
