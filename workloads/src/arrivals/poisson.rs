//! Poisson arrivals: exponential inter-arrival gaps with mean `1 / rate_qps`.

use serde::Deserialize;

use super::{ArrivalProcess, ArrivalSpec, Limit, accumulate};
use crate::ConfigError;
use crate::config::{ConfigTable, PositiveF64};
use crate::rng::{SeededRng, open01};

pub(super) const SPEC: ArrivalSpec = ArrivalSpec {
    name: "poisson",
    about: "memoryless arrivals, exponential gaps with mean 1/rate_qps (keys: rate_qps)",
    build,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Poisson {
    rate_qps: PositiveF64,
}

fn build(t: &ConfigTable) -> Result<Box<dyn ArrivalProcess>, ConfigError> {
    Ok(Box::new(t.decode::<Poisson>()?))
}

impl ArrivalProcess for Poisson {
    fn offsets(&self, rng: &mut SeededRng, limit: Limit) -> Vec<std::time::Duration> {
        let rate = self.rate_qps.get();
        // Inverse-CDF sampling; open01 never returns 0, so the log is finite.
        accumulate(limit, || -open01(rng).ln() / rate)
    }
    fn mean_rate_qps(&self) -> f64 {
        self.rate_qps.get()
    }
    fn describe(&self) -> String {
        format!("poisson(rate_qps={})", self.rate_qps.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    #[test]
    fn mean_gap_matches_rate() {
        let p = Poisson {
            rate_qps: PositiveF64(5.0),
        };
        let v = p.offsets(&mut seeded(3, &["t"]), Limit::Count(20_000));
        let mean_gap = v.last().unwrap().as_secs_f64() / v.len() as f64;
        assert!((mean_gap - 0.2).abs() < 0.006, "mean gap {mean_gap}");
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
    }
}
