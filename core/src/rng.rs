//! Portable seeded randomness.
//!
//! Every random choice in oae comes from ChaCha8 seeded from the suite seed and a purpose
//! label through SHA-256, so the same seed gives the same schedule on every platform and
//! independent purposes (arrival times, prompt lengths, weights) never share a stream:
//! changing how prompts are drawn cannot move arrival times.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// The RNG used everywhere in oae.
pub type SeededRng = ChaCha8Rng;

/// An RNG for `purpose` derived from `seed`; labels keep streams independent.
pub fn seeded(seed: u64, purpose: &[&str]) -> SeededRng {
    let mut h = Sha256::new();
    h.update(b"oae-rng-v1");
    h.update(seed.to_le_bytes());
    for p in purpose {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let digest: [u8; 32] = h.finalize().into();
    ChaCha8Rng::from_seed(digest)
}

/// A uniform draw in the open interval (0, 1): safe to take the logarithm of.
pub fn open01(rng: &mut SeededRng) -> f64 {
    use rand::RngCore;
    // 53 random bits, shifted by half a step so neither 0 nor 1 can occur.
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A standard normal draw (Box–Muller; one of the pair is discarded for simplicity).
pub fn standard_normal(rng: &mut SeededRng) -> f64 {
    let u1 = open01(rng);
    let u2 = open01(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// An exponential draw with the given mean.
pub fn exponential(rng: &mut SeededRng, mean: f64) -> f64 {
    -open01(rng).ln() * mean
}

/// A Gamma(shape, scale) draw (Marsaglia & Tsang 2000; shape < 1 by the boost
/// `G(a) = G(a + 1) · U^(1/a)`).
pub fn gamma(rng: &mut SeededRng, shape: f64, scale: f64) -> f64 {
    if shape < 1.0 {
        let u = open01(rng);
        return gamma(rng, shape + 1.0, scale) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = open01(rng);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let a = seeded(7, &["arrivals", "w"]).next_u64();
        assert_eq!(a, seeded(7, &["arrivals", "w"]).next_u64());
        assert_ne!(a, seeded(8, &["arrivals", "w"]).next_u64());
        assert_ne!(a, seeded(7, &["lengths", "w"]).next_u64());
        // Label boundaries matter: ["ab","c"] differs from ["a","bc"].
        assert_ne!(seeded(1, &["ab", "c"]).next_u64(), seeded(1, &["a", "bc"]).next_u64());
    }

    #[test]
    fn gamma_moments() {
        let mut r = seeded(2, &["g"]);
        for (shape, scale) in [(0.25, 4.0), (1.0, 0.5), (6.0, 0.1)] {
            let n = 40_000;
            let xs: Vec<f64> = (0..n).map(|_| gamma(&mut r, shape, scale)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            assert!(
                (mean / (shape * scale) - 1.0).abs() < 0.05,
                "mean {mean} for {shape},{scale}"
            );
            assert!(
                (var / (shape * scale * scale) - 1.0).abs() < 0.12,
                "var {var} for {shape},{scale}"
            );
        }
    }

    #[test]
    fn open01_stays_open() {
        let mut r = seeded(1, &["t"]);
        for _ in 0..10_000 {
            let u = open01(&mut r);
            assert!(u > 0.0 && u < 1.0);
        }
    }
}
