//! Energy attribution speed. Target (issue: energy and carbon): 100k requests over a
//! one-hour timeline in ≤ 1 s.
//!
//! Timeline: one meter sampled at 20 Hz for an hour (72,001 samples, power varying between
//! 20 and 80 W). Requests: 100,000 Poisson arrivals over the hour (27.8 req/s), service times
//! exponential with mean 60 ms, served by up to 4 overlapping workers' worth of concurrency
//! (intervals overlap freely), 1% never served; token-work weights with a prefill/decode
//! split and an idle baseline, as in a real run.
//!
//! `cargo bench -p oae-harness --bench attribution`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use oae_core::rng::{exponential, open01, seeded};
use oae_harness::energy::{Work, attribute};

fn bench(c: &mut Criterion) {
    let mut rng = seeded(1, &["attribution-bench"]);
    let hz = 20.0;
    let n_samples = (3600.0 * hz) as usize + 1;
    let mut e = 0.0;
    let samples: Vec<(f64, f64)> = (0..n_samples)
        .map(|i| {
            if i > 0 {
                e += (20.0 + 60.0 * open01(&mut rng)) / hz;
            }
            (i as f64 / hz, e)
        })
        .collect();
    let mut t = 0.0;
    let intervals: Vec<Option<Work>> = (0..100_000)
        .map(|_| {
            t += exponential(&mut rng, 3600.0 / 100_000.0);
            let s = t.min(3599.0);
            (open01(&mut rng) >= 0.01).then(|| {
                let e = (s + exponential(&mut rng, 0.06)).min(3600.0);
                Work {
                    start: s,
                    first_token: Some(s + 0.2 * (e - s)),
                    end: e,
                    prefill: 16.0 + 112.0 * open01(&mut rng),
                    decode: 16.0 + 48.0 * open01(&mut rng),
                }
            })
        })
        .collect();
    let mut g = c.benchmark_group("attribution");
    g.sample_size(10);
    g.bench_function("100k requests, 1 h timeline at 20 Hz", |b| {
        b.iter(|| {
            let a = attribute(black_box(&samples), black_box(&intervals), 0.0, 3600.0, Some(25.0)).unwrap();
            assert!(a.conservation_error_j.abs() < 1e-6 * a.window_j);
            a.gap_j
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
