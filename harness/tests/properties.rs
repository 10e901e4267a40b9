//! Property tests of energy attribution and histogram merging.

use hdrhistogram::Histogram;
use oae_harness::energy::{Work, attribute};
use proptest::prelude::*;

proptest! {
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
