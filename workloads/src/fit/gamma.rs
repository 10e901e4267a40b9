//! Gamma gaps (shape k, scale θ). MLE: k solves ln k − ψ(k) = ln(mean) − mean(ln x) (Newton
//! from Minka's closed-form start), θ = mean / k.

use super::special::{digamma, gamma_pq, ln_gamma, trigamma};
use super::{GapFitter, GapModel, Gaps};
use crate::rng::{SeededRng, gamma};

pub(super) const FIT: GapFitter = GapFitter {
    name: "gamma",
    params: 2,
    fit,
};

#[derive(Debug, Clone)]
pub(super) struct Gamma {
    pub(super) shape: f64,
    pub(super) scale: f64,
}

fn fit(g: &Gaps) -> Option<Box<dyn GapModel>> {
    let s = g.mean.ln() - g.mean_ln;
    if s.partial_cmp(&1e-12) != Some(std::cmp::Ordering::Greater) {
        return None; // all gaps equal: no finite shape
    }
    // Minka (2002), "Estimating a Gamma distribution", eq. 5 start, then Newton in k.
    let mut k = (3.0 - s + ((s - 3.0).powi(2) + 24.0 * s).sqrt()) / (12.0 * s);
    for _ in 0..100 {
        let f = k.ln() - digamma(k) - s;
        let df = 1.0 / k - trigamma(k);
        let next = (k - f / df).max(k / 10.0);
        let done = ((next - k) / k).abs() < 1e-12;
        k = next;
        if done {
            break;
        }
    }
    (k.is_finite() && k > 0.0).then(|| {
        Box::new(Gamma {
            shape: k,
            scale: g.mean / k,
        }) as Box<dyn GapModel>
    })
}

impl GapModel for Gamma {
    fn name(&self) -> &'static str {
        FIT.name
    }
    fn params(&self) -> Vec<(&'static str, f64)> {
        vec![("shape", self.shape), ("scale_s", self.scale)]
    }
    fn ln_pdf(&self, x: f64, ln_x: f64) -> f64 {
        -ln_gamma(self.shape) - self.shape * self.scale.ln() + (self.shape - 1.0) * ln_x - x / self.scale
    }
    fn cdf(&self, x: f64) -> f64 {
        gamma_pq(self.shape, x / self.scale).0
    }
    fn sample(&self, rng: &mut SeededRng) -> f64 {
        gamma(rng, self.shape, self.scale)
    }
    fn mean(&self) -> f64 {
        self.shape * self.scale
    }
    fn cv(&self) -> f64 {
        1.0 / self.shape.sqrt()
    }
    fn scaled(&self, c: f64) -> Box<dyn GapModel> {
        Box::new(Self {
            shape: self.shape,
            scale: self.scale * c,
        })
    }
    fn arrival(&self) -> Option<String> {
        Some(format!(
            "{{ process = \"gamma\", rate_qps = {:.6}, cv = {:.4} }}",
            1.0 / self.mean(),
            self.cv()
        ))
    }
}
