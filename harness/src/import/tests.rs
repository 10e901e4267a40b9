//! Imports of files the real peers wrote (harness/tests/fixtures/peers, with how each was made).

use std::path::PathBuf;

use oae_core::rundir::{RecordReader, read_run, read_summary};

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
            gate: oae_core::rundir::GateSettings {
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
    let recs = to_records("aiperf", cell);
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
    assert!((r.intended_s - (1795747851.887686835 - 1795747850.441946364)).abs() < 1e-6);
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
    let recs = to_records("guidellm", cell);
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

#[test]
fn bad_input_is_named_by_file_line_and_field() {
    let d = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixture("aiperf-0.13.0/poisson/profile_export.jsonl")).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
    lines[2] = lines[2].replace("\"request_start_ns\":", "\"request_start\":");
    let file = d.path().join("profile_export.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let e = import(
        &[ImportInput {
            path: file.clone(),
            label: None,
            format: None,
        }],
        &d.path().join("o"),
        &options(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("profile_export.jsonl: line 3: field `metadata`"), "{e}");
    assert!(e.contains("request_start_ns"), "{e}");
    assert!(!d.path().join("o").exists(), "nothing half-written");

    let text = std::fs::read_to_string(fixture("guidellm-0.3.1/poisson.json")).unwrap();
    let mut sampled: serde_json::Value = serde_json::from_str(&text).unwrap();
    sampled["benchmarks"][0]["request_totals"]["total"] = 80.into();
    let file = d.path().join("g.json");
    std::fs::write(&file, sampled.to_string()).unwrap();
    let e = import(
        &[ImportInput {
            path: file,
            label: None,
            format: None,
        }],
        &d.path().join("o"),
        &options(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("kept 8 of its 80 requests"), "{e}");

    let file = d.path().join("x.csv");
    std::fs::write(&file, "a,b\n1,2\n").unwrap();
    let e = import(
        &[ImportInput {
            path: file,
            label: None,
            format: None,
        }],
        &d.path().join("o"),
        &options(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("not a result file oae can import (known: aiperf, guidellm"),
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
