//! The gate on synthetic runs with known inputs: trials widen its intervals, calibrated noise
//! raises its floors, modelled energy is advisory, and calibration recovers a known spread.

use std::collections::BTreeMap;

use oae_scorecards::gate::{GateConfig, Status, compare};
use oae_scorecards::noise::{DEFAULT_K, Noise};
use oae_scorecards::score::{Options, Scorecards, score};
use oae_scorecards::synthetic::{SynthCell, SynthRun, manifest};
use oae_scorecards::{Metric, RunData, Thresholds};

fn options() -> Options {
    Options {
        manifests: [(
            "dense".to_string(),
            ("dense.toml".to_string(), manifest("dense", "software-engineer", "2")),
        )]
        .into_iter()
        .collect::<BTreeMap<_, _>>(),
        draws: Some(400),
        ..Options::default()
    }
}

/// One dense cell of `requests` per trial, service times scaled per trial by `trials`, and
/// by `slower` throughout; `seed` varies the per-request noise.
fn run(trials: &[f64], slower: f64, seed: u64) -> (tempfile::TempDir, RunData, Scorecards) {
    run_with(trials, slower, seed, |_| {})
}

/// [`run`], with the cell adjusted by `edit` first.
fn run_with(
    trials: &[f64],
    slower: f64,
    seed: u64,
    edit: impl FnOnce(&mut SynthCell),
) -> (tempfile::TempDir, RunData, Scorecards) {
    let mut c = SynthCell::new("dense", "dense", "w", 120);
    c.spread = 0.4;
    c.service_s *= slower;
    c.dyn_j *= slower;
    edit(&mut c);
    let mut r = SynthRun::new(vec![c], 1.0);
    r.trial_scales = trials.to_vec();
    r.seed = seed;
    let dir = tempfile::tempdir().unwrap();
    r.write(dir.path()).unwrap();
    let data = RunData::load(dir.path(), false).unwrap();
    let cards = score(&data, &options()).unwrap();
    (dir, data, cards)
}

fn config(metrics: &[Metric]) -> GateConfig {
    GateConfig {
        thresholds: Thresholds::default(),
        metrics: metrics.to_vec(),
        draws: 400,
        seed: 7,
        noise: None,
        paired: false,
        strict_energy: false,
    }
}

fn width(cards: &Scorecards) -> f64 {
    let f = &cards.rows[0].inputs.service_s;
    f.ci_hi.unwrap() - f.ci_lo.unwrap()
}

#[test]
fn trials_that_disagree_widen_the_intervals_and_like_trials_do_not() {
    let (_a, _, same) = run(&[1.0, 1.0, 1.0], 1.0, 1);
    let (_b, _, drift) = run(&[0.8, 1.0, 1.25], 1.0, 1);
    let (_c, _, one) = run(&[1.0], 1.0, 1);
    assert!(
        width(&drift) > 3.0 * width(&same),
        "{} vs {}",
        width(&drift),
        width(&same)
    );
    // Three like trials of 120 requests are no less certain than one of 120.
    assert!(width(&same) < 1.5 * width(&one), "{} vs {}", width(&same), width(&one));

    // A 30 % slower current run: with one trial each the request bootstrap calls it; with
    // trials that drift by ±35 % the hierarchical interval knows it is within run-to-run
    // noise.
    let (_d, b1, c1) = run(&[1.0], 1.0, 1);
    let (_e, s1, cs1) = run(&[1.0], 1.3, 2);
    let g = compare((&b1, &c1), (&s1, &cs1), &config(&[Metric::ServiceMean]));
    assert_eq!(g.comparisons[0].status, Status::Regression, "{:?}", g.comparisons[0]);
    assert!(g.warnings.iter().any(|w| w.contains("one trial")), "{:?}", g.warnings);
    let (_f, b3, c3) = run(&[0.7, 1.0, 1.4], 1.0, 1);
    let (_g, s3, cs3) = run(&[1.4, 0.7, 1.0], 1.3, 2);
    let g = compare((&b3, &c3), (&s3, &cs3), &config(&[Metric::ServiceMean]));
    assert_eq!(g.comparisons[0].status, Status::Pass, "{:?}", g.comparisons[0]);
    assert_eq!(g.trials, [3, 3]);
    assert!(!g.warnings.iter().any(|w| w.contains("one trial")));
}

#[test]
fn calibration_recovers_a_known_spread_and_its_floor_lets_noise_through() {
    // Five A/A runs whose service times sit at 0.9, 1.1, 0.9, 1.1, 1.0 of nominal, with no
    // per-request noise: the run-to-run SD of the mean service time is exactly
    // sd([0.9, 1.1, 0.9, 1.1, 1.0]) = 0.1 → 10 % of the mean.
    let scales = [0.9, 1.1, 0.9, 1.1, 1.0];
    let runs: Vec<_> = scales
        .iter()
        .map(|&s| {
            let mut c = SynthCell::new("dense", "dense", "w", 50);
            c.service_s *= s;
            let r = SynthRun::new(vec![c], 1.0);
            let dir = tempfile::tempdir().unwrap();
            r.write(dir.path()).unwrap();
            let data = RunData::load(dir.path(), false).unwrap();
            let cards = score(&data, &options()).unwrap();
            (dir, data, cards)
        })
        .collect();
    let pairs: Vec<_> = runs.iter().map(|(_, d, c)| (d, c)).collect();
    let noise = Noise::calibrate(&pairs, DEFAULT_K).unwrap();
    let sd = noise.metrics["service_mean_ms"];
    assert!((sd - 10.0).abs() < 1e-6, "{sd}");
    let floor = noise.floor("dense", "w", Metric::ServiceMean).unwrap();
    assert!((floor - 3.0 * 2f64.sqrt() * 10.0).abs() < 1e-6, "{floor}");
    assert!(
        noise.floor("other", "w", Metric::ServiceMean).is_some(),
        "unknown cells use the metric's largest"
    );
    assert!(
        Noise::calibrate(&pairs[..2], DEFAULT_K).is_err(),
        "two runs are not enough"
    );

    // A 20 % change is within 3 × √2 × 10 %: with the floor it passes, without it fails.
    let (b, bc) = (&runs[4].1, &runs[4].2);
    let (_d, slow, sc) = {
        let mut c = SynthCell::new("dense", "dense", "w", 50);
        c.service_s *= 1.2;
        let r = SynthRun::new(vec![c], 1.0);
        let dir = tempfile::tempdir().unwrap();
        r.write(dir.path()).unwrap();
        let data = RunData::load(dir.path(), false).unwrap();
        let cards = score(&data, &options()).unwrap();
        (dir, data, cards)
    };
    let mut cfg = config(&[Metric::ServiceMean]);
    assert_eq!(
        compare((b, bc), (&slow, &sc), &cfg).comparisons[0].status,
        Status::Regression
    );
    cfg.noise = Some(("noise.json".into(), noise));
    let g = compare((b, bc), (&slow, &sc), &cfg);
    let c = &g.comparisons[0];
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(
        c.threshold > 40.0 && c.noise_floor.is_some() && c.note.contains("noise floor"),
        "{c:?}"
    );
}

#[test]
fn energy_from_a_modelled_meter_is_advisory_unless_asked_for() {
    let (_a, b, bc) = run(&[1.0], 1.0, 1);
    let (_c, s, sc) = run(&[1.0], 1.5, 2);
    assert!(
        bc.rows[0].energy_per_request.amortized_j.estimated,
        "synthetic energy is modelled"
    );
    let mut cfg = config(&[Metric::EnergyDyn, Metric::EnergyAmortized, Metric::ServiceMean]);
    let g = compare((&b, &bc), (&s, &sc), &cfg);
    let status = |m: Metric| g.comparisons.iter().find(|c| c.metric == Some(m)).unwrap().status;
    assert_eq!(status(Metric::EnergyDyn), Status::Advisory);
    assert_eq!(status(Metric::EnergyAmortized), Status::Advisory);
    assert_eq!(status(Metric::ServiceMean), Status::Regression);
    assert_eq!(g.failures, 1, "advisory comparisons do not fail the gate");
    cfg.strict_energy = true;
    let g = compare((&b, &bc), (&s, &sc), &cfg);
    assert_eq!(g.failures, 3);
}

#[test]
fn measured_energy_gates_unless_the_machine_was_busy_with_other_work() {
    let metrics = [Metric::EnergyDyn, Metric::EnergyAmortized];
    let measured = |c: &mut SynthCell| c.energy_measured = true;
    let (_a, b, bc) = run_with(&[1.0], 1.0, 1, measured);
    let (_c, s, sc) = run_with(&[1.0], 1.5, 2, measured);
    assert!(!bc.rows[0].energy_per_request.amortized_j.estimated);
    let g = compare((&b, &bc), (&s, &sc), &config(&metrics));
    assert_eq!(
        g.failures, 2,
        "measured energy on a quiet machine gates: {:?}",
        g.comparisons
    );

    // The same slowdown while other work took 40 % of the machine during the current run.
    let (_d, busy, busy_c) = run_with(&[1.0], 1.5, 2, |c| {
        measured(c);
        c.other_cpu_share = 0.4;
    });
    let g = compare((&b, &bc), (&busy, &busy_c), &config(&metrics));
    assert_eq!(g.failures, 0, "{:?}", g.comparisons);
    for c in &g.comparisons {
        assert_eq!(c.status, Status::Advisory, "{c:?}");
        assert!(
            c.note.contains("40 % of the machine's CPU during the current run"),
            "{}",
            c.note
        );
    }
    assert!(
        g.warnings.iter().any(|w| w.contains("re-run on a quiet machine")),
        "{:?}",
        g.warnings
    );
    let mut strict = config(&metrics);
    strict.strict_energy = true;
    assert_eq!(compare((&b, &bc), (&busy, &busy_c), &strict).failures, 2);
}

#[test]
fn paired_calibration_measures_the_drift_between_sides() {
    // Three paired A/A runs whose current side sits 2 % above, 2 % below and level with its
    // baseline side (no per-request noise): RMS change = √(8/3) ≈ 1.633 %, floor 3 × that.
    let side = |scale: f64| run_with(&[1.0], scale, 1, |c| c.spread = 0.0);
    let runs: Vec<_> = [1.02, 0.98, 1.0].iter().map(|&s| (side(1.0), side(s))).collect();
    let pairs: Vec<_> = runs
        .iter()
        .map(|((_, bd, bc), (_, cd, cc))| ((bd, bc), (cd, cc)))
        .collect();
    let noise = Noise::calibrate_paired(&pairs, DEFAULT_K).unwrap();
    assert!(noise.paired);
    let floor = noise.floor("dense", "w", Metric::ServiceMean).unwrap();
    let want = 3.0 * (8.0f64 / 3.0).sqrt();
    assert!((floor - want).abs() < 1e-6, "{floor} vs {want}");
    let cell = noise.cells.iter().find(|c| c.metric == "service_mean_ms").unwrap();
    assert!(
        (cell.values[0] - 2.0).abs() < 1e-6 && (cell.values[1] + 2.0).abs() < 1e-6,
        "{cell:?}"
    );
    assert!(Noise::calibrate_paired(&pairs[..2], DEFAULT_K).is_err());
}
