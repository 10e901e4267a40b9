//! Lognormal gaps: ln x ~ N(μ, σ²). MLE: μ = mean(ln x), σ² = mean((ln x − μ)²).

use super::special::normal_cdf;
use super::{GapFitter, GapModel, Gaps};
use crate::rng::{SeededRng, standard_normal};

pub(super) const FIT: GapFitter = GapFitter {
    name: "lognormal",
    params: 2,
    fit,
};

#[derive(Debug, Clone)]
pub(super) struct Lognormal {
    pub(super) mu: f64,
    pub(super) sigma: f64,
}

fn fit(g: &Gaps) -> Option<Box<dyn GapModel>> {
    (g.sd_ln > 1e-12).then(|| {
        Box::new(Lognormal {
            mu: g.mean_ln,
            sigma: g.sd_ln,
        }) as Box<dyn GapModel>
    })
}

impl GapModel for Lognormal {
    fn name(&self) -> &'static str {
        FIT.name
    }
    fn params(&self) -> Vec<(&'static str, f64)> {
        vec![("mu_ln_s", self.mu), ("sigma", self.sigma)]
    }
    fn ln_pdf(&self, _x: f64, ln_x: f64) -> f64 {
        let z = (ln_x - self.mu) / self.sigma;
        -ln_x - self.sigma.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln() - 0.5 * z * z
    }
    fn cdf(&self, x: f64) -> f64 {
        normal_cdf((x.ln() - self.mu) / self.sigma)
    }
    fn sample(&self, rng: &mut SeededRng) -> f64 {
        (self.mu + self.sigma * standard_normal(rng)).exp()
    }
    fn mean(&self) -> f64 {
        (self.mu + self.sigma * self.sigma / 2.0).exp()
    }
    fn cv(&self) -> f64 {
        (self.sigma * self.sigma).exp_m1().sqrt()
    }
    fn scaled(&self, c: f64) -> Box<dyn GapModel> {
        Box::new(Self {
            mu: self.mu + c.ln(),
            sigma: self.sigma,
        })
    }
    fn arrival(&self) -> Option<String> {
        None
    }
}
