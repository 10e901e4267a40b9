//! Next-token selection: greedy, or seeded temperature / top-k / top-p sampling.

use serde::Deserialize;

use oae_core::rng::{SeededRng, open01};

/// Sampling settings (flattened into a method's config).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    /// 0 = greedy; otherwise logits are divided by it.
    pub temperature: f64,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1 = off).
    pub top_p: f64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        }
    }
}

impl Sampling {
    /// Checks the values, describing the fix.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(format!(
                "temperature must be >= 0 (0 = greedy), got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        Ok(())
    }

    /// Whether this is greedy decoding.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

/// Index of the largest value; ties go to the lowest index, NaN never wins.
pub fn argmax(v: &[f32]) -> u32 {
    // The best value so far held in a register: reading `v[best]` back each step (a load and
    // a bounds check per element) took 0.18 ms per token over SmolLM2's 49,152 logits.
    let (mut best, mut top) = (0usize, v.first().copied().unwrap_or(0.0));
    for (i, &x) in v.iter().enumerate() {
        if x > top || top.is_nan() {
            best = i;
            top = x;
        }
    }
    best as u32
}

/// The next-token distribution `s` samples from, over the whole vocabulary: softmax of
/// logits / temperature restricted to the top-k tokens and then to the top-p nucleus,
/// renormalised. Greedy decoding is the one-hot distribution on the argmax.
pub fn probabilities(logits: &[f32], s: &Sampling) -> Vec<f64> {
    let mut out = vec![0.0; logits.len()];
    if logits.is_empty() {
        return out;
    }
    let mut idx: Vec<usize> = (0..logits.len()).filter(|&i| logits[i].is_finite()).collect();
    if s.is_greedy() || logits.len() < 2 || idx.is_empty() {
        out[argmax(logits) as usize] = 1.0;
        return out;
    }
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if s.top_k > 0 {
        idx.truncate(s.top_k);
    }
    let max = logits[idx[0]] as f64;
    let mut probs: Vec<f64> = idx
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / s.temperature).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if s.top_p < 1.0 {
        let mut acc = 0.0;
        let keep = probs.iter().position(|p| {
            acc += p;
            acc >= s.top_p
        });
        let keep = keep.map(|k| k + 1).unwrap_or(probs.len());
        probs.truncate(keep);
        idx.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    for (p, &i) in probs.iter().zip(&idx) {
        out[i] = *p;
    }
    out
}

/// Draws an index from a distribution (need not be normalised; all-zero → index 0).
pub fn sample_from(p: &[f64], rng: &mut SeededRng) -> u32 {
    let total: f64 = p.iter().sum();
    if total.is_nan() || total <= 0.0 {
        return 0;
    }
    let u = open01(rng) * total;
    let mut acc = 0.0;
    let mut last = 0;
    for (i, &x) in p.iter().enumerate() {
        if x > 0.0 {
            acc += x;
            last = i;
            if u < acc {
                return i as u32;
            }
        }
    }
    last as u32
}

/// Picks the next token from `logits` under `s`, drawing from `rng` when sampling.
pub fn sample(logits: &[f32], s: &Sampling, rng: &mut SeededRng) -> u32 {
    if s.is_greedy() || logits.len() < 2 {
        return argmax(logits);
    }
    sample_from(&probabilities(logits, s), rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oae_core::rng::seeded;

    #[test]
    fn greedy_and_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5]), 1);
        assert_eq!(argmax(&[1.0, f32::NAN, 2.0]), 2);
        assert_eq!(argmax(&[f32::NAN, 1.0, f32::NAN, 0.0]), 1);
        assert_eq!(argmax(&[-1.0, f32::NEG_INFINITY, -0.5]), 2);
        assert_eq!(argmax(&[]), 0);
        let mut r = seeded(0, &[]);
        assert_eq!(sample(&[0.0, 9.0, 1.0], &Sampling::default(), &mut r), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_restricts() {
        let logits = [0.0f32, 2.0, 1.9, -5.0];
        let mut r = seeded(1, &["s"]);
        let k1 = Sampling {
            temperature: 1.0,
            top_k: 1,
            top_p: 1.0,
        };
        assert!((0..100).all(|_| sample(&logits, &k1, &mut r) == 1));
        let p = Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.45,
        }; // p(token 1) ≈ 0.49
        assert!((0..100).all(|_| sample(&logits, &p, &mut r) == 1));
        let all = Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        };
        let mut seen = [0; 4];
        for _ in 0..4000 {
            seen[sample(&logits, &all, &mut r) as usize] += 1;
        }
        // p(1)/p(2) = e^0.1 ≈ 1.105; token 3 is ~0.1% likely.
        let ratio = seen[1] as f64 / seen[2] as f64;
        assert!((0.95..1.3).contains(&ratio), "ratio {ratio} {seen:?}");
        assert!(seen[0] > 200, "{seen:?}");
    }

    #[test]
    fn same_seed_same_draws() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let s = Sampling {
            temperature: 0.8,
            top_k: 20,
            top_p: 0.9,
        };
        let a: Vec<u32> = {
            let mut r = seeded(9, &["x"]);
            (0..20).map(|_| sample(&logits, &s, &mut r)).collect()
        };
        let b: Vec<u32> = {
            let mut r = seeded(9, &["x"]);
            (0..20).map(|_| sample(&logits, &s, &mut r)).collect()
        };
        assert_eq!(a, b);
    }

    #[test]
    fn validation() {
        assert!(
            Sampling {
                temperature: -1.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Sampling {
                top_p: 0.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(Sampling::default().validate().is_ok());
    }
}
