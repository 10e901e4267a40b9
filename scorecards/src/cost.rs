//! The cost of serving a request rate λ for the site's horizon (docs/scoring.md):
//!
//! ```text
//! T            = H × 8760 h
//! devices(λ)   = max(1, ceil(λ·s / ρ_max), ceil(M / M_dev))
//! energy(λ)    = PUE × [devices·P_idle·T + λ·T·3600·e_dyn + e_setup]          (kWh)
//! carbon(λ)    = energy·CI + devices·EF·(H / L)                                (kgCO2e)
//! labor        = R(level) × (deploy + maintain × H)
//! cost(λ)      = devices·c_dev·T + energy·p_e + carbon·p_c + labor
//! good(λ)      = λ·T·3600 × a × (q if known, else 1)
//! ```

use serde::Serialize;

use crate::manifest::Level;
use crate::site::Site;

/// What a run measured for one method on one workload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measured {
    /// Mean service time per request, s.
    pub service_s: f64,
    /// Share of requests that succeeded within the SLOs, in [0, 1].
    pub attainment: f64,
    /// Mean quality in [0, 1], when references exist.
    pub quality: Option<f64>,
    /// Dynamic energy per request, J.
    pub dyn_j: f64,
    /// Loaded-idle power with the method resident, W.
    pub idle_w: f64,
    /// One-time setup energy, J.
    pub setup_j: f64,
    /// Peak memory footprint, bytes.
    pub memory_bytes: f64,
}

/// Declared labour: level and engineer-weeks over the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Labor {
    /// Expertise level.
    pub level: Level,
    /// Engineer-weeks over the horizon (deploy + maintain × H).
    pub weeks: f64,
}

/// The cost of serving λ for the horizon, by part.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Breakdown {
    /// Request rate, req/s.
    pub rate_qps: f64,
    /// Devices reserved.
    pub devices: f64,
    /// Device cost, USD.
    pub hardware_usd: f64,
    /// Facility energy, kWh.
    pub energy_kwh: f64,
    /// Energy cost, USD.
    pub energy_usd: f64,
    /// Operational + embodied carbon, kgCO2e.
    pub carbon_kg: f64,
    /// Carbon cost, USD.
    pub carbon_usd: f64,
    /// Labour cost, USD.
    pub labor_usd: f64,
    /// Total, USD.
    pub total_usd: f64,
    /// Good requests served over the horizon.
    pub good_requests: f64,
    /// USD per 1,000 good requests (infinite when none are good).
    pub cost_per_1k_good_usd: f64,
}

/// The cost of serving `rate_qps` for the site's horizon.
pub fn cost_at(rate_qps: f64, m: &Measured, labor: &Labor, site: &Site) -> Breakdown {
    let t_h = site.hours();
    let by_load = (rate_qps * m.service_s / site.rho_max).ceil();
    let by_memory = (m.memory_bytes / (site.device.memory_gb * 1e9)).ceil();
    let devices = 1f64.max(by_load).max(by_memory);
    let energy_kwh =
        site.pue * (devices * m.idle_w * t_h / 1e3 + rate_qps * t_h * 3600.0 * m.dyn_j / 3.6e6 + m.setup_j / 3.6e6);
    let carbon_kg = energy_kwh * site.grid_g_per_kwh / 1e3
        + devices * site.device.embodied_kg * (site.horizon_years / site.device.lifetime_years);
    let hardware_usd = devices * site.device.usd_per_hour * t_h;
    let energy_usd = energy_kwh * site.energy_usd_per_kwh;
    let carbon_usd = carbon_kg / 1e3 * site.carbon_usd_per_tonne;
    let labor_usd = site.labor_usd_per_week.rate(labor.level) * labor.weeks;
    let total_usd = hardware_usd + energy_usd + carbon_usd + labor_usd;
    let good_requests = rate_qps * t_h * 3600.0 * m.attainment * m.quality.unwrap_or(1.0);
    let cost_per_1k_good_usd = if good_requests > 0.0 {
        total_usd / good_requests * 1e3
    } else {
        f64::INFINITY
    };
    Breakdown {
        rate_qps,
        devices,
        hardware_usd,
        energy_kwh,
        energy_usd,
        carbon_kg,
        carbon_usd,
        labor_usd,
        total_usd,
        good_requests,
        cost_per_1k_good_usd,
    }
}

/// `(cost_b / good_b) / (cost_m / good_m)`: above 1 the method is worth adopting at λ.
pub fn oae_ratio(rate_qps: f64, method: (&Measured, &Labor), baseline: (&Measured, &Labor), site: &Site) -> f64 {
    let m = cost_at(rate_qps, method.0, method.1, site);
    let b = cost_at(rate_qps, baseline.0, baseline.1, site);
    let (b, m) = (b.cost_per_1k_good_usd, m.cost_per_1k_good_usd);
    // Neither gives a good request (in this bootstrap draw): no difference, not ∞/∞ = NaN —
    // left out, such draws would let one lucky draw of the other side decide the verdict.
    if b.is_infinite() && m.is_infinite() {
        return 1.0;
    }
    b / m
}

/// Where a method starts to beat the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", content = "qps", rename_all = "lowercase")]
pub enum BreakEven {
    /// From this rate on (within the grid), `oae_ratio ≥ 1`.
    At(f64),
    /// Better at every rate of the grid.
    Always,
    /// Better at no rate of the grid.
    Never,
}

/// The search grid: 1e-3 .. 1e3 req/s, 20 points per decade.
pub const GRID: (f64, f64, usize) = (1e-3, 1e3, 20);

/// The smallest λ from which `oae_ratio ≥ 1` holds up to the top of the grid: the last
/// crossing on a log grid over [`GRID`], refined by bisection.
pub fn break_even(method: (&Measured, &Labor), baseline: (&Measured, &Labor), site: &Site) -> BreakEven {
    let (lo, hi, per_decade) = GRID;
    let decades = (hi / lo).log10();
    let n = (decades * per_decade as f64).round() as usize;
    let grid: Vec<f64> = (0..=n).map(|i| lo * 10f64.powf(i as f64 / per_decade as f64)).collect();
    // A method with no good request never wins, even against a baseline with none (ratio 1).
    let useless = |l: f64| cost_at(l, method.0, method.1, site).cost_per_1k_good_usd.is_infinite();
    let wins = |l: f64| !useless(l) && oae_ratio(l, method, baseline, site) >= 1.0;
    let w: Vec<bool> = grid.iter().map(|&l| wins(l)).collect();
    if w.iter().all(|&x| x) {
        return BreakEven::Always;
    }
    if !w[n] {
        return BreakEven::Never;
    }
    // The last losing grid point; the verdict holds from the next one on.
    let last_loss = w.iter().rposition(|&x| !x).unwrap_or(0);
    let (mut a, mut b) = (grid[last_loss], grid[last_loss + 1]);
    for _ in 0..60 {
        let mid = (a * b).sqrt();
        if wins(mid) {
            b = mid;
        } else {
            a = mid;
        }
    }
    BreakEven::At(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::{Device, Labor as Rates};

    fn site() -> Site {
        Site {
            horizon_years: 1.0,
            rho_max: 0.5,
            energy_usd_per_kwh: 0.1,
            pue: 1.5,
            grid_g_per_kwh: 400.0,
            carbon_usd_per_tonne: 100.0,
            device: Device {
                name: "test".into(),
                memory_gb: 16.0,
                usd_per_hour: 1.0,
                embodied_kg: 100.0,
                lifetime_years: 5.0,
            },
            labor_usd_per_week: Rates {
                it_generalist: 1000.0,
                software_engineer: 2000.0,
                ml_engineer: 3000.0,
                ml_specialist: 6000.0,
            },
        }
    }

    fn dense() -> Measured {
        Measured {
            service_s: 1.0,
            attainment: 1.0,
            quality: None,
            dyn_j: 10.0,
            idle_w: 20.0,
            setup_j: 0.0,
            memory_bytes: 4e9,
        }
    }

    #[test]
    fn two_methods_without_a_good_request_are_not_told_apart() {
        let (s, lab) = (
            site(),
            Labor {
                level: Level::SoftwareEngineer,
                weeks: 1.0,
            },
        );
        let useless = Measured {
            quality: Some(0.0),
            ..dense()
        };
        let some = Measured {
            quality: Some(0.02),
            ..dense()
        };
        assert_eq!(
            oae_ratio(0.1, (&useless, &lab), (&useless, &lab), &s),
            1.0,
            "∞/∞ is no difference"
        );
        assert!(oae_ratio(0.1, (&some, &lab), (&useless, &lab), &s).is_infinite());
        assert_eq!(oae_ratio(0.1, (&useless, &lab), (&some, &lab), &s), 0.0);
        assert_eq!(
            break_even((&useless, &lab), (&useless, &lab), &s),
            BreakEven::Never,
            "no good request: it never pays"
        );
    }

    #[test]
    fn worked_example_checked_by_hand() {
        // λ = 0.1 req/s for a year on one $1/h, 16 GB device:
        //   devices = max(1, ceil(0.1·1/0.5) = 1, ceil(4/16) = 1) = 1
        //   energy  = 1.5 × (20 W · 8760 h / 1000 + 0.1·8760·3600·10 J / 3.6e6) = 1.5 × (175.2 + 8.76) = 275.94 kWh
        //   carbon  = 275.94 · 0.4 + 1 · 100 · (1/5) = 110.376 + 20 = 130.376 kg
        //   cost    = 8760 + 275.94·0.1 + 0.130376·100 + 2000·2 = 12800.6316 USD
        //   good    = 0.1 · 8760 · 3600 = 3,153,600 → 4.059053 USD per 1k good requests
        let b = cost_at(
            0.1,
            &dense(),
            &Labor {
                level: Level::SoftwareEngineer,
                weeks: 2.0,
            },
            &site(),
        );
        assert_eq!(b.devices, 1.0);
        assert!((b.energy_kwh - 275.94).abs() < 1e-9, "{}", b.energy_kwh);
        assert!((b.carbon_kg - 130.376).abs() < 1e-9, "{}", b.carbon_kg);
        assert!((b.total_usd - 12800.6316).abs() < 1e-6, "{}", b.total_usd);
        assert!((b.cost_per_1k_good_usd - 12800.6316 / 3153.6).abs() < 1e-9);
        // 2.5 req/s needs ceil(2.5·1/0.5) = 5 devices; 20 GB of weights would need 2.
        let b = cost_at(
            2.5,
            &dense(),
            &Labor {
                level: Level::SoftwareEngineer,
                weeks: 2.0,
            },
            &site(),
        );
        assert_eq!(b.devices, 5.0);
        let big = Measured {
            memory_bytes: 20e9,
            ..dense()
        };
        assert_eq!(
            cost_at(
                0.1,
                &big,
                &Labor {
                    level: Level::ItGeneralist,
                    weeks: 0.0
                },
                &site()
            )
            .devices,
            2.0
        );
        // Nothing good: infinite cost per good request, never a division by zero.
        let bad = Measured {
            attainment: 0.0,
            ..dense()
        };
        assert!(
            cost_at(
                0.1,
                &bad,
                &Labor {
                    level: Level::ItGeneralist,
                    weeks: 0.0
                },
                &site()
            )
            .cost_per_1k_good_usd
            .is_infinite()
        );
    }

    /// A site where only energy and labour differ, so the break-even has a closed form.
    fn linear_site() -> Site {
        Site {
            pue: 1.0,
            carbon_usd_per_tonne: 0.0,
            device: Device {
                usd_per_hour: 0.0,
                ..site().device
            },
            ..site()
        }
    }

    #[test]
    fn break_even_matches_the_closed_form() {
        // One device throughout (service 1 ms). Baseline: 100 J/request, no labour; method:
        // 20 J/request, 1 engineer-week at L1 ($1000). Per (req/s) of rate the method saves
        // 8760·3600·80 J = 700.8 kWh → $70.08 a year, so it wins from 1000/70.08 = 14.2694 req/s.
        let b = Measured {
            service_s: 0.001,
            dyn_j: 100.0,
            idle_w: 10.0,
            memory_bytes: 1e9,
            ..dense()
        };
        let m = Measured { dyn_j: 20.0, ..b };
        let lb = Labor {
            level: Level::ItGeneralist,
            weeks: 0.0,
        };
        let lm = Labor {
            level: Level::ItGeneralist,
            weeks: 1.0,
        };
        let s = linear_site();
        match break_even((&m, &lm), (&b, &lb), &s) {
            BreakEven::At(q) => assert!((q - 1000.0 / 70.08).abs() < 1e-6, "{q}"),
            other => panic!("{other:?}"),
        }
        assert!(oae_ratio(14.0, (&m, &lm), (&b, &lb), &s) < 1.0);
        assert!(oae_ratio(14.5, (&m, &lm), (&b, &lb), &s) > 1.0);
    }

    #[test]
    fn never_and_always() {
        let s = linear_site();
        let b = Measured {
            service_s: 0.001,
            memory_bytes: 1e9,
            ..dense()
        };
        let l0 = Labor {
            level: Level::ItGeneralist,
            weeks: 0.0,
        };
        // More energy per request and more labour: never better.
        let worse = Measured { dyn_j: 30.0, ..b };
        let l1 = Labor {
            level: Level::MlSpecialist,
            weeks: 1.0,
        };
        assert_eq!(break_even((&worse, &l1), (&b, &l0), &s), BreakEven::Never);
        // Less energy, less idle power, same labour: better everywhere.
        let better = Measured {
            dyn_j: 5.0,
            idle_w: 15.0,
            ..b
        };
        assert_eq!(break_even((&better, &l0), (&b, &l0), &s), BreakEven::Always);
    }
}
