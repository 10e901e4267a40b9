//! Fitting recovers the parameters of the generator that made the gaps, and `gen` keeps a
//! trace's shape at the target rate.

use oae_core::rng::{exponential, gamma, open01, seeded, standard_normal};
use oae_workloads::Limit;
use oae_workloads::fit::{GenModel, fit, synthesize};
use proptest::prelude::*;

const N: usize = 4000;

fn param(report: &oae_workloads::fit::FitReport, model: &str, key: &str) -> f64 {
    let m = report.models.iter().find(|m| m.name == model).expect(model);
    m.params[key].as_f64().unwrap()
}

fn within(got: f64, want: f64, rel: f64) -> bool {
    (got / want - 1.0).abs() <= rel
}

proptest! {
    // Statistical tolerances fail with small probability on unlucky draws, so the seed is
    // fixed: CI is deterministic, and the cases still span the parameter ranges.
    #![proptest_config(ProptestConfig {
        cases: 12,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0ae_f17),
        ..ProptestConfig::default()
    })]

    #[test]
    fn gamma_parameters_are_recovered(shape in 0.3f64..5.0, scale in 0.01f64..100.0, seed in any::<u64>()) {
        let mut rng = seeded(seed, &["fit"]);
        let gaps: Vec<f64> = (0..N).map(|_| gamma(&mut rng, shape, scale)).collect();
        let r = fit(N as u64 + 1, &gaps).unwrap();
        prop_assert!(within(param(&r, "gamma", "shape"), shape, 0.1), "shape {} vs {shape}", param(&r, "gamma", "shape"));
        prop_assert!(within(param(&r, "gamma", "scale_s"), scale, 0.15));
        prop_assert!(r.models.iter().all(|m| m.delta_aic >= 0.0));
    }

    #[test]
    fn weibull_parameters_are_recovered(shape in 0.4f64..3.0, scale in 0.01f64..100.0, seed in any::<u64>()) {
        let mut rng = seeded(seed, &["fit"]);
        let gaps: Vec<f64> = (0..N).map(|_| scale * (-open01(&mut rng).ln()).powf(1.0 / shape)).collect();
        let r = fit(N as u64 + 1, &gaps).unwrap();
        prop_assert!(within(param(&r, "weibull", "shape"), shape, 0.08), "shape {} vs {shape}", param(&r, "weibull", "shape"));
        prop_assert!(within(param(&r, "weibull", "scale_s"), scale, 0.1));
    }

    #[test]
    fn lognormal_parameters_are_recovered(mu in -5.0f64..5.0, sigma in 0.2f64..2.5, seed in any::<u64>()) {
        let mut rng = seeded(seed, &["fit"]);
        let gaps: Vec<f64> = (0..N).map(|_| (mu + sigma * standard_normal(&mut rng)).exp()).collect();
        let r = fit(N as u64 + 1, &gaps).unwrap();
        prop_assert!((param(&r, "lognormal", "mu_ln_s") - mu).abs() < 0.1 * sigma.max(0.5));
        prop_assert!(within(param(&r, "lognormal", "sigma"), sigma, 0.08));
        prop_assert_eq!(r.best().name, "lognormal", "{:?}", r.models.iter().map(|m| (m.name, m.delta_aic)).collect::<Vec<_>>());
    }

    #[test]
    fn exponential_rate_is_recovered_and_not_rejected_often(rate in 0.001f64..100.0, seed in any::<u64>()) {
        let mut rng = seeded(seed, &["fit"]);
        let gaps: Vec<f64> = (0..N).map(|_| exponential(&mut rng, 1.0 / rate)).collect();
        let r = fit(N as u64 + 1, &gaps).unwrap();
        prop_assert!(within(param(&r, "exponential", "rate_qps"), rate, 0.08));
        prop_assert!((r.gap_cv - 1.0).abs() < 0.1);
        let o = r.onoff.as_ref();
        prop_assert!(o.is_none_or(|o| !o.detected), "on/off claimed for Poisson traffic: {o:?}");
    }
}

fn onoff_gaps(seed: u64, rate_on: f64, mean_on: f64, mean_off: f64) -> Vec<f64> {
    let table = oae_core::config::ConfigTable::parse(
        "t.toml",
        &format!("process = \"onoff\"\nrate_on_qps = {rate_on}\nmean_on_s = {mean_on}\nmean_off_s = {mean_off}\n"),
    )
    .unwrap();
    let p = oae_workloads::arrivals::build(table).unwrap();
    let v = p.offsets(&mut seeded(seed, &["onoff"]), Limit::Count(20_000));
    v.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect()
}

#[test]
fn onoff_structure_is_found_and_its_parameters_recovered() {
    let gaps = onoff_gaps(3, 5.0, 20.0, 600.0);
    let r = fit(gaps.len() as u64 + 1, &gaps).unwrap();
    let o = r.onoff.as_ref().unwrap();
    assert!(o.detected, "{o:?}");
    assert!(within(o.rate_on_qps, 5.0, 0.1), "{o:?}");
    assert!(within(o.requests_per_burst, 100.0, 0.2), "{o:?}");
    assert!(within(o.mean_off_s, 600.0, 0.2), "{o:?}");
    assert!(within(o.mean_on_s, 20.0, 0.2), "{o:?}");
}

#[test]
fn gen_keeps_the_shape_at_the_target_rate() {
    let gaps = onoff_gaps(5, 5.0, 20.0, 600.0);
    let r = fit(gaps.len() as u64 + 1, &gaps).unwrap();
    for which in [GenModel::Auto, GenModel::Named("lognormal".into())] {
        let s = synthesize(&r, &which, 0.05, Limit::Count(20_000), &mut seeded(9, &["gen"])).unwrap();
        assert_eq!(s.offsets.len(), 20_000);
        assert!(s.offsets.windows(2).all(|w| w[0] <= w[1]));
        let rate = s.offsets.len() as f64 / s.offsets.last().unwrap();
        assert!(within(rate, 0.05, 0.15), "{which:?}: rate {rate}, {}", s.model);
        let g2: Vec<f64> = s.offsets.windows(2).map(|w| w[1] - w[0]).collect();
        let r2 = fit(g2.len() as u64 + 1, &g2).unwrap();
        if which == GenModel::Auto {
            assert!(r2.onoff.as_ref().unwrap().detected, "{}", s.model);
            assert!(within(r2.gap_cv, r.gap_cv, 0.25), "cv {} vs {}", r2.gap_cv, r.gap_cv);
        }
    }
    let poisson: Vec<f64> = (0..2000).map(|_| 1.0).collect();
    assert!(fit(2001, &poisson).unwrap_err().contains("same length"));
    assert!(fit(5, &[1.0, 2.0, 0.0, 3.0]).unwrap_err().contains("at least"));
    assert!(synthesize(&r, &GenModel::Auto, -1.0, Limit::Count(1), &mut seeded(1, &[])).is_err());
}

/// Found by the property test: at the root, the Newton step rounded onto the bracket's edge
/// and the bisection fallback threw the converged shape away.
#[test]
fn weibull_fit_stops_at_its_root() {
    let (shape, scale, seed) = (1.2506753172357685f64, 33.14170705135838f64, 17123972138157824273u64);
    let mut rng = seeded(seed, &["fit"]);
    let gaps: Vec<f64> = (0..N)
        .map(|_| scale * (-open01(&mut rng).ln()).powf(1.0 / shape))
        .collect();
    let r = fit(N as u64 + 1, &gaps).unwrap();
    assert!(within(param(&r, "weibull", "shape"), shape, 0.08));
}
