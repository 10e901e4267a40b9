//! `oae import` end to end: files the real peers wrote (AIPerf 0.13.0, GuideLLM 0.3.1, against
//! llama.cpp's server serving SmolLM2; harness/tests/fixtures/peers) become run directories
//! that `oae score`, `oae report` and `oae gate` accept.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn oae() -> Command {
    Command::cargo_bin("oae").unwrap()
}

fn fixture(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("harness/tests/fixtures/peers")
        .join(rel)
        .display()
        .to_string()
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}: {text}");
    text
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn imported_peer_runs_are_scored_reported_and_gated() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let text = ok(oae()
        .args([
            "import",
            "--server",
            "llama.cpp",
            "--peer-version",
            "0.3.1",
            "--baseline",
            "guidellm",
        ])
        .arg(format!("aiperf={}", fixture("aiperf-0.13.0/poisson")))
        .arg(format!("guidellm={}", fixture("guidellm-0.3.1/poisson.json")))
        .arg("--out")
        .arg(&run));
    assert!(text.contains("20 records imported"), "{text}");
    assert!(text.contains("aiperf: AIPerf 0.13.0"), "{text}");
    assert!(text.contains("energy    none: the peer measured no energy"), "{text}");

    let rj = json(&run.join("run.json"));
    assert_eq!(rj["status"], "complete");
    assert_eq!(rj["scoring"]["baseline"], "guidellm");
    assert!(
        rj["scoring"]["label_manifests"]["aiperf"]
            .as_str()
            .unwrap()
            .contains("llama.cpp")
    );
    assert_eq!(rj["runtime"]["imported"][1]["peer_version"], "0.3.1");
    assert!(rj["energy"]["meters"].as_array().unwrap().is_empty());

    let text = ok(oae().arg("report").arg(&run));
    assert!(
        text.contains("the run measured no energy (imported from AIPerf 0.13.0"),
        "{text}"
    );
    let cards = json(&run.join("scorecards.json"));
    assert_eq!(cards["rows"].as_array().unwrap().len(), 2);
    for f in ["leaderboard.html", "leaderboard.csv", "summary.md"] {
        assert!(run.join(f).is_file(), "{f}");
    }

    // The same file imported twice gates as unchanged.
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    for dir in [&a, &b] {
        ok(oae()
            .arg("import")
            .arg(format!("llama={}", fixture("aiperf-0.13.0/poisson")))
            .arg("--out")
            .arg(dir));
    }
    let text = ok(oae().args(["gate", "--baseline"]).arg(&a).arg("--current").arg(&b));
    assert!(text.contains("gate: PASS"), "{text}");
}

#[test]
fn import_refuses_bad_input_with_the_fix() {
    let d = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                fixture("guidellm-0.3.1/poisson.json"),
                "--server".into(),
                "vllm-turbo".into(),
            ],
            "unknown serving stack `vllm-turbo`",
        ),
        (
            vec![fixture("guidellm-0.3.1/poisson.json"), "--baseline".into(), "x".into()],
            "no input is labelled `x`",
        ),
        (
            vec![fixture("guidellm-0.3.1")],
            "a directory with no peer result file oae knows",
        ),
        (
            vec![
                fixture("guidellm-0.3.1/poisson.json"),
                "--format".into(),
                "locust".into(),
            ],
            "unknown peer format `locust`",
        ),
        (vec!["missing.jsonl".into()], "missing.jsonl"),
    ];
    for (args, needle) in cases {
        let out = oae()
            .arg("import")
            .args(&args)
            .arg("--out")
            .arg(d.path().join("o"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!d.path().join("o").exists(), "{args:?}: nothing written");
    }
}

#[test]
fn oae_meter_records_a_command_and_import_refuses_a_timeline_that_misses_the_peer() {
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("metered");
    let text = ok(oae()
        .args(["meter", "--idle-s", "0.3", "--interval-ms", "20", "--out"])
        .arg(&m)
        .args(["--", "sh", "-c", "sleep 0.2"]));
    assert!(text.contains("command ran"), "{text}");
    assert!(text.contains("oae import PEER_FILE --timeline"), "{text}");
    let info = json(&m.join("metered.json"));
    assert_eq!(info["exit_code"], 0);
    assert!(m.join("timeline.csv").is_file());

    // The fixture's requests ran on 2026-11-27; this recording is of now.
    let out = oae()
        .arg("import")
        .arg(fixture("aiperf-0.13.0/poisson"))
        .arg("--timeline")
        .arg(&m)
        .arg("--out")
        .arg(d.path().join("run"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("outside the timeline"), "{err}");
    assert!(!d.path().join("run").exists());

    // A failing command's exit code is oae meter's, after the files are written.
    let m2 = d.path().join("m2");
    let out = oae()
        .args(["meter", "--idle-s", "0", "--out"])
        .arg(&m2)
        .args(["--", "sh", "-c", "exit 4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(m2.join("metered.json").is_file());
}

#[test]
fn an_unlabelled_directory_is_priced_and_scored_under_the_peers_name() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    ok(oae()
        .arg("import")
        .arg(fixture("aiperf-0.13.0/poisson"))
        .args(["--server", "llama.cpp", "--out"])
        .arg(&run));
    let rj = json(&run.join("run.json"));
    assert_eq!(rj["scoring"]["baseline"], "aiperf");
    assert!(
        rj["scoring"]["label_manifests"]["aiperf"]
            .as_str()
            .unwrap()
            .contains("llama.cpp")
    );
    assert_eq!(rj["methods"][0]["label"], "aiperf");
    let text = ok(oae().arg("score").arg(&run));
    assert!(text.contains("baseline"), "{text}");
}
