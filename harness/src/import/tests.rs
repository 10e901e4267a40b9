//! Imports of files the real peers wrote (harness/tests/fixtures/peers, with how each was made).

use std::path::PathBuf;

use oae_core::rundir::{GateSettings, RecordReader, RunStatus, read_run, read_summary};

use super::*;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/peers")
        .join(rel)
}

fn read(rel: &str) -> PeerRun {
    let path = fixture(rel);
    format_of(&resolve(&path).unwrap(), None)
        .unwrap()
        .read(&resolve(&path).unwrap())
        .unwrap()
}

fn options() -> ImportOptions {
    ImportOptions {
        confidence: 0.95,
        slo: Slo::default(),
        scoring: ScoringSettings {
            baseline: None,
            gate: GateSettings {
                threshold_pct: 5.0,
                thresholds: BTreeMap::new(),
                metrics: Vec::new(),
            },
            manifests: BTreeMap::new(),
            label_manifests: BTreeMap::new(),
        },
        host: None,
        peer_version: None,
        command: vec!["oae".into(), "import".into()],
        git_sha: None,
        timeline: None,
    }
}

fn input(rel: &str, label: Option<&str>) -> ImportInput {
    ImportInput {
        path: fixture(rel),
        label: label.map(str::to_string),
        format: None,
    }
}

#[test]
fn aiperf_records_keep_every_request_and_time_from_the_release() {
    let run = read("aiperf-0.13.0/poisson");
    assert_eq!(run.tool, "AIPerf");
    assert_eq!(run.tool_version.as_deref(), Some("0.13.0"));
    assert_eq!(run.model.as_deref(), Some("smollm2"));
    assert_eq!(run.seed, Some(7));
    assert_eq!(run.cells.len(), 1);
    let cell = &run.cells[0];
    assert_eq!(cell.workload, "poisson@2");
    assert_eq!(cell.rate_qps, Some(2.0));
    assert_eq!(cell.max_tokens, Some(16));
    assert_eq!(cell.requests.len(), 12, "every line, failed or not");
    let ok: Vec<_> = cell.requests.iter().filter(|r| r.outcome == Outcome::Ok).collect();
    assert_eq!(ok.len(), 4);
    // llama-cpp-python's server cut the streams of requests that overlapped a newer one.
    for r in cell.requests.iter().filter(|r| r.outcome != Outcome::Ok) {
        assert_eq!(r.outcome, Outcome::Error);
        assert!(
            r.error.as_deref().unwrap().starts_with("ClientPayloadError"),
            "{:?}",
            r.error
        );
        assert_eq!(r.first_token_s, None);
        assert_eq!(r.input_tokens, Some(32), "error_isl");
    }
    // session 4: released 1795747851.887686835, sent +1.178717 ms, TTFT 1034.003316 ms after the
    // send, ended at 1795747853.413091241.
    let (recs, _) = records::to_records("aiperf", cell);
    let r = &recs[4];
    assert_eq!(r.outcome, Outcome::Ok);
    assert!((r.dispatch_lag_ms - 1.178717).abs() < 1e-3, "{}", r.dispatch_lag_ms);
    assert!(
        (r.ttft_ms.unwrap() - (1.178717 + 1034.003316)).abs() < 1e-3,
        "{:?}",
        r.ttft_ms
    );
    assert!((r.e2e_ms.unwrap() - 1525.404406).abs() < 1e-3, "{:?}", r.e2e_ms);
    assert_eq!(r.output_tokens, 16);
    assert_eq!(r.itl_ms.len(), 15);
    assert!((r.itl_ms[0] - 22.263).abs() < 1e-3);
    // Released at 1795747851.887686835 ns, 1.445740471 s after the first release.
    assert!((r.intended_s - 1.445_740_471).abs() < 1e-6);
    // Ids follow the intended order.
    assert!(recs.windows(2).all(|w| w[0].intended_s <= w[1].intended_s));
}

#[test]
fn aiperf_timeouts_are_timeouts_and_a_missing_aggregate_is_said() {
    let run = read("aiperf-0.13.0/timeouts/profile_export.jsonl");
    assert_eq!(run.tool_version, None);
    assert!(run.notes.iter().any(|n| n.contains("no profile_export_aiperf.json")));
    let reqs = &run.cells[0].requests;
    assert_eq!(reqs.len(), 8);
    let timeouts = reqs.iter().filter(|r| r.outcome == Outcome::Timeout).count();
    let errors = reqs.iter().filter(|r| r.outcome == Outcome::Error).count();
    assert_eq!((timeouts, errors), (6, 2));
    assert!(reqs.iter().all(|r| r.end_s.is_some()));
}

#[test]
fn guidellm_reports_time_from_the_targeted_start() {
    let run = read("guidellm-0.3.1/poisson.json");
    assert_eq!(run.tool, "GuideLLM");
    assert_eq!(run.tool_version, None, "GuideLLM writes none");
    assert_eq!(run.target.as_deref(), Some("http://127.0.0.1:18556"));
    let cell = &run.cells[0];
    assert_eq!(cell.workload, "poisson@1");
    assert_eq!(cell.requests.len(), 8);
    assert!(
        cell.requests
            .iter()
            .all(|r| r.outcome == Outcome::Ok && r.itl_ms.is_none())
    );
    let (recs, _) = records::to_records("guidellm", cell);
    // The first request: targeted 1795747978.592314, first token 1795747978.7762003.
    let r = &recs[0];
    assert!((r.ttft_ms.unwrap() - (1795747978.7762003 - 1795747978.592314) * 1e3).abs() < 1e-2);
    assert!((r.tpot_ms.unwrap() - (1795747979.0364864 - 1795747978.7762003) * 1e3 / 15.0).abs() < 1e-2);
    assert!(r.output_text.as_deref().unwrap().starts_with(" to be made"));
}

#[test]
fn guidellm_errors_are_kept_with_a_message() {
    let run = read("guidellm-0.3.1/timeouts.json");
    let reqs = &run.cells[0].requests;
    assert_eq!(reqs.len(), 6);
    let failed: Vec<_> = reqs.iter().filter(|r| r.outcome == Outcome::Error).collect();
    assert_eq!(failed.len(), 2);
    assert!(
        failed
            .iter()
            .all(|r| r.error.as_deref().unwrap().contains("without a message"))
    );
    assert!(
        failed.iter().all(|r| r.output_tokens.is_none()),
        "GuideLLM's count is the request's, not output"
    );
    assert_eq!(run.timeout_s, Some(0.5));
}

#[test]
fn an_import_is_a_run_directory_that_reads_back_strictly() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("run");
    let got = import(
        &[
            input("aiperf-0.13.0/poisson", Some("llama-aiperf")),
            input("guidellm-0.3.1/poisson.json", Some("llama-guidellm")),
        ],
        &dir,
        &options(),
    )
    .unwrap();
    assert_eq!(got.records, 20);
    let run = read_run(&dir).unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    assert_eq!(run.methods.len(), 2);
    assert!(run.energy.meters.is_empty());
    assert_eq!(run.energy.unavailable.len(), 2);
    assert!(run.energy.unavailable[0].reason.contains("no energy"));
    assert_eq!(run.workloads.len(), 2);
    let recs: Vec<_> = RecordReader::open(&dir).unwrap().map(|r| r.unwrap().1).collect();
    assert_eq!(recs.len(), 20);
    assert!(recs.iter().all(|r| r.energy_amortized_j.is_none()));
    let summary = read_summary(&dir, &run).unwrap().unwrap();
    let aiperf = summary.cells.iter().find(|c| c.method == "llama-aiperf").unwrap();
    assert_eq!((aiperf.requests, aiperf.ok, aiperf.failed), (12, 4, 8));
    assert!(aiperf.energy.is_none());
    // Histograms: one TTFT value per ok request.
    let hlog = std::fs::read(dir.join("histograms.hlog")).unwrap();
    let logs = crate::histograms::read_log(&hlog).unwrap();
    let ttft = logs
        .iter()
        .find(|e| e.0 == crate::histograms::tag("llama-aiperf", "poisson@2", "ttft_us"))
        .unwrap();
    assert_eq!(ttft.3.len(), 4);
}

/// The error of importing `path` alone into `out`.
fn import_err(path: PathBuf, out: &std::path::Path) -> String {
    let input = ImportInput {
        path,
        label: None,
        format: None,
    };
    import(&[input], out, &options()).unwrap_err().to_string()
}

#[test]
fn bad_input_is_named_by_file_line_and_field() {
    let d = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixture("aiperf-0.13.0/poisson/profile_export.jsonl")).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
    lines[2] = lines[2].replace("\"request_start_ns\":", "\"request_start\":");
    let file = d.path().join("profile_export.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let e = import_err(file.clone(), &d.path().join("o"));
    assert!(e.contains("profile_export.jsonl: line 3: field `metadata`"), "{e}");
    assert!(e.contains("request_start_ns"), "{e}");
    assert!(!d.path().join("o").exists(), "nothing half-written");

    let text = std::fs::read_to_string(fixture("guidellm-0.3.1/poisson.json")).unwrap();
    let mut sampled: serde_json::Value = serde_json::from_str(&text).unwrap();
    sampled["benchmarks"][0]["request_totals"]["total"] = 80.into();
    let file = d.path().join("g.json");
    std::fs::write(&file, sampled.to_string()).unwrap();
    let e = import_err(file, &d.path().join("o"));
    assert!(e.contains("kept 8 of its 80 requests"), "{e}");

    let file = d.path().join("x.csv");
    std::fs::write(&file, "a,b\n1,2\n").unwrap();
    let e = import_err(file, &d.path().join("o"));
    assert!(
        e.contains("not a result file oae can import (known: aiperf, guidellm, vllm"),
        "{e}"
    );

    let e = import(
        &[
            input("aiperf-0.13.0/poisson", None),
            input("aiperf-0.13.0/poisson", None),
        ],
        &d.path().join("o"),
        &options(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("both give method `aiperf` on workload `poisson@2`"), "{e}");
}

/// A metered recording at a constant `watts` from `unix_start` for `secs` s (one measured
/// `cpu` meter sampled every 0.1 s), idle baselines over its first and last 10 s.
fn metered(unix_start: f64, secs: f64, watts: f64) -> crate::metered::Metered {
    use crate::metered::{Metered, MeteredJson};
    let info = oae_core::rundir::MeterInfo {
        name: "rapl".into(),
        domain: "cpu".into(),
        kind: oae_core::rundir::EnergyKind::Measured,
        resolution_ms: 1.0,
        provenance: serde_json::Value::Null,
        primary: true,
        process_view: false,
    };
    let n = (secs * 10.0).round() as usize;
    let timeline = crate::meters::Timeline {
        meters: vec![info.clone()],
        samples: (0..=n)
            .map(|i| crate::meters::Sample {
                t_s: i as f64 / 10.0,
                meter: 0,
                energy_j: watts * i as f64 / 10.0,
                power_w: None,
                invalid: false,
                band_j: None,
            })
            .collect(),
        ..Default::default()
    };
    Metered {
        dir: PathBuf::from("metered"),
        info: MeteredJson {
            oae_version: "test".into(),
            unix_start,
            started_utc: String::new(),
            command: vec!["aiperf".into()],
            exit_code: Some(0),
            command_window_s: (10.0, secs - 10.0),
            idle_before_s: Some((0.0, 10.0)),
            idle_after_s: Some((secs - 10.0, secs)),
            sample_interval_ms: 100.0,
            meters: vec![info],
            unavailable: Vec::new(),
            read_errors: 0,
            host: crate::host::facts(),
        },
        timeline,
    }
}

#[test]
fn a_metered_timeline_gives_the_imported_requests_its_energy() {
    // AIPerf's first release was at 1795747850.441946364; meter from 20 s before it for 40 s.
    let first = 1_795_747_850.441_946_4;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("run");
    let mut opts = options();
    opts.timeline = Some(metered(first - 20.0, 40.0, 50.0));
    import(&[input("aiperf-0.13.0/poisson", Some("llama"))], &dir, &opts).unwrap();
    let run = read_run(&dir).unwrap();
    assert_eq!(run.energy.meters.len(), 1);
    assert!(run.energy.unavailable.is_empty(), "{:?}", run.energy.unavailable);
    let idle = &run.methods[0].idle_baseline.meters[0];
    assert!((idle.idle_w - 50.0).abs() < 0.5, "{}", idle.idle_w);
    assert!(
        (run.replays[0].start_s - 20.0).abs() < 1e-3,
        "{}",
        run.replays[0].start_s
    );
    let recs: Vec<_> = RecordReader::open(&dir).unwrap().map(|r| r.unwrap().1).collect();
    // Every joule of the cell's window is some request's (active plus its share of the
    // gaps), and at a constant power equal to idle nothing is dynamic.
    let summary = read_summary(&dir, &run).unwrap().unwrap();
    let cell = &summary.cells[0];
    let amortized: f64 = recs.iter().filter_map(|r| r.energy_amortized_j).sum();
    assert!(
        (amortized - 50.0 * cell.replay_s).abs() < 0.02 * 50.0 * cell.replay_s,
        "{amortized} vs {}",
        50.0 * cell.replay_s
    );
    assert!(recs.iter().filter_map(|r| r.energy_dyn_j).all(|j| j.abs() < 1.0));
    assert!(cell.energy.is_some());
    assert!(
        std::fs::read_to_string(dir.join("timeline.csv"))
            .unwrap()
            .lines()
            .count()
            > 300
    );
    assert!(run.runtime.contains_key("timeline"));
    assert_eq!(run.host, crate::host::facts(), "the recording's machine");

    // A recording that does not cover the peer's run is refused, naming both spans.
    let mut opts = options();
    opts.timeline = Some(metered(first + 3600.0, 40.0, 50.0));
    let e = import(&[input("aiperf-0.13.0/poisson", None)], &out.path().join("o"), &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside the timeline"), "{e}");
    assert!(e.contains("oae meter --out DIR -- <peer command>"), "{e}");
}

#[test]
fn vllm_bench_serve_results_keep_every_request() {
    let run = read("vllm-0.33.0/poisson.json");
    assert_eq!(run.tool, "vLLM bench serve");
    assert_eq!(run.model.as_deref(), Some("smollm2"));
    let cell = &run.cells[0];
    assert_eq!(cell.workload, "poisson@1");
    assert_eq!(cell.origin_unix, None, "perf_counter is not the wall clock");
    assert_eq!(cell.requests.len(), 10);
    let failed: Vec<_> = cell.requests.iter().filter(|r| r.outcome == Outcome::Error).collect();
    assert_eq!(failed.len(), 2);
    for r in &failed {
        let e = r.error.as_deref().unwrap();
        assert!(e.starts_with("aiohttp.client_exceptions.ClientPayloadError"), "{e}");
        assert_eq!((r.first_token_s, r.end_s), (None, None));
    }
    let (recs, _) = records::to_records("vllm", cell);
    // The first request: queued 0.132367 ms, TTFT 130.5526 ms after its send, latency
    // 289.0139 ms; 16 tokens and 16 gaps (vLLM also times the last chunk, which carries the
    // finish reason and no text).
    let r = &recs[0];
    assert!(
        (r.ttft_ms.unwrap() - (0.132367 + 130.552506)).abs() < 1e-3,
        "{:?}",
        r.ttft_ms
    );
    assert!(
        (r.e2e_ms.unwrap() - (0.132367 + 289.013900)).abs() < 1e-3,
        "{:?}",
        r.e2e_ms
    );
    assert!((r.dispatch_lag_ms - 0.132367).abs() < 1e-4);
    assert_eq!((r.output_tokens, r.itl_ms.len()), (16, 16));
    assert!((r.itl_ms[0] - 10.929534).abs() < 1e-4);

    // No wall clock, no timeline.
    let mut opts = options();
    opts.timeline = Some(metered(0.0, 40.0, 50.0));
    let d = tempfile::tempdir().unwrap();
    let e = import(&[input("vllm-0.33.0/poisson.json", None)], &d.path().join("o"), &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not wall-clock times"), "{e}");
}
