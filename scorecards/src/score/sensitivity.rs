//! The sensitivity table: which single assumption flips a method's verdict against the
//! baseline, and at what value — each knob varied alone over a wide range.

use super::types::Sensitivity;
use super::{Prepared, labor};
use crate::cost;
use crate::manifest::Level;
use crate::site::Site;

/// One assumption varied alone: how to set it, its current value and the range searched.
struct Knob {
    name: &'static str,
    unit: &'static str,
    value: f64,
    range: [f64; 2],
    /// Sets the assumption to a value: in the site, or as the method's engineer-weeks (the
    /// `Option`; otherwise both methods' weeks follow the site's horizon).
    set: fn(&mut Site, &mut Option<f64>, f64, Level),
}

fn knobs(site: &Site, weeks: f64, level: Level) -> Vec<Knob> {
    let r = site.labor_usd_per_week.rate(level);
    vec![
        Knob {
            name: "labor rate of the method's level",
            unit: "USD/week",
            value: r,
            range: [r / 100.0, r * 100.0],
            set: |s, _, v, level| {
                // Scale every level so the method's level costs v.
                let f = v / s.labor_usd_per_week.rate(level).max(1e-12);
                let l = &mut s.labor_usd_per_week;
                l.it_generalist *= f;
                l.software_engineer *= f;
                l.ml_engineer *= f;
                l.ml_specialist *= f;
            },
        },
        Knob {
            name: "engineer-weeks of the method (over the horizon)",
            unit: "weeks",
            value: weeks,
            range: [weeks.max(0.01) / 100.0, weeks.max(0.01) * 100.0],
            set: |_, w, v, _| *w = Some(v),
        },
        Knob {
            name: "energy price",
            unit: "USD/kWh",
            value: site.energy_usd_per_kwh,
            range: [0.001, 10.0],
            set: |s, _, v, _| s.energy_usd_per_kwh = v,
        },
        Knob {
            name: "PUE",
            unit: "",
            value: site.pue,
            range: [1.0, 5.0],
            set: |s, _, v, _| s.pue = v,
        },
        Knob {
            name: "grid carbon intensity",
            unit: "gCO2e/kWh",
            value: site.grid_g_per_kwh,
            range: [1.0, 2000.0],
            set: |s, _, v, _| s.grid_g_per_kwh = v,
        },
        Knob {
            name: "carbon price",
            unit: "USD/tCO2e",
            value: site.carbon_usd_per_tonne,
            range: [0.1, 10_000.0],
            set: |s, _, v, _| s.carbon_usd_per_tonne = v,
        },
        Knob {
            name: "horizon",
            unit: "years",
            value: site.horizon_years,
            range: [0.05, 20.0],
            set: |s, _, v, _| s.horizon_years = v,
        },
        Knob {
            name: "device cost",
            unit: "USD/hour",
            value: site.device.usd_per_hour,
            range: [0.001, 100.0],
            set: |s, _, v, _| s.device.usd_per_hour = v,
        },
    ]
}

/// The sensitivity rows of `p` against the baseline `b` at the method's mid weeks `w_mid`.
pub(super) fn sensitivities(p: &Prepared, b: &Prepared, w_mid: f64, site: &Site) -> Vec<Sensitivity> {
    let level = p.manifest.expertise;
    knobs(site, w_mid, level)
        .into_iter()
        .map(|k| {
            let ratio_at = |v: f64| {
                let mut s = site.clone();
                let mut weeks = None;
                (k.set)(&mut s, &mut weeks, v, level);
                // Weeks over the (possibly changed) horizon: maintenance is per year.
                let mw = weeks.unwrap_or_else(|| p.manifest.weeks_over(s.horizon_years).1);
                let bw = b.manifest.weeks_over(s.horizon_years).1;
                cost::oae_ratio(
                    p.rate_qps,
                    (&p.point, &labor(&p.manifest, mw)),
                    (&b.point, &labor(&b.manifest, bw)),
                    &s,
                ) - 1.0
            };
            Sensitivity {
                assumption: k.name,
                unit: k.unit,
                value: k.value,
                flips_at: crossing(ratio_at, k.range, k.value),
                searched: k.range,
            }
        })
        .collect()
}

/// Where `f` changes sign on a log grid over `range`, nearest `near`, refined by bisection.
fn crossing(f: impl Fn(f64) -> f64, range: [f64; 2], near: f64) -> Option<f64> {
    let n = 80;
    let (lo, hi) = (range[0].ln(), range[1].ln());
    let xs: Vec<f64> = (0..=n).map(|i| (lo + (hi - lo) * i as f64 / n as f64).exp()).collect();
    let ys: Vec<f64> = xs.iter().map(|&x| f(x)).collect();
    let target = near.max(range[0]).ln();
    let mut best: Option<(f64, f64, f64)> = None;
    for i in 0..n {
        if (ys[i] >= 0.0) != (ys[i + 1] >= 0.0) && ys[i].is_finite() && ys[i + 1].is_finite() {
            let d = ((xs[i] * xs[i + 1]).sqrt().ln() - target).abs();
            if best.is_none_or(|b| d < b.0) {
                best = Some((d, xs[i], xs[i + 1]));
            }
        }
    }
    let (_, mut a, mut b) = best?;
    let fa_pos = f(a) >= 0.0;
    for _ in 0..60 {
        let m = (a * b).sqrt();
        if (f(m) >= 0.0) == fa_pos {
            a = m;
        } else {
            b = m;
        }
    }
    Some((a * b).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossing_finds_the_root_nearest_the_current_value() {
        // f crosses zero at 2 and at 50; from near 40 the nearer one is 50.
        let f = |x: f64| (x - 2.0) * (x - 50.0);
        let r = crossing(f, [0.1, 1000.0], 40.0).unwrap();
        assert!((r - 50.0).abs() < 1e-6, "{r}");
        let r = crossing(f, [0.1, 1000.0], 1.0).unwrap();
        assert!((r - 2.0).abs() < 1e-6, "{r}");
        assert!(crossing(|x| x + 1.0, [0.1, 10.0], 1.0).is_none(), "no sign change");
    }
}
