//! Weibull gaps (shape k, scale λ). MLE: k solves Σ yᵏ ln y / Σ yᵏ − 1/k = 0 with y = x / e^mean(ln x)
//! (safeguarded Newton; the normalisation keeps yᵏ finite), λ = e^mean(ln x) · (mean yᵏ)^(1/k).

use super::special::ln_gamma;
use super::{GapFitter, GapModel, Gaps};
use crate::rng::{SeededRng, open01};

pub(super) const FIT: GapFitter = GapFitter {
    name: "weibull",
    params: 2,
    fit,
};

#[derive(Debug, Clone)]
pub(super) struct Weibull {
    pub(super) shape: f64,
    pub(super) scale: f64,
}

/// Σ yᵏ, Σ yᵏ ln y, Σ yᵏ (ln y)² with ln y = ln x − mean(ln x).
fn sums(g: &Gaps, k: f64) -> (f64, f64, f64) {
    let (mut s0, mut s1, mut s2) = (0.0, 0.0, 0.0);
    for &l in &g.ln {
        let ly = l - g.mean_ln;
        let yk = (k * ly).exp();
        s0 += yk;
        s1 += yk * ly;
        s2 += yk * ly * ly;
    }
    (s0, s1, s2)
}

fn fit(g: &Gaps) -> Option<Box<dyn GapModel>> {
    if g.sd_ln <= 1e-12 {
        return None;
    }
    // Start: sd(ln x) = π / (k √6) for a Weibull.
    let mut k = std::f64::consts::PI / (6f64.sqrt() * g.sd_ln);
    let (mut lo, mut hi) = (1e-6f64, 1e6f64);
    for _ in 0..200 {
        let (s0, s1, s2) = sums(g, k);
        let f = s1 / s0 - 1.0 / k; // increasing in k; NaN when yᵏ overflows (k far too large)
        if f > 0.0 || f.is_nan() {
            hi = hi.min(k);
        } else {
            lo = lo.max(k);
        }
        let df = (s2 * s0 - s1 * s1) / (s0 * s0) + 1.0 / (k * k);
        let step = f / df;
        if step.is_finite() && step.abs() <= 1e-12 * k {
            break; // converged (checked first: at the root, k − step can round onto the bracket)
        }
        let mut next = k - step;
        if !(next > lo && next < hi && next.is_finite()) {
            next = (lo * hi).sqrt();
        }
        k = next;
    }
    let (s0, _, _) = sums(g, k);
    let scale = g.mean_ln.exp() * (s0 / g.ln.len() as f64).powf(1.0 / k);
    (k.is_finite() && scale.is_finite() && scale > 0.0)
        .then(|| Box::new(Weibull { shape: k, scale }) as Box<dyn GapModel>)
}

impl GapModel for Weibull {
    fn name(&self) -> &'static str {
        FIT.name
    }
    fn params(&self) -> Vec<(&'static str, f64)> {
        vec![("shape", self.shape), ("scale_s", self.scale)]
    }
    fn ln_pdf(&self, x: f64, ln_x: f64) -> f64 {
        let ls = self.scale.ln();
        self.shape.ln() - ls + (self.shape - 1.0) * (ln_x - ls) - (x / self.scale).powf(self.shape)
    }
    fn cdf(&self, x: f64) -> f64 {
        -(-(x / self.scale).powf(self.shape)).exp_m1()
    }
    fn sample(&self, rng: &mut SeededRng) -> f64 {
        self.scale * (-open01(rng).ln()).powf(1.0 / self.shape)
    }
    fn mean(&self) -> f64 {
        self.scale * ln_gamma(1.0 + 1.0 / self.shape).exp()
    }
    fn cv(&self) -> f64 {
        let k = self.shape;
        ((ln_gamma(1.0 + 2.0 / k) - 2.0 * ln_gamma(1.0 + 1.0 / k)).exp() - 1.0).sqrt()
    }
    fn scaled(&self, c: f64) -> Box<dyn GapModel> {
        Box::new(Self {
            shape: self.shape,
            scale: self.scale * c,
        })
    }
    fn arrival(&self) -> Option<String> {
        None
    }
}
