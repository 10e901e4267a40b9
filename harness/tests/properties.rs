//! Property tests of the statistics and energy attribution.

use hdrhistogram::Histogram;
use oae_harness::energy::{Work, attribute};
use oae_harness::stats::{Stat, ci_ranks, quantile};
use proptest::prelude::*;

fn samples() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0.001f64..1e5, 1..400)
}

proptest! {
    #[test]
    fn percentiles_are_monotone_in_p(mut v in samples(), a in 0.0f64..1.0, b in 0.0f64..1.0) {
        v.sort_by(f64::total_cmp);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(quantile(&v, lo) <= quantile(&v, hi));
    }

    #[test]
    fn every_interval_contains_its_estimate(v in samples(), conf in 0.6f64..0.999) {
        let s = Stat::from_samples(v, conf).unwrap();
        for e in [&s.mean, &s.p50, &s.p90, &s.p95, &s.p99] {
            if let Some(lo) = e.ci_lo { prop_assert!(lo <= e.value, "{e:?}"); }
            if let Some(hi) = e.ci_hi { prop_assert!(e.value <= hi, "{e:?}"); }
            prop_assert_eq!(e.insufficient, e.ci_lo.is_none() || e.ci_hi.is_none());
        }
        prop_assert!(s.min <= s.p50.value && s.p99.value <= s.max);
    }

    #[test]
    fn ci_ranks_are_ordered_and_widen_with_confidence(n in 1usize..2000, p in 0.01f64..0.99) {
        let (l90, u90) = ci_ranks(n, p, 0.90);
        let (l99, u99) = ci_ranks(n, p, 0.99);
        if let (Some(l), Some(u)) = (l90, u90) { prop_assert!(l <= u && u <= n); }
        if let (Some(a), Some(b)) = (l99, l90) { prop_assert!(a <= b); }
        if let (Some(a), Some(b)) = (u99, u90) { prop_assert!(a >= b); }
    }

    #[test]
    fn attribution_conserves_energy(
        powers in prop::collection::vec(0.0f64..300.0, 2..60),
        reqs in prop::collection::vec((0.0f64..10.0, 0.0f64..3.0, any::<bool>(), 0.0f64..1.0, 0u32..200, 0u32..100), 0..80),
        w in (0.0f64..4.0, 5.0f64..10.0),
        idle in prop::option::of(0.0f64..200.0),
    ) {
        let dt = 10.0 / (powers.len() - 1) as f64;
        let mut e = 0.0;
        let samples: Vec<(f64, f64)> = powers.iter().enumerate().map(|(i, p)| {
            if i > 0 { e += p * dt; }
            (i as f64 * dt, e)
        }).collect();
        let works: Vec<Option<Work>> = reqs.iter().map(|&(s, d, served, f, p, q)| served.then_some(Work {
            start: s, first_token: Some(s + f * d), end: s + d, prefill: f64::from(p), decode: f64::from(q),
        })).collect();
        let a = attribute(&samples, &works, w.0, w.1.min(samples.last().unwrap().0), idle).unwrap();
        let total: f64 = a.active_j.iter().flatten().sum::<f64>() + a.gap_j;
        prop_assert!((total - a.window_j).abs() <= 1e-9 * a.window_j.max(1.0));
        prop_assert!(a.conserves());
        prop_assert!(a.active_j.iter().flatten().all(|&x| x >= -1e-12));
        prop_assert!(a.amortized_j(0.0).iter().zip(&a.active_j).all(|(m, x)| m.is_some() == x.is_some()));
        // Phases partition each request's energy; the time-share sensitivity conserves too.
        for i in 0..works.len() {
            if let Some(x) = a.active_j[i] {
                prop_assert!((a.prefill_j[i].unwrap() + a.decode_j[i].unwrap() - x).abs() <= 1e-9 * x.max(1.0));
            }
        }
        let ts: f64 = a.time_share_j.iter().flatten().sum();
        prop_assert!((ts - a.busy_j).abs() <= 1e-9 * a.busy_j.max(1.0));
        // With a baseline, dynamic + idle share = active for each request, in total.
        if let Some(p) = idle {
            let dyn_sum: f64 = a.dyn_j.iter().flatten().sum();
            let busy_idle = a.busy_j - dyn_sum;
            prop_assert!(busy_idle <= p * (w.1 - w.0) + 1e-6);
        }
    }

    #[test]
    fn merging_histograms_equals_the_histogram_of_the_union(
        a in prop::collection::vec(1u64..3_600_000_000, 0..300),
        b in prop::collection::vec(1u64..3_600_000_000, 0..300),
    ) {
        let h = || Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        let (mut ha, mut hb, mut hu) = (h(), h(), h());
        a.iter().for_each(|&x| { ha.record(x).unwrap(); hu.record(x).unwrap(); });
        b.iter().for_each(|&x| { hb.record(x).unwrap(); hu.record(x).unwrap(); });
        let merged = oae_harness::histograms::merge_logs(&[
            oae_harness::histograms::to_log(&[("m|w|e2e_us".to_string(), 0.0, 1.0, ha)]).unwrap(),
            oae_harness::histograms::to_log(&[("m|w|e2e_us".to_string(), 5.0, 1.0, hb)]).unwrap(),
        ]).unwrap();
        let m = &merged["m|w|e2e_us"];
        prop_assert_eq!(m.len(), hu.len());
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            prop_assert_eq!(m.value_at_quantile(q), hu.value_at_quantile(q));
        }
    }
}

proptest! {
    // A coverage estimate from 400 trials misses its tolerance with small probability, so the
    // seed is fixed: CI is deterministic, and the cases still span p, n and confidence.
    #![proptest_config(ProptestConfig {
        cases: 12,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0ae_c0de),
        ..ProptestConfig::default()
    })]

    /// Simulated coverage of the order-statistic interval, over random percentiles, sample
    /// sizes and confidence levels, on skewed (exponential) data: at least nominal minus a
    /// tolerance of 3.5 points (≈ 3 binomial standard errors over 400 trials). A missing bound
    /// (`insufficient`) counts as unbounded on that side, as a reader must take it.
    #[test]
    fn order_statistic_intervals_reach_nominal_coverage(
        p in 0.5f64..0.99,
        n in 20usize..400,
        conf in prop::sample::select(vec![0.90, 0.95]),
        seed in any::<u64>(),
    ) {
        use oae_workloads::rng::{open01, seeded};
        let truth = -(1.0 - p).ln();
        let mut rng = seeded(seed, &["coverage-prop"]);
        let trials = 400;
        let mut covered = 0;
        for _ in 0..trials {
            let mut v: Vec<f64> = (0..n).map(|_| -open01(&mut rng).ln()).collect();
            v.sort_by(f64::total_cmp);
            let e = oae_harness::stats::quantile_ci(&v, p, conf);
            if e.ci_lo.unwrap_or(f64::NEG_INFINITY) <= truth && truth <= e.ci_hi.unwrap_or(f64::INFINITY) {
                covered += 1;
            }
        }
        let rate = covered as f64 / trials as f64;
        prop_assert!(rate >= conf - 0.035, "coverage {rate} < {conf} - 0.035 (p {p}, n {n})");
    }
}
