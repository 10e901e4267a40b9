//! Bootstrap over per-request records: resample a cell's measured requests with replacement
//! and recompute the means the cost model needs (`s`, `a`, `e_dyn`, and the energy views).
//!
//! With two or more trials in a cell the bootstrap is **hierarchical**: each draw resamples
//! the trials, then the requests within each chosen trial, so the intervals carry the
//! run-to-run variance that requests of one run cannot show. With one trial it is the plain
//! bootstrap over requests.
//!
//! Each draw has its own random stream derived from (seed, cell, draw), so results do not
//! depend on how many threads computed them. Draws are split across the available cores.

use crate::rundir::Sample;

/// Means of one resample (or of the sample itself).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Means {
    /// Mean service time, s.
    pub service_s: f64,
    /// Share of good requests.
    pub attainment: f64,
    /// Mean dynamic energy, J.
    pub dyn_j: f64,
    /// Mean active energy, J.
    pub active_j: f64,
    /// Mean amortized energy, J.
    pub amortized_j: f64,
    /// Share of failed requests.
    pub failed: f64,
    /// Mean answer quality of the scored ok requests (NaN: none scored).
    pub quality: f64,
}

#[derive(Default, Clone, Copy)]
struct Acc {
    sum: [f64; 7],
    n: [u32; 7],
}

impl Acc {
    #[inline]
    fn add(&mut self, s: &Sample) {
        let v = [
            s.service_s,
            s.good,
            s.dyn_j,
            s.active_j,
            s.amortized_j,
            s.failed,
            s.quality,
        ];
        for (k, x) in v.into_iter().enumerate() {
            if !x.is_nan() {
                self.sum[k] += x;
                self.n[k] += 1;
            }
        }
    }

    fn means(&self) -> Means {
        let m = |k: usize| {
            if self.n[k] == 0 {
                f64::NAN
            } else {
                self.sum[k] / self.n[k] as f64
            }
        };
        Means {
            service_s: m(0),
            attainment: m(1),
            dyn_j: m(2),
            active_j: m(3),
            amortized_j: m(4),
            failed: m(5),
            quality: m(6),
        }
    }
}

/// Means of all samples (NaN fields are left out of their own mean).
pub fn means(samples: &[Sample]) -> Means {
    let mut acc = Acc::default();
    for s in samples {
        acc.add(s);
    }
    acc.means()
}

/// SplitMix64: a small, fast generator with good statistical quality for resampling indices.
#[derive(Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A stream for `(seed, a, b)`.
    pub fn new(seed: u64, a: u64, b: u64) -> Self {
        let mut s = SplitMix(seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03));
        s.next_u64();
        s
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform index in `0..n` (Lemire's multiply-shift; bias below 2^-32 for n < 2^32).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Indices of `items` by trial, in trial order.
pub fn by_trial<T>(items: &[T], trial: impl Fn(&T) -> u32) -> Vec<Vec<usize>> {
    let mut groups: std::collections::BTreeMap<u32, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, x) in items.iter().enumerate() {
        groups.entry(trial(x)).or_default().push(i);
    }
    groups.into_values().collect()
}

/// The indices of one bootstrap draw into `n` items grouped as `groups`: plain resampling
/// of all `n` with one group, hierarchical (trials, then items within each) with more.
#[inline]
pub fn draw_indices(rng: &mut SplitMix, n: usize, groups: &[Vec<usize>], mut each: impl FnMut(usize)) {
    if groups.len() < 2 {
        for _ in 0..n {
            each(rng.below(n));
        }
        return;
    }
    for _ in 0..groups.len() {
        let g = &groups[rng.below(groups.len())];
        for _ in 0..g.len() {
            each(g[rng.below(g.len())]);
        }
    }
}

/// `draws` bootstrap resamples of `samples`, each reduced to its [`Means`]: hierarchical
/// when the samples come from two or more trials.
pub fn resample_means(samples: &[Sample], draws: usize, seed: u64, stream: u64) -> Vec<Means> {
    if samples.is_empty() {
        return vec![Means::default(); draws];
    }
    let groups = by_trial(samples, |s| s.trial);
    let groups = &groups;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(draws.max(1));
    let mut out = vec![Means::default(); draws];
    let chunk = draws.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for (c, part) in out.chunks_mut(chunk).enumerate() {
            scope.spawn(move || {
                for (j, slot) in part.iter_mut().enumerate() {
                    let draw = (c * chunk + j) as u64;
                    let mut rng = SplitMix::new(seed, stream, draw);
                    let mut acc = Acc::default();
                    draw_indices(&mut rng, samples.len(), groups, |i| acc.add(&samples[i]));
                    *slot = acc.means();
                }
            });
        }
    });
    out
}

/// The `q`-quantile of `values` (linear interpolation between order statistics); NaNs are
/// left out; `None` when nothing is left.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(quantile_sorted(&v, q))
}

/// The `q`-quantile of sorted, NaN-free `v`.
pub fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    if i + 1 < v.len() {
        if v[i] == v[i + 1] {
            v[i]
        } else {
            v[i] + (v[i + 1] - v[i]) * frac
        }
    } else {
        v[i]
    }
}

/// Two-sided percentile interval of bootstrap draws at `confidence`.
pub fn interval(draws: &[f64], confidence: f64) -> (Option<f64>, Option<f64>) {
    let alpha = (1.0 - confidence) / 2.0;
    (quantile(draws, alpha), quantile(draws, 1.0 - alpha))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(service_s: f64, good: f64) -> Sample {
        Sample {
            service_s,
            good,
            dyn_j: 1.0,
            active_j: 2.0,
            amortized_j: 3.0,
            failed: 0.0,
            ..Sample::default()
        }
    }

    #[test]
    fn means_leave_out_missing_values() {
        let mut s = vec![sample(1.0, 1.0), sample(3.0, 0.0)];
        s.push(Sample {
            service_s: f64::NAN,
            good: 0.0,
            dyn_j: f64::NAN,
            active_j: f64::NAN,
            amortized_j: f64::NAN,
            failed: 1.0,
            ..Sample::default()
        });
        let m = means(&s);
        assert_eq!(m.service_s, 2.0);
        assert!((m.attainment - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.failed - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.dyn_j, 1.0);
    }

    #[test]
    fn bootstrap_interval_covers_the_mean_and_is_reproducible() {
        let s: Vec<Sample> = (0..400).map(|i| sample((i % 20) as f64, (i % 2) as f64)).collect();
        let a = resample_means(&s, 500, 7, 0);
        let b = resample_means(&s, 500, 7, 0);
        assert_eq!(a, b);
        let service: Vec<f64> = a.iter().map(|m| m.service_s).collect();
        let (lo, hi) = interval(&service, 0.95);
        let (lo, hi) = (lo.unwrap(), hi.unwrap());
        // Mean 9.5, sd 5.77, n 400: standard error 0.29, 95% half-width ≈ 0.57.
        assert!(lo < 9.5 && 9.5 < hi, "{lo} {hi}");
        assert!((hi - lo) > 0.8 && (hi - lo) < 1.5, "{lo} {hi}");
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(&[3.0, 1.0, 2.0, f64::NAN], 0.5), Some(2.0));
        assert_eq!(quantile(&[1.0, 2.0], 0.25), Some(1.25));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
