//! Two-phase hyperexponential gaps: with probability `p_fast` a gap is Exp(`rate_fast`),
//! otherwise Exp(`rate_slow`). Fitted by EM (on an evenly spaced subsample of the sorted gaps
//! when there are more than 200,000, which keeps every quantile). Clearly separated rates are
//! the signature of on/off traffic: short gaps inside bursts, long silences between them —
//! [`super::onoff_structure`] builds on this fit.

use super::{GapFitter, GapModel, Gaps};
use crate::rng::{SeededRng, exponential, open01};

pub(super) const FIT: GapFitter = GapFitter {
    name: "hyperexponential",
    params: 3,
    fit,
};

#[derive(Debug, Clone)]
pub(crate) struct HyperExp {
    pub(crate) p_fast: f64,
    pub(crate) rate_fast: f64,
    pub(crate) rate_slow: f64,
}

fn fit(g: &Gaps) -> Option<Box<dyn GapModel>> {
    em(g).map(|h| Box::new(h) as Box<dyn GapModel>)
}

/// The EM fit, or `None` when the gaps have no two-scale structure to find.
pub(crate) fn em(g: &Gaps) -> Option<HyperExp> {
    let n = g.xs.len();
    if n < 4 {
        return None;
    }
    let stride = n.div_ceil(200_000);
    let xs: Vec<f64> = g.xs.iter().step_by(stride).copied().collect();
    // Start: fast phase from the lower half, slow phase from the top decile.
    let half = &xs[..xs.len() / 2];
    let top = &xs[xs.len() * 9 / 10..];
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (mut p, mut lf, mut ls): (f64, f64, f64) = (0.9, 1.0 / mean(half).max(1e-12), 1.0 / mean(top).max(1e-12));
    if lf.partial_cmp(&(ls * 1.0001)) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let mut last_ll = f64::NEG_INFINITY;
    for _ in 0..500 {
        let (mut sr, mut srx, mut sx, mut ll) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let (lpf, lps) = (p.ln() + lf.ln(), (1.0 - p).ln() + ls.ln());
        for &x in &xs {
            let (a, b) = (lpf - lf * x, lps - ls * x);
            let m = a.max(b);
            let lse = m + ((a - m).exp() + (b - m).exp()).ln();
            let r = (a - lse).exp();
            sr += r;
            srx += r * x;
            sx += x;
            ll += lse;
        }
        let m = xs.len() as f64;
        p = (sr / m).clamp(1e-9, 1.0 - 1e-9);
        lf = sr / srx.max(1e-300);
        ls = (m - sr) / (sx - srx).max(1e-300);
        if !(lf.is_finite() && ls.is_finite()) {
            return None;
        }
        if (ll - last_ll).abs() <= 1e-10 * ll.abs() {
            break;
        }
        last_ll = ll;
    }
    if lf < ls {
        std::mem::swap(&mut lf, &mut ls);
        p = 1.0 - p;
    }
    Some(HyperExp {
        p_fast: p,
        rate_fast: lf,
        rate_slow: ls,
    })
}

impl HyperExp {
    /// The gap length above which a gap more likely belongs to the slow phase.
    pub(crate) fn threshold_s(&self) -> f64 {
        let (p, a, b) = (self.p_fast, self.rate_fast, self.rate_slow);
        ((p * a) / ((1.0 - p) * b)).ln().max(0.0) / (a - b)
    }
}

impl GapModel for HyperExp {
    fn name(&self) -> &'static str {
        FIT.name
    }
    fn params(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("p_fast", self.p_fast),
            ("rate_fast_qps", self.rate_fast),
            ("rate_slow_qps", self.rate_slow),
        ]
    }
    fn ln_pdf(&self, x: f64, _ln_x: f64) -> f64 {
        let a = self.p_fast.ln() + self.rate_fast.ln() - self.rate_fast * x;
        let b = (1.0 - self.p_fast).ln() + self.rate_slow.ln() - self.rate_slow * x;
        let m = a.max(b);
        m + ((a - m).exp() + (b - m).exp()).ln()
    }
    fn cdf(&self, x: f64) -> f64 {
        1.0 - self.p_fast * (-self.rate_fast * x).exp() - (1.0 - self.p_fast) * (-self.rate_slow * x).exp()
    }
    fn sample(&self, rng: &mut SeededRng) -> f64 {
        let rate = if open01(rng) < self.p_fast {
            self.rate_fast
        } else {
            self.rate_slow
        };
        exponential(rng, 1.0 / rate)
    }
    fn mean(&self) -> f64 {
        self.p_fast / self.rate_fast + (1.0 - self.p_fast) / self.rate_slow
    }
    fn cv(&self) -> f64 {
        let m2 = 2.0 * (self.p_fast / self.rate_fast.powi(2) + (1.0 - self.p_fast) / self.rate_slow.powi(2));
        let m = self.mean();
        (m2 / (m * m) - 1.0).max(0.0).sqrt()
    }
    fn scaled(&self, c: f64) -> Box<dyn GapModel> {
        Box::new(Self {
            p_fast: self.p_fast,
            rate_fast: self.rate_fast / c,
            rate_slow: self.rate_slow / c,
        })
    }
    fn arrival(&self) -> Option<String> {
        None
    }
}
