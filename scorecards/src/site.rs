//! Site assumptions: what a deployment pays for hardware, energy, carbon and people.
//!
//! Every default below has its source; a site file (`oae score --site site.toml`) overrides
//! any of them. The carbon keys — `pue`, `grid_g_per_kwh`, `[device] embodied_kg` and
//! `lifetime_years` — are part of the run's one set of carbon assumptions
//! (`oae_core::rundir::carbon`): scoring takes them from what the run recorded, and a site
//! file replaces only those it sets ([`Site::carbon_keys`]); the defaults here are for
//! computing with a site alone.
//!
//! ```toml
//! horizon_years = 1.0
//! rho_max = 0.7
//! energy_usd_per_kwh = 0.127
//! pue = 1.56
//! grid_g_per_kwh = 480.6
//! carbon_usd_per_tonne = 0.0
//! [device]
//! name = "cpu-vm-2vcpu"
//! memory_gb = 8.0
//! usd_per_hour = 0.1008
//! embodied_kg = 52.1
//! lifetime_years = 6.0
//! [labor_usd_per_week]
//! it-generalist = 1682
//! software-engineer = 3630
//! ml-engineer = 4257
//! ml-specialist = 8513
//! ```

use serde::{Deserialize, Serialize};

use oae_core::ConfigError;
use oae_core::config::ConfigTable;
use oae_core::rundir::carbon::CarbonOverrides;

use crate::manifest::Level;

/// The hardware a method is deployed on (one device class).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Device {
    /// Short name.
    pub name: String,
    /// Memory one device offers, GB (10^9 bytes).
    pub memory_gb: f64,
    /// Amortised or rented cost per device-hour, USD.
    pub usd_per_hour: f64,
    /// Embodied carbon of one device, kgCO2e.
    pub embodied_kg: f64,
    /// Lifetime over which embodied carbon is spread, years.
    pub lifetime_years: f64,
}

impl Default for Device {
    fn default() -> Self {
        Self {
            name: "cpu-vm-2vcpu".into(),
            memory_gb: 8.0,
            usd_per_hour: 0.1008,
            embodied_kg: 2500.0 * 2.0 / 96.0,
            lifetime_years: 6.0,
        }
    }
}

/// Weekly cost of an engineer at each expertise level, USD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Labor {
    /// L1.
    pub it_generalist: f64,
    /// L2.
    pub software_engineer: f64,
    /// L3.
    pub ml_engineer: f64,
    /// L4.
    pub ml_specialist: f64,
}

/// Employer cost per dollar of wages: wages are ~70.4 % of compensation (BLS Employer Costs
/// for Employee Compensation, private industry, 2023), so 1 / 0.704.
pub const LOADED_FACTOR: f64 = 1.0 / 0.704;

impl Default for Labor {
    fn default() -> Self {
        // BLS OEWS May 2022 national annual mean wages (news release USDL-23-0778):
        // computer user support specialists $61,580; software developers $132,930;
        // computer and information research scientists $155,880. L4 (hyperscale ML
        // systems) has no BLS series: assumed twice L3 — an assumption, override it.
        let week = |annual: f64| (annual * LOADED_FACTOR / 52.0).round();
        Self {
            it_generalist: week(61_580.0),
            software_engineer: week(132_930.0),
            ml_engineer: week(155_880.0),
            ml_specialist: week(2.0 * 155_880.0),
        }
    }
}

impl Labor {
    /// USD per engineer-week at `level`.
    pub fn rate(&self, level: Level) -> f64 {
        match level {
            Level::ItGeneralist => self.it_generalist,
            Level::SoftwareEngineer => self.software_engineer,
            Level::MlEngineer => self.ml_engineer,
            Level::MlSpecialist => self.ml_specialist,
        }
    }
}

/// A deployment's prices, grid and hardware.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Site {
    /// Horizon H, years.
    pub horizon_years: f64,
    /// Utilisation cap ρ_max: devices are added before utilisation passes it.
    pub rho_max: f64,
    /// Energy price, USD/kWh.
    pub energy_usd_per_kwh: f64,
    /// Power usage effectiveness of the facility.
    pub pue: f64,
    /// Grid carbon intensity, gCO2e/kWh.
    pub grid_g_per_kwh: f64,
    /// Carbon price, USD per tonne CO2e.
    pub carbon_usd_per_tonne: f64,
    /// The device class.
    pub device: Device,
    /// Labour rates.
    pub labor_usd_per_week: Labor,
}

impl Default for Site {
    fn default() -> Self {
        Self {
            // docs/scoring.md.
            horizon_years: 1.0,
            rho_max: 0.7,
            // US commercial-sector average retail price 2023 ≈ 12.7 ¢/kWh (EIA Electric
            // Power Monthly, table 5.3).
            energy_usd_per_kwh: 0.127,
            // Uptime Institute Global Data Center Survey 2024: average PUE 1.56.
            pue: 1.56,
            // Generation-weighted world average (the carbon module's table, OWID/Ember).
            grid_g_per_kwh: 480.6,
            carbon_usd_per_tonne: 0.0,
            // A 2-vCPU / 8 GiB cloud VM: AWS m7i.large on-demand, us-east-1, $0.1008/h;
            // embodied 2,500 kgCO2e per server node (Luccioni et al., JMLR 2023) × 2 of 96 vCPUs.
            device: Device::default(),
            labor_usd_per_week: Labor::default(),
        }
    }
}

impl Site {
    /// Reads a site file; errors name the file, line and key.
    pub fn parse(label: &str, text: &str) -> Result<Site, ConfigError> {
        let table = ConfigTable::parse(label, text)?;
        let site: Site = table.decode()?;
        let positive = [
            ("horizon_years", "horizon_years", site.horizon_years),
            ("device", "device.memory_gb", site.device.memory_gb),
            ("device", "device.lifetime_years", site.device.lifetime_years),
        ];
        for (key, name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(table.error(key, format!("{name} must be positive, got {v}")));
            }
        }
        if !(site.rho_max > 0.0 && site.rho_max <= 1.0) {
            return Err(table.error("rho_max", format!("rho_max must be in (0, 1], got {}", site.rho_max)));
        }
        if !(site.pue >= 1.0 && site.pue.is_finite()) {
            return Err(table.error("pue", format!("pue must be >= 1, got {}", site.pue)));
        }
        let l = &site.labor_usd_per_week;
        let nonneg = [
            ("energy_usd_per_kwh", "energy_usd_per_kwh", site.energy_usd_per_kwh),
            ("grid_g_per_kwh", "grid_g_per_kwh", site.grid_g_per_kwh),
            (
                "carbon_usd_per_tonne",
                "carbon_usd_per_tonne",
                site.carbon_usd_per_tonne,
            ),
            ("device", "device.usd_per_hour", site.device.usd_per_hour),
            ("device", "device.embodied_kg", site.device.embodied_kg),
            (
                "labor_usd_per_week",
                "labor_usd_per_week.it-generalist",
                l.it_generalist,
            ),
            (
                "labor_usd_per_week",
                "labor_usd_per_week.software-engineer",
                l.software_engineer,
            ),
            ("labor_usd_per_week", "labor_usd_per_week.ml-engineer", l.ml_engineer),
            (
                "labor_usd_per_week",
                "labor_usd_per_week.ml-specialist",
                l.ml_specialist,
            ),
        ];
        for (key, name, v) in nonneg {
            if !(v.is_finite() && v >= 0.0) {
                return Err(table.error(key, format!("{name} must be >= 0, got {v}")));
            }
        }
        Ok(site)
    }

    /// The carbon keys a site file sets explicitly (they replace the run's recorded
    /// assumptions); `label` names the file.
    pub fn carbon_keys(label: &str, text: &str) -> Result<CarbonOverrides, ConfigError> {
        #[derive(Deserialize)]
        struct Keys {
            pue: Option<f64>,
            grid_g_per_kwh: Option<f64>,
            device: Option<DeviceKeys>,
        }
        #[derive(Deserialize)]
        struct DeviceKeys {
            embodied_kg: Option<f64>,
            lifetime_years: Option<f64>,
        }
        let keys: Keys = ConfigTable::parse(label, text)?.decode()?;
        Ok(CarbonOverrides {
            file: label.to_string(),
            grid_g_per_kwh: keys.grid_g_per_kwh,
            pue: keys.pue,
            embodied_kg: keys.device.as_ref().and_then(|d| d.embodied_kg),
            lifetime_years: keys.device.as_ref().and_then(|d| d.lifetime_years),
        })
    }

    /// This site's carbon values as overrides of a run's assumptions — all four, as if a
    /// site file set each (for a site built in code).
    pub fn carbon_overrides(&self, label: &str) -> CarbonOverrides {
        CarbonOverrides {
            file: label.to_string(),
            grid_g_per_kwh: Some(self.grid_g_per_kwh),
            pue: Some(self.pue),
            embodied_kg: Some(self.device.embodied_kg),
            lifetime_years: Some(self.device.lifetime_years),
        }
    }

    /// The horizon in hours.
    pub fn hours(&self) -> f64 {
        self.horizon_years * 8760.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let s = Site::default();
        assert_eq!(s.labor_usd_per_week.rate(Level::ItGeneralist), 1682.0);
        assert_eq!(s.labor_usd_per_week.rate(Level::SoftwareEngineer), 3631.0);
        let s = Site::parse("site.toml", "pue = 1.2\n[device]\nusd_per_hour = 2.5\n").unwrap();
        assert_eq!((s.pue, s.device.usd_per_hour, s.device.memory_gb), (1.2, 2.5, 8.0));
    }

    #[test]
    fn bad_site_files_name_the_key() {
        let err = |t: &str| Site::parse("site.toml", t).unwrap_err().to_string();
        assert!(err("pue = 0.5\n").contains("site.toml:1"));
        assert!(err("rho_max = 1.5\n").contains("rho_max"));
        let e = err("\n[labor_usd_per_week]\nwizard = 3\n");
        assert!(e.contains("site.toml:") && e.contains("wizard"), "{e}");
        assert!(err("horizon_years = \"long\"\n").contains("horizon_years"));
        let e = err("pue = 1.1\n[device]\nmemory_gb = 0\n");
        assert!(
            e.contains("site.toml:2") && e.contains("device.memory_gb must be positive"),
            "{e}"
        );
        let e = err("energy_usd_per_kwh = -0.1\n");
        assert!(e.contains("energy_usd_per_kwh must be >= 0"), "{e}");
    }

    #[test]
    fn only_the_carbon_keys_a_file_sets_are_overrides() {
        let k = Site::carbon_keys("site.toml", "pue = 1.2\n[device]\nlifetime_years = 4\n").unwrap();
        assert_eq!((k.pue, k.lifetime_years), (Some(1.2), Some(4.0)));
        assert_eq!((k.grid_g_per_kwh, k.embodied_kg), (None, None));
        assert_eq!(k.file, "site.toml");
        assert!(!Site::carbon_keys("s", "horizon_years = 2\n").unwrap().any());
    }
}
