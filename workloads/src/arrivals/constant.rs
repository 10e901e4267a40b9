//! Constant-rate arrivals: one request every `1 / rate_qps` seconds.

use serde::Deserialize;

use super::{ArrivalProcess, ArrivalSpec, Limit, accumulate};
use crate::ConfigError;
use crate::config::{ConfigTable, PositiveF64};
use crate::rng::SeededRng;

pub(super) const SPEC: ArrivalSpec = ArrivalSpec {
    name: "constant",
    about: "fixed inter-arrival gap of 1/rate_qps seconds (keys: rate_qps)",
    build,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Constant {
    rate_qps: PositiveF64,
}

fn build(t: &ConfigTable) -> Result<Box<dyn ArrivalProcess>, ConfigError> {
    Ok(Box::new(t.decode::<Constant>()?))
}

impl ArrivalProcess for Constant {
    fn offsets(&self, _rng: &mut SeededRng, limit: Limit) -> Vec<std::time::Duration> {
        let gap = 1.0 / self.rate_qps.get();
        accumulate(limit, || gap)
    }
    fn mean_rate_qps(&self) -> f64 {
        self.rate_qps.get()
    }
    fn describe(&self) -> String {
        format!("constant(rate_qps={})", self.rate_qps.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;
    use std::time::Duration;

    #[test]
    fn evenly_spaced() {
        let p = Constant {
            rate_qps: PositiveF64(4.0),
        };
        let v = p.offsets(&mut seeded(0, &[]), Limit::Count(3));
        assert_eq!(
            v,
            vec![
                Duration::from_millis(250),
                Duration::from_millis(500),
                Duration::from_millis(750)
            ]
        );
    }
}
