//! Token-length distributions for prompts and generations.
//!
//! Written in a suite as a plain integer (`output_tokens = 32`) or a table:
//! `{ dist = "uniform", min = 16, max = 96 }`,
//! `{ dist = "lognormal", median = 48, sigma = 0.6, min = 4, max = 512 }`.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::rng::{SeededRng, open01, standard_normal};

/// A distribution of token counts, every draw at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "dist", rename_all = "lowercase")]
pub enum LengthDist {
    /// Always `value`.
    Fixed { value: u32 },
    /// Uniform on the integers `min..=max`.
    Uniform { min: u32, max: u32 },
    /// Log-normal with the given median and log-space sigma, clamped to `min..=max`.
    Lognormal {
        median: f64,
        sigma: f64,
        min: u32,
        max: u32,
    },
}

impl LengthDist {
    /// One draw.
    pub fn sample(&self, rng: &mut SeededRng) -> u32 {
        match *self {
            LengthDist::Fixed { value } => value,
            LengthDist::Uniform { min, max } => {
                let span = (max - min) as f64 + 1.0;
                (min as f64 + (open01(rng) * span).floor()).min(max as f64) as u32
            }
            LengthDist::Lognormal {
                median,
                sigma,
                min,
                max,
            } => {
                let x = median * (sigma * standard_normal(rng)).exp();
                x.round().clamp(min as f64, max as f64) as u32
            }
        }
    }

    /// The largest value a draw can take.
    pub fn max(&self) -> u32 {
        match *self {
            LengthDist::Fixed { value } => value,
            LengthDist::Uniform { max, .. } | LengthDist::Lognormal { max, .. } => max,
        }
    }

    fn validate(self) -> Result<Self, String> {
        match self {
            LengthDist::Fixed { value: 0 } => Err("token count must be at least 1, got 0".into()),
            LengthDist::Uniform { min, max } | LengthDist::Lognormal { min, max, .. } if min == 0 || min > max => {
                Err(format!("need 1 <= min <= max, got min = {min}, max = {max}"))
            }
            LengthDist::Lognormal { median, sigma, .. }
                if !(median.is_finite() && median > 0.0 && sigma.is_finite() && sigma >= 0.0) =>
            {
                Err(format!(
                    "need median > 0 and sigma >= 0, got median = {median}, sigma = {sigma}"
                ))
            }
            ok => Ok(ok),
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
enum Tagged {
    Fixed {
        value: u32,
    },
    Uniform {
        min: u32,
        max: u32,
    },
    Lognormal {
        median: f64,
        sigma: f64,
        #[serde(default = "one")]
        min: u32,
        max: u32,
    },
}

fn one() -> u32 {
    1
}

impl<'de> Deserialize<'de> for LengthDist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LengthDist;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a token count (e.g. 32) or a table such as { dist = \"uniform\", min = 16, max = 96 }")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LengthDist, E> {
                let value = u32::try_from(v)
                    .map_err(|_| E::custom(format!("token count must be between 1 and {}, got {v}", u32::MAX)))?;
                LengthDist::Fixed { value }.validate().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LengthDist, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LengthDist, A::Error> {
                let t = Tagged::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let d = match t {
                    Tagged::Fixed { value } => LengthDist::Fixed { value },
                    Tagged::Uniform { min, max } => LengthDist::Uniform { min, max },
                    Tagged::Lognormal {
                        median,
                        sigma,
                        min,
                        max,
                    } => LengthDist::Lognormal {
                        median,
                        sigma,
                        min,
                        max,
                    },
                };
                d.validate().map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    #[derive(Deserialize)]
    struct W {
        n: LengthDist,
    }

    fn parse(s: &str) -> Result<LengthDist, String> {
        toml::from_str::<W>(s).map(|w| w.n).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_forms() {
        assert_eq!(parse("n = 32").unwrap(), LengthDist::Fixed { value: 32 });
        assert_eq!(
            parse("n = { dist = \"uniform\", min = 2, max = 9 }").unwrap(),
            LengthDist::Uniform { min: 2, max: 9 }
        );
        assert!(matches!(
            parse("n = { dist = \"lognormal\", median = 40.0, sigma = 0.5, max = 90 }").unwrap(),
            LengthDist::Lognormal { min: 1, .. }
        ));
    }

    #[test]
    fn rejects_impossible() {
        assert!(parse("n = 0").unwrap_err().contains("at least 1"));
        assert!(parse("n = -4").is_err());
        assert!(
            parse("n = { dist = \"uniform\", min = 9, max = 2 }")
                .unwrap_err()
                .contains("min <= max")
        );
        assert!(
            parse("n = { dist = \"uniform\", min = 1, max = 2, mode = 3 }")
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(parse("n = { dist = \"zipf\" }").is_err());
    }

    #[test]
    fn draws_stay_in_range() {
        let mut r = seeded(1, &["len"]);
        let u = LengthDist::Uniform { min: 3, max: 5 };
        let l = LengthDist::Lognormal {
            median: 20.0,
            sigma: 1.5,
            min: 2,
            max: 60,
        };
        let mut seen = [false; 3];
        for _ in 0..1000 {
            let x = u.sample(&mut r);
            assert!((3..=5).contains(&x));
            seen[(x - 3) as usize] = true;
            assert!((2..=60).contains(&l.sample(&mut r)));
        }
        assert!(seen.iter().all(|&s| s), "uniform must reach both ends");
    }
}
