//! Statistics with confidence intervals, for the small samples low-QPS runs produce.
//!
//! Percentiles are nearest-rank order statistics with **distribution-free** confidence
//! intervals from the binomial distribution of ranks: no normality assumption, valid for
//! any continuous latency distribution, and honest about small n — when no pair of order
//! statistics reaches the requested coverage, the missing bound is `None` and the estimate
//! is flagged `insufficient` rather than printed as if it were known. Means get a
//! percentile-bootstrap interval (seeded, so summaries are reproducible), or a normal
//! interval for very large n where the bootstrap would be slow and the CLT holds.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::rng::seeded;

/// Default two-sided confidence level.
pub const CONFIDENCE: f64 = 0.95;

/// Above this many samples the mean's CI is normal-theory instead of bootstrap.
const BOOTSTRAP_MAX_N: usize = 20_000;
const BOOTSTRAP_RESAMPLES: usize = 1_000;

/// A point estimate with its confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Estimate {
    /// The estimate (NaN, written `null`, when there is no sample).
    #[serde(with = "crate::rundir::nan_as_null")]
    pub value: f64,
    /// Lower bound; `None` when n is too small to bound it at the requested confidence.
    #[serde(deserialize_with = "crate::rundir::present")]
    pub ci_lo: Option<f64>,
    /// Upper bound; `None` when n is too small to bound it at the requested confidence.
    #[serde(deserialize_with = "crate::rundir::present")]
    pub ci_hi: Option<f64>,
    /// A bound is missing: the sample is too small for this statistic at this confidence.
    pub insufficient: bool,
}

/// Summary of one metric over n samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stat {
    /// Sample count.
    pub n: usize,
    /// Two-sided confidence level of every interval here.
    pub confidence: f64,
    /// Mean, with a bootstrap (or normal, for very large n) interval.
    pub mean: Estimate,
    /// How the mean's interval was computed: `bootstrap` or `normal`.
    pub mean_ci_method: String,
    /// Median.
    pub p50: Estimate,
    /// 90th percentile.
    pub p90: Estimate,
    /// 95th percentile.
    pub p95: Estimate,
    /// 99th percentile.
    pub p99: Estimate,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Sample standard deviation (n − 1).
    pub stddev: f64,
}

impl Stat {
    /// Summarises `samples` (non-finite values are ignored); `None` when there are none.
    pub fn from_samples(samples: impl IntoIterator<Item = f64>, confidence: f64) -> Option<Stat> {
        let mut v: Vec<f64> = samples.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let (mean_est, method) = mean_ci(&v, mean, var.sqrt(), confidence);
        Some(Stat {
            n,
            confidence,
            mean: mean_est,
            mean_ci_method: method.into(),
            p50: quantile_ci(&v, 0.50, confidence),
            p90: quantile_ci(&v, 0.90, confidence),
            p95: quantile_ci(&v, 0.95, confidence),
            p99: quantile_ci(&v, 0.99, confidence),
            min: v[0],
            max: v[n - 1],
            stddev: var.sqrt(),
        })
    }
}

/// Resampled values the hierarchical bootstrap may draw in all (draws × values), to keep it
/// fast on large cells.
const HIERARCHICAL_BUDGET: usize = 20_000_000;

impl Stat {
    /// Summarises samples grouped by trial (one group per replay of a cell). Point estimates
    /// are over all samples. With two or more non-empty groups every interval comes from a
    /// **hierarchical bootstrap** — resample the trials, then the samples within each chosen
    /// trial — so run-to-run variance widens it; a percentile's interval is the wider of that
    /// and its order-statistic interval, and a percentile too extreme to bound stays
    /// `insufficient`. With identical trials the intervals are the plain bootstrap's; with
    /// like but independent trials up to √2 wider (the within-trial noise shows at both
    /// stages): conservative, as a regression gate wants. With one group this is
    /// [`Stat::from_samples`].
    pub fn from_groups(groups: Vec<Vec<f64>>, confidence: f64) -> Option<Stat> {
        let groups: Vec<Vec<f64>> = groups
            .into_iter()
            .map(|g| g.into_iter().filter(|x| x.is_finite()).collect::<Vec<f64>>())
            .filter(|g| !g.is_empty())
            .collect();
        let pooled = Stat::from_samples(groups.iter().flatten().copied(), confidence)?;
        if groups.len() < 2 {
            return Some(pooled);
        }
        Some(hierarchical(pooled, &groups, confidence))
    }
}

/// `pooled` with its intervals replaced by hierarchical-bootstrap intervals over `groups`.
fn hierarchical(mut pooled: Stat, groups: &[Vec<f64>], confidence: f64) -> Stat {
    let n: usize = groups.iter().map(Vec::len).sum();
    let draws = (HIERARCHICAL_BUDGET / n.max(1)).clamp(100, BOOTSTRAP_RESAMPLES);
    let mut rng = seeded(n as u64, &["bootstrap-hierarchical", &groups.len().to_string()]);
    let qs = [0.50, 0.90, 0.95, 0.99];
    let mut stats: Vec<[f64; 5]> = Vec::with_capacity(draws);
    let mut buf = Vec::with_capacity(n);
    for _ in 0..draws {
        buf.clear();
        for _ in 0..groups.len() {
            let g = &groups[(rng.next_u64() % groups.len() as u64) as usize];
            buf.extend((0..g.len()).map(|_| g[(rng.next_u64() % g.len() as u64) as usize]));
        }
        buf.sort_by(f64::total_cmp);
        let mean = buf.iter().sum::<f64>() / buf.len() as f64;
        stats.push([
            mean,
            quantile(&buf, qs[0]),
            quantile(&buf, qs[1]),
            quantile(&buf, qs[2]),
            quantile(&buf, qs[3]),
        ]);
    }
    let a = (1.0 - confidence) / 2.0;
    let interval = |k: usize| {
        let mut v: Vec<f64> = stats.iter().map(|s| s[k]).collect();
        v.sort_by(f64::total_cmp);
        (quantile(&v, a), quantile(&v, 1.0 - a))
    };
    let (lo, hi) = interval(0);
    pooled.mean = Estimate {
        value: pooled.mean.value,
        ci_lo: Some(lo.min(pooled.mean.value)),
        ci_hi: Some(hi.max(pooled.mean.value)),
        insufficient: false,
    };
    pooled.mean_ci_method = "hierarchical-bootstrap".into();
    for (k, e) in [&mut pooled.p50, &mut pooled.p90, &mut pooled.p95, &mut pooled.p99]
        .into_iter()
        .enumerate()
    {
        if e.insufficient {
            continue;
        }
        let (lo, hi) = interval(k + 1);
        e.ci_lo = e.ci_lo.map(|l| l.min(lo));
        e.ci_hi = e.ci_hi.map(|h| h.max(hi));
    }
    pooled
}

/// Nearest-rank quantile of sorted data: the ⌈p·n⌉-th smallest value.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

/// Quantile `p` of sorted data with a distribution-free two-sided interval.
///
/// With B ~ Binomial(n, p) the number of samples at or below the true quantile, the pair of
/// order statistics (x₍ₗ₎, x₍ᵤ₎) covers it with probability P(l ≤ B ≤ u−1). We take the
/// largest l with P(B ≤ l−1) ≤ α/2 and the smallest u with P(B ≤ u−1) ≥ 1 − α/2, so coverage
/// is at least 1 − α. A bound that no rank satisfies is `None`.
pub fn quantile_ci(sorted: &[f64], p: f64, confidence: f64) -> Estimate {
    let value = quantile(sorted, p);
    let (lo_rank, hi_rank) = ci_ranks(sorted.len(), p, confidence);
    let ci_lo = lo_rank.map(|r| sorted[r - 1].min(value));
    let ci_hi = hi_rank.map(|r| sorted[r - 1].max(value));
    Estimate {
        value,
        ci_lo,
        ci_hi,
        insufficient: ci_lo.is_none() || ci_hi.is_none(),
    }
}

/// 1-based ranks (l, u) of the order statistics bounding quantile `p` among `n` samples at
/// `confidence` (see [`quantile_ci`]); `None` where no rank reaches the coverage.
pub fn ci_ranks(n: usize, p: f64, confidence: f64) -> (Option<usize>, Option<usize>) {
    let half_alpha = (1.0 - confidence) / 2.0;
    let cdf = binomial_cdf(n, p); // cdf[k] = P(B <= k), k = 0..=n
    let lo = (1..=n).rev().find(|&j| cdf[j - 1] <= half_alpha);
    let hi = (1..=n).find(|&j| cdf[j - 1] >= 1.0 - half_alpha);
    (lo, hi)
}

/// How many samples a percentile needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleSizePlan {
    /// Fewest samples for which both CI bounds exist (below: `insufficient`).
    pub min_bounded: usize,
    /// Fewest samples for which the CI's order statistics lie within ± width/2 of `p`
    /// in quantile level.
    pub for_width: usize,
}

/// Sample sizes for quantile `p` (0–1) with a CI no wider than `width` (quantile levels, e.g.
/// 0.01 = ±0.5 percentile points) at `confidence`. Distribution-free: the ranks are exact
/// binomial ranks, the same ones [`quantile_ci`] uses.
pub fn plan_sample_size(p: f64, width: f64, confidence: f64) -> SampleSizePlan {
    let half_alpha = (1.0 - confidence) / 2.0;
    // Both bounds exist once P(B = n) and P(B = 0) are each at most α/2.
    let need = |q: f64| (half_alpha.ln() / q.ln()).ceil() as usize;
    let min_bounded = need(p).max(need(1.0 - p)).max(1);
    let fits = |n: usize| match ci_ranks(n, p, confidence) {
        (Some(l), Some(u)) => (u as f64 - l as f64) / n as f64 <= width,
        _ => false,
    };
    // Start from the normal approximation, step down while it still fits, then up until it does.
    let z = normal_quantile(1.0 - half_alpha);
    let mut n = ((2.0 * z / width).powi(2) * p * (1.0 - p))
        .ceil()
        .max(min_bounded as f64) as usize;
    while n > min_bounded && fits(n - 1) {
        n -= 1;
    }
    let step = (n / 200).max(1);
    while !fits(n) {
        n += step;
    }
    SampleSizePlan {
        min_bounded,
        for_width: n,
    }
}

/// P(B ≤ k) for k = 0..=n, B ~ Binomial(n, p), computed in log space (stable for large n).
fn binomial_cdf(n: usize, p: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    if p <= 0.0 {
        out.resize(n + 1, 1.0);
        return out;
    }
    if p >= 1.0 {
        out.resize(n, 0.0);
        out.push(1.0);
        return out;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut lpmf = n as f64 * lq;
    let mut acc = 0.0;
    for k in 0..=n {
        acc += lpmf.exp();
        out.push(acc.min(1.0));
        if k < n {
            lpmf += ((n - k) as f64).ln() - ((k + 1) as f64).ln() + lp - lq;
        }
    }
    out
}

fn mean_ci(sorted: &[f64], mean: f64, sd: f64, confidence: f64) -> (Estimate, &'static str) {
    let n = sorted.len();
    if n < 2 {
        return (
            Estimate {
                value: mean,
                ci_lo: None,
                ci_hi: None,
                insufficient: true,
            },
            "bootstrap",
        );
    }
    if n > BOOTSTRAP_MAX_N {
        let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
        let h = z * sd / (n as f64).sqrt();
        return (
            Estimate {
                value: mean,
                ci_lo: Some(mean - h),
                ci_hi: Some(mean + h),
                insufficient: false,
            },
            "normal",
        );
    }
    // Seeded from the data size so the same samples give the same interval every time.
    let mut rng = seeded(n as u64, &["bootstrap-mean"]);
    let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            let s: f64 = (0..n).map(|_| sorted[(rng.next_u64() % n as u64) as usize]).sum();
            s / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let a = (1.0 - confidence) / 2.0;
    let lo = quantile(&means, a).min(mean);
    let hi = quantile(&means, 1.0 - a).max(mean);
    (
        Estimate {
            value: mean,
            ci_lo: Some(lo),
            ci_hi: Some(hi),
            insufficient: false,
        },
        "bootstrap",
    )
}

/// Inverse standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let pl = 0.02425;
    if p < pl {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - pl {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::open01;

    #[test]
    fn nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 2.0);
        assert_eq!(quantile(&v, 0.51), 3.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
    }

    #[test]
    fn small_samples_are_flagged_insufficient() {
        let v: Vec<f64> = (1..=30).map(f64::from).collect();
        let p99 = quantile_ci(&v, 0.99, 0.95);
        assert!(p99.insufficient && p99.ci_hi.is_none());
        let p50 = quantile_ci(&v, 0.50, 0.95);
        assert!(!p50.insufficient);
        assert!(p50.ci_lo.unwrap() <= p50.value && p50.value <= p50.ci_hi.unwrap());
        // Textbook: n = 30 median 95% interval is (x10, x21).
        assert_eq!((p50.ci_lo, p50.ci_hi), (Some(10.0), Some(21.0)));
    }

    #[test]
    fn p95_needs_72_samples() {
        let make = |n: usize| -> Vec<f64> { (1..=n).map(|x| x as f64).collect() };
        assert!(quantile_ci(&make(71), 0.95, 0.95).insufficient);
        assert!(!quantile_ci(&make(72), 0.95, 0.95).insufficient);
    }

    #[test]
    fn order_statistic_ci_covers_at_nominal_rate() {
        // Uniform(0,1): the true p90 is 0.9. Count how often the interval covers it.
        let mut rng = seeded(11, &["coverage"]);
        let (trials, n) = (2000, 60);
        let mut covered = 0;
        for _ in 0..trials {
            let mut v: Vec<f64> = (0..n).map(|_| open01(&mut rng)).collect();
            v.sort_by(f64::total_cmp);
            let e = quantile_ci(&v, 0.9, 0.95);
            if e.ci_lo.unwrap_or(f64::NEG_INFINITY) <= 0.9 && 0.9 <= e.ci_hi.unwrap_or(f64::INFINITY) {
                covered += 1;
            }
        }
        let rate = covered as f64 / trials as f64;
        assert!(rate >= 0.93, "coverage {rate}");
    }

    #[test]
    fn stat_mean_ci_contains_mean_and_is_reproducible() {
        let v: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64).collect();
        let a = Stat::from_samples(v.clone(), CONFIDENCE).unwrap();
        let b = Stat::from_samples(v, CONFIDENCE).unwrap();
        assert_eq!(a, b);
        assert!(a.mean.ci_lo.unwrap() <= a.mean.value && a.mean.value <= a.mean.ci_hi.unwrap());
        assert!(a.p50.value <= a.p90.value && a.p90.value <= a.p95.value && a.p95.value <= a.p99.value);
    }

    #[test]
    fn sample_size_plan() {
        // p99 at 95%: both bounds need 0.99^n <= 0.025, i.e. n >= 368 (0.99^367 = 0.02501).
        let plan = plan_sample_size(0.99, 0.01, 0.95);
        assert_eq!(plan.min_bounded, 368);
        assert!(ci_ranks(367, 0.99, 0.95).1.is_none() && ci_ranks(368, 0.99, 0.95).1.is_some());
        // The planned n really gives a CI within the width, and it is near the normal estimate.
        let (l, u) = ci_ranks(plan.for_width, 0.99, 0.95);
        assert!((u.unwrap() - l.unwrap()) as f64 / plan.for_width as f64 <= 0.01);
        let normal = (2.0 * 1.96f64 / 0.01).powi(2) * 0.99 * 0.01;
        assert!(
            (plan.for_width as f64 / normal - 1.0).abs() < 0.15,
            "{} vs {normal}",
            plan.for_width
        );
        // The median is bounded almost at once.
        assert_eq!(plan_sample_size(0.5, 0.2, 0.95).min_bounded, 6);
    }

    #[test]
    fn hierarchical_intervals_widen_with_between_trial_spread() {
        let mut rng = seeded(5, &["h"]);
        let trial = |shift: f64, rng: &mut crate::rng::SeededRng| -> Vec<f64> {
            (0..200)
                .map(|_| 10.0 + shift + crate::rng::standard_normal(rng))
                .collect()
        };
        let one = trial(0.0, &mut rng);
        let same: Vec<Vec<f64>> = vec![one.clone(); 4];
        let spread: Vec<Vec<f64>> = [-3.0, 1.0, -1.0, 3.0].iter().map(|&s| trial(s, &mut rng)).collect();
        let width = |s: &Stat, e: fn(&Stat) -> &Estimate| e(s).ci_hi.unwrap() - e(s).ci_lo.unwrap();
        let plain = Stat::from_samples(same.iter().flatten().copied(), 0.95).unwrap();
        let h_same = Stat::from_groups(same.clone(), 0.95).unwrap();
        let h_spread = Stat::from_groups(spread, 0.95).unwrap();
        let (wp, ws, wd) = (
            width(&plain, |s| &s.mean),
            width(&h_same, |s| &s.mean),
            width(&h_spread, |s| &s.mean),
        );
        assert_eq!(h_same.mean_ci_method, "hierarchical-bootstrap");
        assert!(
            (ws / wp - 1.0).abs() < 0.15,
            "identical trials: the plain bootstrap's width ({ws} vs {wp})"
        );
        assert!(wd > 4.0 * ws, "spread trials: far wider ({wd} vs {ws})");
        assert!(width(&h_spread, |s| &s.p50) > 2.0 * width(&h_same, |s| &s.p50));
        for e in [&h_spread.mean, &h_spread.p50, &h_spread.p95] {
            assert!(e.ci_lo.unwrap() <= e.value && e.value <= e.ci_hi.unwrap(), "{e:?}");
        }
        // One group is exactly the plain statistics; empty groups do not count.
        assert_eq!(
            Stat::from_groups(vec![same[0].clone(), vec![]], 0.95),
            Stat::from_samples(same[0].clone(), 0.95)
        );
        assert!(Stat::from_groups(vec![vec![], vec![f64::NAN]], 0.95).is_none());
    }

    #[test]
    fn empty_and_nan() {
        assert!(Stat::from_samples(Vec::<f64>::new(), 0.95).is_none());
        assert_eq!(Stat::from_samples([f64::NAN, 2.0], 0.95).unwrap().n, 1);
    }

    #[test]
    fn normal_quantile_known_values() {
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-5);
        assert!(normal_quantile(0.5).abs() < 1e-12);
    }
}
