//! Checks of a finished quick-suite run directory, read through the typed run-directory
//! schema (`oae_core::rundir`): used by the CLI tests on their own runs and by CI on its run
//! (`tests/run_outputs.rs`).

#![allow(dead_code)]

use std::path::Path;

use oae_core::rundir::{EnergyKind, RecordReader, RunStatus, read_run, read_summary};
use serde_json::Value;

/// Asserts everything that must hold of a complete run of `methods` methods on one workload
/// with `requests` requests each, scored and reported; with `gated`, also that gate.json
/// says the gate passed. Returns a one-line account.
pub fn check_quick_run(dir: &Path, requests: u64, methods: usize, gated: bool) -> String {
    let run = read_run(dir).unwrap_or_else(|e| panic!("{e}"));
    let summary = read_summary(dir, &run)
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("summary.json");
    let records: Vec<_> = RecordReader::open(dir)
        .unwrap()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")).1)
        .collect();
    assert_eq!(run.status, RunStatus::Complete, "{:?}", run.abort_reason);
    assert_eq!(summary.cells.len(), methods, "one cell per method on one workload");
    assert_eq!(run.records, records.len());
    assert_eq!(records.len() as u64, requests * methods as u64);
    for c in &summary.cells {
        let mut ids: Vec<u64> = records
            .iter()
            .filter(|r| r.method == c.method)
            .map(|r| r.request_id)
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..requests).collect::<Vec<_>>(), "{}", c.method);
        assert_eq!(c.requests as u64, requests);
        assert_eq!((c.measured + c.warmup + c.cooldown) as u64, requests);
        assert_eq!(c.ok + c.failed, c.measured);
        // Estimated unless a hardware counter (RAPL readable, NVML) is the primary meter here.
        let e = c.energy.as_ref().expect("energy");
        assert_eq!(e.estimated, e.kind != EnergyKind::Measured, "{e:?}");
        assert!(e.valid, "{:?}", e.invalid_reasons);
        assert!(
            (e.busy_j + e.gap_j - e.window_j).abs() <= 1e-6 * e.window_j.max(1.0),
            "{e:?}"
        );
        let f = &c.carbon.as_ref().expect("carbon").per_request_facility;
        assert!((f.operational_g + f.embodied_g - f.total_g).abs() < 1e-12, "{f:?}");
        for r in records.iter().filter(|r| r.method == c.method) {
            assert_eq!(r.energy_estimated, e.estimated);
            let (active, amortized) = (r.energy_active_j.unwrap(), r.energy_amortized_j.unwrap());
            assert!(amortized >= active && active >= 0.0, "{r:?}");
            assert!(r.co2e_g.unwrap() > 0.0 && r.energy_dyn_j.is_some(), "{r:?}");
        }
    }
    assert!(run.energy.validity.valid, "{:?}", run.energy.validity);
    let timeline = std::fs::read_to_string(dir.join("timeline.csv")).unwrap();
    assert!(timeline.starts_with("t_s,domain,source,kind,energy_j,power_w"));

    // Scored and reported at the end of the run.
    let read = |f: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap() };
    let cards = read("scorecards.json");
    assert_eq!(cards["run"]["partial"], false);
    let rows = cards["rows"].as_array().unwrap();
    assert_eq!(rows.len(), summary.cells.len());
    assert!(rows.iter().any(|r| r["baseline"] == true));
    for r in rows {
        let v = r["verdict"].as_str().unwrap();
        assert!(["baseline", "better", "worse", "inconclusive"].contains(&v), "{v}");
        assert_eq!(r["baseline"] == true, v == "baseline");
        let c = &r["cost_per_1k_good_usd"];
        // No good request (every one missed the SLO) makes a cost infinite, written null: a
        // null value, or a null bound of a resampled CI, is infinite.
        let inf = |v: &Value| v.as_f64().unwrap_or(f64::INFINITY);
        let (lo, x, hi) = (inf(&c["ci_lo"]), inf(&c["value"]), inf(&c["ci_hi"]));
        assert!(lo <= x && x <= hi, "{c}");
        assert_eq!(c["sources"], serde_json::json!(["measured", "declared", "site"]));
    }
    let html = std::fs::read_to_string(dir.join("leaderboard.html")).unwrap();
    assert!(html.matches("<svg").count() >= 4 && html.contains("<table id=\"leaderboard\" class=\"sortable\">"));
    assert_eq!(&std::fs::read(dir.join("leaderboard.parquet")).unwrap()[..4], b"PAR1");
    if gated {
        assert_eq!(read("gate.json")["passed"], true);
    }
    let c = &summary.cells[0];
    let e = c.energy.as_ref().unwrap();
    format!(
        "outputs ok: {} records, {} ok, status {}, {:.3} J/request amortized ({}), {:.2} mg CO2e/request",
        records.len(),
        c.ok,
        run.status.as_str(),
        e.amortized_j_per_request.as_ref().map_or(f64::NAN, |s| s.mean.value),
        e.kind.as_str(),
        c.carbon.as_ref().unwrap().per_request_facility.total_g * 1000.0
    )
}
