//! Whole runs with scripted meters: exact energy from a replayed timeline, a meter that dies
//! mid-run (fallback, flagged, run continues), and a counter reset (energy invalid).

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use oae_core::rundir::EnergyKind;
use oae_harness::meters::replay::ReplayMeter;
use oae_harness::meters::{Meter, MeterError, MeterReading};
use oae_harness::session::RunStatus;
use oae_harness::session::{self, Invocation, Silent};
use oae_harness::suite::Suite;
use serde_json::Value;

const SUITE: &str = r#"
name = "energy"
[run]
seed = 1
requests = 20
sample_interval_ms = 20
[energy]
idle_baseline_s = 0.6
[carbon]
intensity_g_per_kwh = 500
pue = 1.2
[[workloads]]
name = "steady"
arrival = { process = "constant", rate_qps = 20.0 }
input_tokens = 8
output_tokens = 4
[[methods]]
id = "mock"
prefill_ms = 5.0
decode_ms_per_token = 2.0
"#;

/// A constant-power recording: `watts` from 0 to `secs`, sampled every 10 ms.
fn constant(source: &str, kind: EnergyKind, watts: f64, secs: f64) -> Box<dyn Meter> {
    let points: Vec<(f64, f64)> = (0..=(secs * 100.0) as usize)
        .map(|i| (i as f64 * 0.01, watts * i as f64 * 0.01))
        .collect();
    let start = Instant::now();
    Box::new(ReplayMeter::new(
        source,
        "cpu",
        kind,
        points,
        Box::new(move || start.elapsed()),
    ))
}

fn run(meters: Vec<Box<dyn Meter>>) -> (tempfile::TempDir, Value, Value, RunStatus) {
    let suite = Suite::parse("energy.toml", SUITE, "energy").unwrap();
    let plan = session::plan(suite, &[&oae_harness::mock::SPEC])
        .unwrap()
        .with_meters(meters);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let r = session::execute(plan, &out, &AtomicBool::new(false), &mut Silent, &Invocation::default()).unwrap();
    // Every file reads back through the typed schema.
    let typed = oae_core::rundir::read_run(&out).unwrap();
    oae_core::rundir::read_summary(&out, &typed).unwrap().unwrap();
    for r in oae_core::rundir::RecordReader::open(&out).unwrap() {
        r.unwrap();
    }
    let read = |f: &str| serde_json::from_str(&std::fs::read_to_string(out.join(f)).unwrap()).unwrap();
    let (run, summary) = (read("run.json"), read("summary.json"));
    (tmp, run, summary, r.status)
}

#[test]
fn replayed_constant_power_is_attributed_exactly() {
    let (_t, run, summary, status) = run(vec![constant("wall", EnergyKind::Measured, 10.0, 60.0)]);
    assert_eq!(status, RunStatus::Complete);
    let e = &summary["cells"][0]["energy"];
    assert_eq!(e["kind"], "measured");
    assert_eq!(e["valid"], true, "{e}");
    // Constant 10 W: idle = 10 W, so dynamic energy is zero up to rounding, and the window
    // holds 10 W × its span.
    assert!((e["idle_w"].as_f64().unwrap() - 10.0).abs() < 1e-3, "{e}");
    // (up to the few µs between the sampler's timestamp and the replay clock's reading)
    assert!(e["dyn_j"].as_f64().unwrap().abs() < 1e-3, "{e}");
    assert!((e["mean_power_w"].as_f64().unwrap() - 10.0).abs() < 0.01, "{e}");
    assert!(
        e["window_j"].as_f64().unwrap() > 9.0,
        "the window spans the ~1 s replay: {e}"
    );
    assert!(
        (e["busy_j"].as_f64().unwrap() + e["gap_j"].as_f64().unwrap() - e["window_j"].as_f64().unwrap()).abs() < 1e-6
    );
    let v = &run["energy"]["validity"];
    assert_eq!(v["valid"], true);
    assert_eq!(v["counter_monotonic"], true);
    assert!(v["idle_drift_pct"].as_f64().unwrap().abs() < 0.1, "{v}");
    // Carbon at 500 g/kWh and PUE 1.2 of each request's amortized energy, plus embodied.
    let c = &summary["cells"][0]["carbon"];
    let f = &c["per_request_facility"];
    let amort = e["amortized_j_per_request"]["mean"]["value"].as_f64().unwrap();
    // Means over measured (energy) and over served (carbon) coincide here: no warm-up.
    assert!(
        (f["operational_g"].as_f64().unwrap() - amort / 3.6e6 * 1.2 * 500.0).abs() < 1e-9,
        "{c}"
    );
    assert_eq!(c["intensity_source"], "user value ([carbon] intensity_g_per_kwh)");
}

#[test]
fn a_meter_that_dies_mid_run_is_recorded_and_its_domain_falls_back() {
    // The measured source stops after 1.0 s (during the replay); the estimated one lasts.
    let (_t, run, summary, status) = run(vec![
        constant("counter", EnergyKind::Measured, 10.0, 1.0),
        constant("model", EnergyKind::Estimated, 8.0, 60.0),
    ]);
    assert_eq!(status, RunStatus::Complete, "the run continues on the remaining source");
    let v = &run["energy"]["validity"];
    let failures = v["meter_failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{v}");
    assert_eq!(failures[0]["source"], "replay:counter");
    assert!(failures[0]["reason"].as_str().unwrap().contains("ended"));
    assert_eq!(v["flagged"], true);
    let e = &summary["cells"][0]["energy"];
    assert_eq!(e["source"], "replay:model");
    assert_eq!(e["estimated"], true);
    let fb = e["fallbacks"][0].as_str().unwrap();
    assert!(
        fb.contains("replay:model") && fb.contains("replay:counter failed"),
        "{fb}"
    );
    assert_eq!(e["valid"], true);
}

/// 10 W, with the counter going backwards once at about 1.0 s.
struct ResettingCounter {
    start: Instant,
    reset_done: bool,
}

impl Meter for ResettingCounter {
    fn name(&self) -> &str {
        "resetting"
    }
    fn domain(&self) -> &str {
        "cpu"
    }
    fn kind(&self) -> EnergyKind {
        EnergyKind::Measured
    }
    fn resolution(&self) -> Duration {
        Duration::from_millis(10)
    }
    fn read(&mut self) -> Result<MeterReading, MeterError> {
        let t = self.start.elapsed().as_secs_f64();
        let invalid = t > 1.0 && !self.reset_done;
        self.reset_done |= invalid;
        Ok(MeterReading {
            invalid,
            ..MeterReading::new(10.0 * t, Some(10.0))
        })
    }
    fn provenance(&self) -> Value {
        Value::Null
    }
}

#[test]
fn a_counter_reset_inside_the_replay_invalidates_its_energy() {
    let (_t, run, summary, _) = run(vec![Box::new(ResettingCounter {
        start: Instant::now(),
        reset_done: false,
    })]);
    let v = &run["energy"]["validity"];
    assert_eq!(v["counter_monotonic"], false);
    assert_eq!(v["valid"], false, "{v}");
    let e = &summary["cells"][0]["energy"];
    assert_eq!(e["valid"], false);
    assert!(
        e["invalid_reasons"][0].as_str().unwrap().contains("counter reset"),
        "{e}"
    );
    let recs = std::fs::read_to_string(_t.path().join("run/requests.jsonl")).unwrap();
    assert!(
        recs.lines().all(|l| l.contains("\"energy_active_j\":null")),
        "no figure from an invalid window"
    );
}
