//! Diurnal arrivals: a Poisson process whose rate follows a sinusoid,
//! `λ(t) = rate_qps · (1 + amplitude · sin(2π (t / period_s + phase)))`, generated exactly by
//! thinning (Lewis & Shedler 1979): candidates at the peak rate, each kept with probability
//! λ(t) / λ_max. `period_s` defaults to a day; shorten it to replay a day's shape quickly.

use serde::Deserialize;

use super::{ArrivalProcess, ArrivalSpec, Limit};
use crate::ConfigError;
use crate::config::{ConfigTable, PositiveF64};
use crate::rng::{SeededRng, exponential, open01};

pub(super) const SPEC: ArrivalSpec = ArrivalSpec {
    name: "diurnal",
    about: "Poisson with a sinusoidal rate: mean rate_qps, amplitude in [0, 1], period_s (default 86400), phase in cycles (keys: rate_qps, amplitude, period_s, phase)",
    build,
};

fn day() -> PositiveF64 {
    PositiveF64(86_400.0)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Diurnal {
    rate_qps: PositiveF64,
    amplitude: f64,
    #[serde(default = "day")]
    period_s: PositiveF64,
    #[serde(default)]
    phase: f64,
}

fn build(t: &ConfigTable) -> Result<Box<dyn ArrivalProcess>, ConfigError> {
    let p: Diurnal = t.decode()?;
    if !(0.0..=1.0).contains(&p.amplitude) {
        return Err(t.error(
            "amplitude",
            format!(
                "must be between 0 and 1 (the rate never goes negative), got {}",
                p.amplitude
            ),
        ));
    }
    if !p.phase.is_finite() {
        return Err(t.error("phase", "must be a finite number of cycles"));
    }
    Ok(Box::new(p))
}

impl Diurnal {
    fn rate_at(&self, t: f64) -> f64 {
        let x = std::f64::consts::TAU * (t / self.period_s.get() + self.phase);
        self.rate_qps.get() * (1.0 + self.amplitude * x.sin())
    }
}

impl ArrivalProcess for Diurnal {
    fn offsets(&self, rng: &mut SeededRng, limit: Limit) -> Vec<std::time::Duration> {
        let peak = self.rate_qps.get() * (1.0 + self.amplitude);
        let mut out = Vec::new();
        let mut t = 0.0;
        loop {
            t += exponential(rng, 1.0 / peak);
            let at = std::time::Duration::from_secs_f64(t);
            match limit {
                Limit::Count(n) if out.len() as u64 >= n => return out,
                Limit::Duration(d) if at >= d => return out,
                _ => {}
            }
            if open01(rng) * peak <= self.rate_at(t) {
                out.push(at);
            }
        }
    }
    fn mean_rate_qps(&self) -> f64 {
        self.rate_qps.get()
    }
    fn describe(&self) -> String {
        format!(
            "diurnal(rate_qps={}, amplitude={}, period_s={}, phase={})",
            self.rate_qps.get(),
            self.amplitude,
            self.period_s.get(),
            self.phase
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    #[test]
    fn rate_follows_the_sinusoid() {
        let p = Diurnal {
            rate_qps: PositiveF64(2.0),
            amplitude: 0.8,
            period_s: PositiveF64(100.0),
            phase: 0.0,
        };
        let v = p.offsets(
            &mut seeded(9, &["d"]),
            Limit::Duration(std::time::Duration::from_secs(100 * 400)),
        );
        // Peak quarter-cycle (sin ≈ 1) vs trough quarter-cycle (sin ≈ −1).
        let in_phase = |lo: f64, hi: f64| {
            v.iter()
                .filter(|a| {
                    let f = (a.as_secs_f64() / 100.0).fract();
                    f >= lo && f < hi
                })
                .count() as f64
        };
        let peak = in_phase(0.125, 0.375);
        let trough = in_phase(0.625, 0.875);
        let expected = (1.0 + 0.8 * 0.9003) / (1.0 - 0.8 * 0.9003); // mean of sin over the quarter = 0.9003
        assert!(
            (peak / trough / expected - 1.0).abs() < 0.1,
            "ratio {} vs {expected}",
            peak / trough
        );
        let rate = v.len() as f64 / 40_000.0;
        assert!((rate - 2.0).abs() < 0.1, "rate {rate}");
    }

    #[test]
    fn amplitude_out_of_range_is_rejected() {
        let t = ConfigTable::parse("w.toml", "rate_qps = 1\namplitude = 1.5\n").unwrap();
        let e = build(&t).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "amplitude"));
    }
}
