//! Exponential gaps: a Poisson process. MLE rate = 1 / mean gap.

use super::{GapFitter, GapModel, Gaps};
use crate::rng::{SeededRng, exponential};

pub(super) const FIT: GapFitter = GapFitter {
    name: "exponential",
    params: 1,
    fit,
};

#[derive(Debug, Clone)]
pub(super) struct Exponential {
    pub(super) rate: f64,
}

fn fit(g: &Gaps) -> Option<Box<dyn GapModel>> {
    Some(Box::new(Exponential { rate: 1.0 / g.mean }))
}

impl GapModel for Exponential {
    fn name(&self) -> &'static str {
        FIT.name
    }
    fn params(&self) -> Vec<(&'static str, f64)> {
        vec![("rate_qps", self.rate)]
    }
    fn ln_pdf(&self, x: f64, _ln_x: f64) -> f64 {
        self.rate.ln() - self.rate * x
    }
    fn cdf(&self, x: f64) -> f64 {
        -(-self.rate * x).exp_m1()
    }
    fn sample(&self, rng: &mut SeededRng) -> f64 {
        exponential(rng, 1.0 / self.rate)
    }
    fn mean(&self) -> f64 {
        1.0 / self.rate
    }
    fn cv(&self) -> f64 {
        1.0
    }
    fn scaled(&self, c: f64) -> Box<dyn GapModel> {
        Box::new(Self { rate: self.rate / c })
    }
    fn arrival(&self) -> Option<String> {
        Some(format!("{{ process = \"poisson\", rate_qps = {:.6} }}", self.rate))
    }
}
