//! Schedules generated from a workload are reproducible from the seed.

use std::sync::Arc;
use std::time::Duration;

use oae_core::config::SourceFile;
use oae_workloads::workload::WorkloadEntry;
use oae_workloads::{Limit, WorkloadSpec};

fn workload(text: &str) -> WorkloadSpec {
    let source: Arc<SourceFile> = SourceFile::new("w.toml", text);
    let entry: WorkloadEntry = toml::from_str(text).unwrap();
    WorkloadSpec::from_entry(entry, &source, 0, &[]).unwrap()
}

const POISSON: &str = r#"
name = "sporadic"
arrival = { process = "poisson", rate_qps = 2.0 }
input_tokens = { dist = "uniform", min = 8, max = 40 }
output_tokens = 16
"#;

#[test]
fn same_seed_same_hash_different_seed_different_hash() {
    let w = workload(POISSON);
    let a = w.schedule(42, Limit::Count(50), None).unwrap();
    let b = w.schedule(42, Limit::Count(50), None).unwrap();
    let c = w.schedule(43, Limit::Count(50), None).unwrap();
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.arrivals, b.arrivals);
    assert_ne!(a.hash, c.hash);
    assert_eq!(a.len(), 50);
    assert!(
        a.arrivals
            .iter()
            .all(|x| (8..=40).contains(&(x.request.prompt.len() as u32)))
    );
}

#[test]
fn duration_limit_and_compression_change_the_hash() {
    let w = workload(POISSON);
    let full = w.schedule(1, Limit::Duration(Duration::from_secs(30)), None).unwrap();
    assert!(full.arrivals.iter().all(|a| a.at < Duration::from_secs(30)));
    let capped = w
        .schedule(
            1,
            Limit::Duration(Duration::from_secs(30)),
            Some(Duration::from_millis(100)),
        )
        .unwrap();
    assert_eq!(full.len(), capped.len());
    assert_ne!(full.hash, capped.hash);
    assert!(capped.compression.factor > 1.0);
}

fn trace_workload(
    dir: &std::path::Path,
    file: &str,
    body: &str,
    trace_keys: &str,
) -> Result<WorkloadSpec, oae_core::ConfigError> {
    std::fs::write(dir.join(file), body).unwrap();
    let suite_path = dir.join("suite.toml");
    let text = format!("name = \"t\"\ntrace = {{ path = \"{file}\", {trace_keys} }}\n");
    let source: Arc<SourceFile> = SourceFile::new(suite_path.display().to_string(), text.clone());
    let entry: WorkloadEntry = toml::from_str(&text).unwrap();
    WorkloadSpec::from_entry(entry, &source, 0, &[])
}

fn burst_csv(rows: usize) -> String {
    let mut s = String::from("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n");
    for i in 0..rows {
        // One request per second; every 10th has no response (failed in the source).
        let out = if i % 10 == 9 { 0 } else { 20 + i % 7 };
        s.push_str(&format!(
            "{},ChatGPT,{},{},0,Conversation log\n",
            100 + i,
            30 + i % 50,
            out
        ));
    }
    s
}

#[test]
fn trace_window_scaling_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let w = trace_workload(
        dir.path(),
        "b.csv",
        &burst_csv(200),
        "format = \"burstgpt\", start_s = 50, end_s = 150, time_scale = 0.5",
    )
    .unwrap();
    let s = w.schedule(1, Limit::Count(1000), None).unwrap();
    assert_eq!(s.len(), 100, "window [50, 150) holds 100 rows");
    assert_eq!(s.arrivals[0].at, Duration::ZERO);
    assert_eq!(s.arrivals[1].at, Duration::from_millis(500), "time_scale halves gaps");
    let failed = s.arrivals.iter().filter(|a| a.request.source_failed).count();
    assert_eq!(failed, 10, "source failures are kept and flagged");
    assert!(s.arrivals.iter().all(|a| a.request.max_new_tokens >= 1));
    assert_eq!(s.arrivals[0].request.prompt.len(), 30);
    let again = w.schedule(1, Limit::Count(1000), None).unwrap();
    assert_eq!(s.hash, again.hash);
    assert_eq!(w.schedule(1, Limit::Count(7), None).unwrap().len(), 7);
}

#[test]
fn trace_thinning_reaches_the_target_rate_and_never_thins_up() {
    let dir = tempfile::tempdir().unwrap();
    let w = trace_workload(
        dir.path(),
        "b.csv",
        &burst_csv(4000),
        "format = \"burstgpt\", rate_qps = 0.25",
    )
    .unwrap();
    let s = w.schedule(3, Limit::Count(100_000), None).unwrap();
    let rate = s.len() as f64 / 4000.0;
    assert!((rate - 0.25).abs() < 0.03, "thinned rate {rate}");
    let e = trace_workload(
        dir.path(),
        "c.csv",
        &burst_csv(100),
        "format = \"burstgpt\", rate_qps = 5",
    )
    .unwrap()
    .schedule(3, Limit::Count(10), None)
    .unwrap_err();
    assert!(
        e.message.contains("cannot thin up") && e.key.ends_with("rate_qps"),
        "{e}"
    );
}

#[test]
fn trace_window_outside_the_trace_and_bad_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let e = trace_workload(
        dir.path(),
        "b.csv",
        &burst_csv(10),
        "format = \"burstgpt\", start_s = 500",
    )
    .unwrap()
    .schedule(1, Limit::Count(5), None)
    .unwrap_err();
    assert!(e.message.contains("holds no requests"), "{e}");
    let e = trace_workload(dir.path(), "b.csv", &burst_csv(10), "format = \"sharegpt\"").unwrap_err();
    assert!(e.message.contains("burstgpt") && e.key.ends_with("format"), "{e}");
    let e = trace_workload(
        dir.path(),
        "b.csv",
        &burst_csv(10),
        "format = \"burstgpt\", start_s = 5, end_s = 2",
    )
    .unwrap_err();
    assert!(e.key.ends_with("end_s"), "{e}");
    let e = trace_workload(dir.path(), "b.csv", &burst_csv(10), "format = \"burstgpt\", speed = 2").unwrap_err();
    assert!(e.message.contains("unknown field"), "{e}");
}

#[test]
fn mooncake_blocks_become_shared_prompt_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let body = "{\"timestamp\": 0, \"input_length\": 1200, \"output_length\": 5, \"hash_ids\": [1, 2, 3]}\n{\"timestamp\": 10, \"input_length\": 700, \"output_length\": 5, \"hash_ids\": [1, 9]}\n";
    let w = trace_workload(dir.path(), "m.jsonl", body, "format = \"mooncake\"").unwrap();
    let s = w.schedule(1, Limit::Count(10), None).unwrap();
    let (a, b) = (&s.arrivals[0].request.prompt, &s.arrivals[1].request.prompt);
    assert_eq!((a.len(), b.len()), (1200, 700));
    assert_eq!(a[..512], b[..512], "shared first block, shared prefix");
    assert_ne!(a[512..700], b[512..700], "different second block");
    assert_eq!(s.arrivals[1].at, Duration::from_millis(10));
}

#[test]
fn a_trace_that_steps_back_a_hair_replays_only_with_an_explicit_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let body = "t_s,input_tokens,output_tokens\n0,8,2\n1.0000004,8,2\n1.0000001,8,2\n2,8,2\n";
    let strict = trace_workload(dir.path(), "m.csv", body, "format = \"oae-csv\"").unwrap();
    let e = strict.schedule(1, Limit::Count(10), None).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (4, "timestamp"), "{e}");
    assert!(e.message.contains("reorder_tolerance_s"), "{e}");
    let w = trace_workload(
        dir.path(),
        "m.csv",
        body,
        "format = \"oae-csv\", reorder_tolerance_s = 1e-6",
    )
    .unwrap();
    let s = w.schedule(1, Limit::Count(10), None).unwrap();
    assert_eq!((s.len(), s.reordered_rows), (4, 1));
    assert!(s.arrivals.windows(2).all(|p| p[0].at <= p[1].at), "kept in order");
    assert_eq!(w.describe()["reorder_tolerance_s"], 1e-6);
    let e = trace_workload(
        dir.path(),
        "m.csv",
        body,
        "format = \"oae-csv\", reorder_tolerance_s = -1",
    )
    .unwrap_err();
    assert_eq!(e.key, "workloads[0].trace.reorder_tolerance_s", "{e}");
}
