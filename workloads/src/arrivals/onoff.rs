//! On/off arrivals: a two-state Markov-modulated Poisson process. The source alternates
//! between an *on* state (Poisson at `rate_on_qps`) and an *off* state (Poisson at
//! `rate_off_qps`, default 0 — silence), with exponentially distributed sojourns of mean
//! `mean_on_s` and `mean_off_s`: bursts of traffic separated by long idle periods, the
//! shape of a clinic's or a classroom's usage. The process starts in the on state.

use serde::Deserialize;

use super::{ArrivalProcess, ArrivalSpec, Limit};
use crate::ConfigError;
use crate::config::{ConfigTable, PositiveF64};
use crate::rng::{SeededRng, exponential};

pub(super) const SPEC: ArrivalSpec = ArrivalSpec {
    name: "onoff",
    about: "bursts and silences: Poisson at rate_on_qps for ~mean_on_s, then rate_off_qps (default 0) for ~mean_off_s (keys: rate_on_qps, mean_on_s, mean_off_s, rate_off_qps)",
    build,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnOff {
    rate_on_qps: PositiveF64,
    mean_on_s: PositiveF64,
    mean_off_s: PositiveF64,
    #[serde(default)]
    rate_off_qps: f64,
}

fn build(t: &ConfigTable) -> Result<Box<dyn ArrivalProcess>, ConfigError> {
    let p: OnOff = t.decode()?;
    if !(p.rate_off_qps.is_finite() && p.rate_off_qps >= 0.0) {
        return Err(t.error("rate_off_qps", format!("must be a rate >= 0, got {}", p.rate_off_qps)));
    }
    Ok(Box::new(p))
}

/// An on/off process with silent off periods (used by `oae trace gen`).
pub(crate) fn process(rate_on_qps: f64, mean_on_s: f64, mean_off_s: f64) -> Box<dyn ArrivalProcess> {
    Box::new(OnOff {
        rate_on_qps: PositiveF64(rate_on_qps),
        mean_on_s: PositiveF64(mean_on_s),
        mean_off_s: PositiveF64(mean_off_s),
        rate_off_qps: 0.0,
    })
}

impl ArrivalProcess for OnOff {
    fn offsets(&self, rng: &mut SeededRng, limit: Limit) -> Vec<std::time::Duration> {
        let mut out = Vec::new();
        let (mut t, mut on) = (0.0f64, true);
        loop {
            let (rate, mean_sojourn) = if on {
                (self.rate_on_qps.get(), self.mean_on_s.get())
            } else {
                (self.rate_off_qps, self.mean_off_s.get())
            };
            let end = t + exponential(rng, mean_sojourn);
            if rate > 0.0 {
                // Memorylessness: arrivals within the sojourn are a Poisson stream cut at its end.
                let mut a = t + exponential(rng, 1.0 / rate);
                while a < end {
                    let at = std::time::Duration::from_secs_f64(a);
                    match limit {
                        Limit::Count(n) if out.len() as u64 >= n => return out,
                        Limit::Duration(d) if at >= d => return out,
                        _ => out.push(at),
                    }
                    a += exponential(rng, 1.0 / rate);
                }
            }
            if let Limit::Duration(d) = limit
                && end >= d.as_secs_f64()
            {
                return out;
            }
            if matches!(limit, Limit::Count(n) if out.len() as u64 >= n) {
                return out;
            }
            t = end;
            on = !on;
        }
    }
    fn mean_rate_qps(&self) -> f64 {
        let (on, off) = (self.mean_on_s.get(), self.mean_off_s.get());
        (self.rate_on_qps.get() * on + self.rate_off_qps * off) / (on + off)
    }
    fn describe(&self) -> String {
        format!(
            "onoff(rate_on_qps={}, mean_on_s={}, mean_off_s={}, rate_off_qps={})",
            self.rate_on_qps.get(),
            self.mean_on_s.get(),
            self.mean_off_s.get(),
            self.rate_off_qps
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    #[test]
    fn long_run_rate_and_idle_gaps() {
        let p = OnOff {
            rate_on_qps: PositiveF64(10.0),
            mean_on_s: PositiveF64(5.0),
            mean_off_s: PositiveF64(45.0),
            rate_off_qps: 0.0,
        };
        let v = p.offsets(
            &mut seeded(4, &["o"]),
            Limit::Duration(std::time::Duration::from_secs(200_000)),
        );
        let rate = v.len() as f64 / 200_000.0;
        assert!(
            (rate / p.mean_rate_qps() - 1.0).abs() < 0.08,
            "rate {rate} vs {}",
            p.mean_rate_qps()
        );
        let long_gaps = v.windows(2).filter(|w| (w[1] - w[0]).as_secs_f64() > 10.0).count();
        // About one long silence per on/off cycle (~4000 cycles).
        assert!(long_gaps > 2500, "only {long_gaps} long gaps");
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn count_limit_is_exact() {
        let p = OnOff {
            rate_on_qps: PositiveF64(3.0),
            mean_on_s: PositiveF64(1.0),
            mean_off_s: PositiveF64(1.0),
            rate_off_qps: 0.5,
        };
        assert_eq!(p.offsets(&mut seeded(1, &[]), Limit::Count(777)).len(), 777);
    }
}
