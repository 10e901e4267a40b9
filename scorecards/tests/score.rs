//! Scoring synthetic run directories with known inputs: hand-checked cost, the verdict
//! rules (better / worse / inconclusive), break-even, sensitivity, robustness, partial runs
//! and malformed records.

use std::collections::BTreeMap;

use oae_core::rundir::RunStatus;
use oae_scorecards::cost::{self, Labor, Measured};
use oae_scorecards::score::{Options, Verdict, score};
use oae_scorecards::site::{Device, Labor as Rates};
use oae_scorecards::synthetic::{SynthCell, SynthRun, manifest, scoring};
use oae_scorecards::{BreakEven, Level, RunData, Site};

fn site() -> Site {
    Site {
        horizon_years: 1.0,
        rho_max: 0.5,
        energy_usd_per_kwh: 0.1,
        pue: 1.5,
        grid_g_per_kwh: 400.0,
        carbon_usd_per_tonne: 0.0,
        device: Device {
            name: "test".into(),
            memory_gb: 16.0,
            usd_per_hour: 1.0,
            embodied_kg: 0.0,
            lifetime_years: 5.0,
        },
        labor_usd_per_week: Rates {
            it_generalist: 1000.0,
            software_engineer: 2000.0,
            ml_engineer: 3000.0,
            ml_specialist: 6000.0,
        },
    }
}

fn options(manifests: &[(&str, &str, &str)]) -> Options {
    Options {
        site: site(),
        site_source: "test".into(),
        // The test site's grid, PUE and embodied carbon replace what the run recorded.
        carbon_overrides: site().carbon_overrides("test"),
        manifests: manifests
            .iter()
            .map(|(id, level, weeks)| (id.to_string(), (format!("{id}.toml"), manifest(id, level, weeks))))
            .collect::<BTreeMap<_, _>>(),
        draws: Some(400),
        ..Options::default()
    }
}

fn load(run: &SynthRun) -> (tempfile::TempDir, RunData) {
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    let data = RunData::load(dir.path(), true).unwrap();
    (dir, data)
}

#[test]
fn cost_per_1k_is_checked_by_hand() {
    // dense: 0.1 s, 5 J dynamic, 20 W idle, 50 J setup, 1 GB, 1 req/s, 2 weeks at L2 ($2000).
    let run = SynthRun::new(vec![SynthCell::new("dense", "dense", "w", 200)], 1.0);
    let (_d, data) = load(&run);
    let cards = score(&data, &options(&[("dense", "software-engineer", "2")])).unwrap();
    let r = &cards.rows[0];
    assert!(r.baseline && r.verdict == Verdict::Baseline);
    // devices 1; energy 1.5 × (20 W × 8760 h + 8760·3600 req × 5 J + 50 J) = 328.500021 kWh;
    // hardware $8760, energy $32.85, labour $4000; good 31,536,000 requests.
    let kwh = 1.5 * (20.0 * 8760.0 / 1e3 + 8760.0 * 3600.0 * 5.0 / 3.6e6 + 50.0 / 3.6e6);
    assert!(
        (r.breakdown.energy_kwh - kwh).abs() < 1e-9,
        "{}",
        r.breakdown.energy_kwh
    );
    let by_hand = (8760.0 + kwh * 0.1 + 4000.0) / 31_536.0;
    assert!(
        (r.cost_per_1k_good_usd.value - by_hand).abs() < 1e-12,
        "{} vs {by_hand}",
        r.cost_per_1k_good_usd.value
    );
    assert!((by_hand - 0.405_658_5).abs() < 1e-6, "{by_hand}");
    // Identical requests: the bootstrap interval collapses onto the point.
    assert!((r.cost_per_1k_good_usd.ci_lo.unwrap() - by_hand).abs() < 1e-12);
    assert_eq!(r.cost_per_1k_good_usd.sources, ["measured", "declared", "site"]);
    // Talent premium: ($2000 − $1000) × 2 weeks.
    assert_eq!(r.talent_premium_usd.value, 2000.0);
    // Carbon per request at the site's grid: 328.5 kWh × 400 g / 31.5 M requests.
    let g = kwh * 400.0 / 31_536_000.0;
    assert!((r.gco2e_per_request.operational_g.value - g).abs() < 1e-12);
    assert!(r.energy_per_request.dynamic_j.value == 5.0 && r.energy_per_request.dynamic_j.estimated);
}

#[test]
fn oae_ratio_and_break_even_follow_the_cost_model() {
    // A method twice as fast with half the dynamic energy, but needing an ML engineer for 10
    // weeks: it loses at 1 req/s and wins once the rate needs enough devices.
    let dense = SynthCell::new("dense", "dense", "w", 300);
    let mut lean = SynthCell::new("lean", "lean", "w", 300);
    lean.dyn_j = 2.5;
    lean.service_s = 0.05;
    let (_d, data) = load(&SynthRun::new(vec![dense, lean], 1.0));
    let opts = options(&[("dense", "software-engineer", "2"), ("lean", "ml-engineer", "[8, 12]")]);
    let cards = score(&data, &opts).unwrap();
    let r = cards.rows.iter().find(|r| r.method == "lean").unwrap();
    let m = |dyn_j: f64| Measured {
        service_s: dyn_j / 50.0,
        attainment: 1.0,
        quality: None,
        dyn_j,
        idle_w: 20.0,
        setup_j: 50.0,
        memory_bytes: 1e9 + 1000.0,
    };
    let (ml, dl) = (
        Labor {
            level: Level::MlEngineer,
            weeks: 10.0,
        },
        Labor {
            level: Level::SoftwareEngineer,
            weeks: 2.0,
        },
    );
    let expect = cost::oae_ratio(1.0, (&m(2.5), &ml), (&m(5.0), &dl), &site());
    let ratio = r.oae_ratio.as_ref().unwrap();
    assert!(
        (ratio.value - expect).abs() < 1e-9 && ratio.value < 1.0,
        "{} vs {expect}",
        ratio.value
    );
    assert_eq!(r.verdict, Verdict::Worse);
    let be = cost::break_even((&m(2.5), &ml), (&m(5.0), &dl), &site());
    let (BreakEven::At(q), BreakEven::At(got)) = (be, r.break_even.as_ref().unwrap().point) else {
        panic!("expected a break-even rate, got {be:?}")
    };
    assert!((q - got).abs() < 1e-9 * q, "{q} vs {got}");
    // Device counts step with the rate: just below the break-even rate the method loses,
    // just above it wins (the crossing is a step of the baseline's device count, ~25 req/s).
    let at = |l: f64| cost::oae_ratio(l, (&m(2.5), &ml), (&m(5.0), &dl), &site());
    assert!(
        at(q * 0.999) < 1.0 && at(q * 1.001) >= 1.0 && q > 10.0 && q < 40.0,
        "{q}"
    );
    // Declared range: fewer weeks is more favourable.
    assert!(ratio.range_lo.unwrap() < ratio.value && ratio.value < ratio.range_hi.unwrap());

    // Sensitivity: the labour rate at which the verdict flips makes the ratio exactly 1.
    let s = r
        .sensitivity
        .iter()
        .find(|s| s.assumption == "engineer-weeks of the method (over the horizon)")
        .unwrap();
    let w = s.flips_at.expect("fewer weeks must flip a labour-driven loss");
    let ml_at = Labor {
        level: Level::MlEngineer,
        weeks: w,
    };
    let at = cost::oae_ratio(1.0, (&m(2.5), &ml_at), (&m(5.0), &dl), &site());
    assert!((at - 1.0).abs() < 1e-6 && w < 10.0, "{w} {at}");
    let e = r.sensitivity.iter().find(|s| s.assumption == "energy price").unwrap();
    if let Some(p) = e.flips_at {
        let mut s2 = site();
        s2.energy_usd_per_kwh = p;
        let at = cost::oae_ratio(1.0, (&m(2.5), &ml), (&m(5.0), &dl), &s2);
        assert!((at - 1.0).abs() < 1e-6, "{p} {at}");
    }
}

#[test]
fn a_ci_straddling_one_is_inconclusive_never_a_win() {
    // Two methods drawn from the same noisy distribution, same declared cost, and a site where
    // measured energy is most of the cost.
    let mut a = SynthCell::new("dense", "dense", "w", 400);
    a.spread = 1.0;
    let mut b = a.clone();
    b.method = "twin".into();
    b.method_id = "twin".into();
    b.dyn_j = 5.05;
    let (_d, data) = load(&SynthRun::new(vec![a, b], 20.0));
    let mut opts = options(&[("dense", "it-generalist", "0"), ("twin", "it-generalist", "0")]);
    opts.site.device.usd_per_hour = 0.0;
    opts.site.energy_usd_per_kwh = 1.0;
    let cards = score(&data, &opts).unwrap();
    let r = cards.rows.iter().find(|r| r.method == "twin").unwrap();
    let f = r.oae_ratio.as_ref().unwrap();
    assert!(f.ci_lo.unwrap() < 1.0 && f.ci_hi.unwrap() > 1.0, "{f:?}");
    assert_eq!(r.verdict, Verdict::Inconclusive);

    // The same method at a quarter of the energy is a clear win.
    let mut c = SynthCell::new("frugal", "twin", "w", 60);
    c.spread = 1.0;
    c.dyn_j = 1.0;
    let mut d = SynthCell::new("dense", "dense", "w", 60);
    d.spread = 1.0;
    let (_d2, data) = load(&SynthRun::new(vec![d, c], 20.0));
    let cards = score(&data, &opts).unwrap();
    let r = cards.rows.iter().find(|r| r.method == "frugal").unwrap();
    assert_eq!(r.verdict, Verdict::Better, "{:?}", r.oae_ratio);
    assert_eq!(r.break_even.as_ref().unwrap().point, BreakEven::Always);
}

#[test]
fn failures_lower_attainment_and_raise_cost() {
    let mut flaky = SynthCell::new("flaky", "dense", "w", 400);
    flaky.fail_share = 0.25;
    let (_d, data) = load(&SynthRun::new(
        vec![SynthCell::new("dense", "dense", "w", 400), flaky],
        1.0,
    ));
    let cards = score(&data, &options(&[("dense", "software-engineer", "2")])).unwrap();
    let r = cards.rows.iter().find(|r| r.method == "flaky").unwrap();
    assert!(r.failed > 60 && r.failed < 140, "{}", r.failed);
    let a = r.inputs.attainment.value;
    assert!((a - (1.0 - r.failed as f64 / 400.0)).abs() < 1e-12);
    // Same cost, fewer good requests: the ratio is the attainment.
    assert!((r.oae_ratio.as_ref().unwrap().value - a).abs() < 1e-9);
    assert_eq!(r.verdict, Verdict::Worse);
}

#[test]
fn robustness_names_the_worst_perturbation() {
    let cells = vec![
        SynthCell::new("dense", "dense", "nominal", 100),
        {
            let mut c = SynthCell::new("dense", "dense", "bursty", 100);
            c.fail_share = 0.5;
            c
        },
        {
            let mut c = SynthCell::new("dense", "dense", "long-tail", 100);
            c.service_s = 0.3;
            c
        },
    ];
    let mut run = SynthRun::new(cells, 1.0);
    run.workloads[1].perturbs = Some("nominal".into());
    run.workloads[1].perturbation = Some("bursty arrivals".into());
    run.workloads[2].perturbs = Some("nominal".into());
    let (_d, data) = load(&run);
    let cards = score(&data, &options(&[("dense", "software-engineer", "2")])).unwrap();
    let r = cards.rows.iter().find(|r| r.workload == "nominal").unwrap();
    let rob = r.robustness.as_ref().expect("nominal row has robustness");
    assert_eq!(rob.perturbations.len(), 2);
    let (g, what) = rob.worst_goodput.clone().unwrap();
    assert!(g < 0.7 && what == "bursty arrivals", "{g} {what}");
    let (p95, what) = rob.worst_p95_e2e.clone().unwrap();
    assert!((p95 - 3.0).abs() < 0.1 && what == "long-tail", "{p95} {what}");
}

#[test]
fn partial_runs_are_refused_unless_allowed_and_then_flagged() {
    let mut run = SynthRun::new(vec![SynthCell::new("dense", "dense", "w", 20)], 1.0);
    run.status = RunStatus::Aborted;
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    let err = RunData::load(dir.path(), false).unwrap_err().to_string();
    assert!(err.contains("aborted") && err.contains("--allow-partial"), "{err}");
    let data = RunData::load(dir.path(), true).unwrap();
    let cards = score(&data, &options(&[("dense", "software-engineer", "2")])).unwrap();
    assert!(cards.run.partial && cards.warnings[0].starts_with("PARTIAL RUN"));
    assert_eq!(cards.rows[0].requests, 20);

    // Killed while writing its last record: the other records are scored, the cut one is
    // named in a warning — and in a run that says it completed, that is damage, not a skip.
    let path = dir.path().join("requests.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() - 40]).unwrap();
    let data = RunData::load(dir.path(), true).unwrap();
    let cards = score(&data, &options(&[("dense", "software-engineer", "2")])).unwrap();
    assert_eq!(cards.rows[0].requests, 19);
    assert!(
        cards
            .warnings
            .iter()
            .any(|w| w.contains("requests.jsonl:20") && w.contains("cut short")),
        "{:?}",
        cards.warnings
    );
    let mut complete = run.clone();
    complete.status = RunStatus::Complete;
    let dir2 = tempfile::tempdir().unwrap();
    complete.write(dir2.path()).unwrap();
    std::fs::write(dir2.path().join("requests.jsonl"), &text[..text.len() - 40]).unwrap();
    let err = RunData::load(dir2.path(), false).unwrap_err().to_string();
    assert!(err.contains("requests.jsonl:20") && err.contains("damaged"), "{err}");
}

#[test]
fn malformed_records_and_missing_manifests_are_located() {
    let run = SynthRun::new(vec![SynthCell::new("dense", "dense", "w", 5)], 1.0);
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    let path = dir.path().join("requests.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"method\": \"dense\", \"workload\": 3}";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let err = RunData::load(dir.path(), false).unwrap_err().to_string();
    assert!(
        err.contains("requests.jsonl:3") && err.contains("not a request record"),
        "{err}"
    );

    let run = SynthRun::new(vec![SynthCell::new("x", "unknown-method", "w", 5)], 1.0);
    let (_d, data) = load(&run);
    let err = score(&data, &options(&[])).unwrap_err().to_string();
    assert!(err.contains("unknown-method") && err.contains("manifest"), "{err}");

    let err = RunData::load(&dir.path().join("nope"), false).unwrap_err().to_string();
    assert!(err.contains("no run.json"), "{err}");
}

#[test]
fn recorded_manifests_and_baseline_win_over_defaults() {
    let mut run = SynthRun::new(
        vec![
            SynthCell::new("a", "dense", "w", 50),
            SynthCell::new("b", "dense", "w", 50),
        ],
        1.0,
    );
    run.scoring = Some(scoring(
        Some("b"),
        &[("dense", manifest("dense", "it-generalist", "[1, 3]"))],
        &[],
    ));
    let (_d, data) = load(&run);
    // The registry's copy (here: L4, 50 weeks) is ignored for a run that recorded its own.
    let cards = score(&data, &options(&[("dense", "ml-specialist", "50")])).unwrap();
    assert_eq!(cards.baseline, "b");
    let a = &cards.rows[0];
    assert_eq!(a.declared.level, 1);
    assert_eq!(a.declared.engineer_weeks, [1.0, 2.0, 3.0]);
    assert_eq!(cards.rows[1].verdict, Verdict::Baseline);

    run.scoring = Some(scoring(None, &[], &[("latency", 3.0)]));
    let (_d, data) = load(&run);
    let err = score(&data, &options(&[("dense", "ml-specialist", "50")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown metric `latency`") && err.contains("e2e_p95_ms"),
        "{err}"
    );
}
