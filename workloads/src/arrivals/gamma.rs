//! Gamma renewal arrivals: gaps ~ Gamma with mean `1 / rate_qps` and coefficient of
//! variation `cv` — `cv = 1` is Poisson, `cv > 1` bursty (clustered arrivals separated by
//! longer gaps), `cv < 1` more regular than Poisson.

use serde::Deserialize;

use super::{ArrivalProcess, ArrivalSpec, Limit, accumulate};
use crate::ConfigError;
use crate::config::{ConfigTable, PositiveF64};
use crate::rng::{SeededRng, gamma};

pub(super) const SPEC: ArrivalSpec = ArrivalSpec {
    name: "gamma",
    about: "renewal process with Gamma gaps: mean 1/rate_qps, burstiness cv (1 = Poisson) (keys: rate_qps, cv)",
    build,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Gamma {
    rate_qps: PositiveF64,
    cv: PositiveF64,
}

fn build(t: &ConfigTable) -> Result<Box<dyn ArrivalProcess>, ConfigError> {
    Ok(Box::new(t.decode::<Gamma>()?))
}

impl ArrivalProcess for Gamma {
    fn offsets(&self, rng: &mut SeededRng, limit: Limit) -> Vec<std::time::Duration> {
        // CV² = 1/shape; mean = shape · scale.
        let shape = 1.0 / (self.cv.get() * self.cv.get());
        let scale = 1.0 / (self.rate_qps.get() * shape);
        accumulate(limit, || gamma(rng, shape, scale))
    }
    fn mean_rate_qps(&self) -> f64 {
        self.rate_qps.get()
    }
    fn describe(&self) -> String {
        format!("gamma(rate_qps={}, cv={})", self.rate_qps.get(), self.cv.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    #[test]
    fn rate_and_cv_are_honoured() {
        for cv in [0.5, 1.0, 3.0] {
            let p = Gamma {
                rate_qps: PositiveF64(4.0),
                cv: PositiveF64(cv),
            };
            let v = p.offsets(&mut seeded(1, &["g"]), Limit::Count(40_000));
            let gaps: Vec<f64> = std::iter::once(v[0].as_secs_f64())
                .chain(v.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()))
                .collect();
            let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
            let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
            assert!((mean - 0.25).abs() < 0.25 * 0.05, "cv {cv}: mean gap {mean}");
            assert!((sd / mean - cv).abs() < cv * 0.08, "cv {cv}: measured {}", sd / mean);
        }
    }

    #[test]
    fn non_positive_cv_is_rejected_with_its_line() {
        let t = ConfigTable::parse("w.toml", "rate_qps = 1\ncv = 0\n").unwrap();
        let e = build(&t).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "cv"));
    }
}
