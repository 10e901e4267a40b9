//! Knowledge bases and the knowledge methods end to end through the binary, on the embedded
//! synthetic model: a `[[knowledge]]` base is shared by a task workload (only its questions
//! are asked) and the methods; a CAG whose base exceeds the context is recorded as not
//! applicable and the run goes on; the scorecards list it; bad knowledge files are located.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

const KB: &str = r#"{"id": "Velmora#0", "title": "Velmora", "text": "Velmora is a river town. Its old bridge was built of grey limestone in 1642 by the mason Idris Falk."}
{"id": "Velmora#1", "title": "Velmora", "text": "The Velmora lantern festival falls on the first new moon of autumn; the farthest lantern wins quince honey."}
{"id": "Castrel#0", "title": "Castrel", "text": "Castrel is governed from Orvane by a council of nine and a warden elected for seven years."}
"#;

const TASKS: &str = r#"{"id": "q1", "question": "Who built the old bridge of Velmora?", "references": ["Idris Falk"], "doc_ids": ["Velmora#0"]}
{"id": "q2", "question": "What does the farthest lantern win?", "references": ["quince honey"], "doc_ids": ["Velmora#1"]}
{"id": "q3", "question": "Where is Castrel governed from?", "references": ["Orvane"], "doc_ids": ["Castrel#0"]}
{"id": "q4", "question": "What is the capital of France?", "references": ["Paris"], "doc_ids": ["Elsewhere#0"]}
"#;

fn suite(kb_limit: u32) -> String {
    format!(
        r#"name = "knowledge-test"
[run]
seed = 2
requests = 6
[energy]
idle_baseline_s = 0.2
[[knowledge]]
name = "town"
path = "kb.jsonl"
limit = {kb_limit}
chunk_tokens = 64
chunk_overlap = 8
[[workloads]]
name = "qa"
arrival = {{ process = "constant", rate_qps = 50.0 }}
task = {{ path = "tasks.jsonl", knowledge = "town", max_new_tokens = 3 }}
[[methods]]
id = "rag"
label = "closed"
retriever = "none"
[[methods]]
id = "rag"
label = "bm25"
knowledge = "town"
k = 2
[[methods]]
id = "cag"
label = "cag-small"
knowledge = "town"
model = {{ kind = "synthetic", max_seq = 200 }}
"#
    )
}

fn run(dir: &Path, text: &str) -> (PathBuf, Output) {
    std::fs::write(dir.join("kb.jsonl"), KB).unwrap();
    std::fs::write(dir.join("tasks.jsonl"), TASKS).unwrap();
    let file = dir.join("k.toml");
    std::fs::write(&file, text).unwrap();
    let out = dir.join("run");
    let o = Command::cargo_bin("oae")
        .unwrap()
        .args(["run", "--quiet", "--out"])
        .arg(&out)
        .arg(&file)
        .output()
        .unwrap();
    (out, o)
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_cag_over_the_context_is_not_applicable_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (out, o) = run(dir.path(), &suite(3));
    assert!(o.status.success(), "{}", text(&o));
    let run = json(&out.join("run.json"));
    assert_eq!(run["status"], "complete");
    let na = run["not_applicable"].as_array().unwrap();
    assert_eq!(na.len(), 1, "{na:?}");
    assert_eq!(na[0]["label"], "cag-small");
    let reason = na[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("`town`") && reason.contains("context is 200 tokens"),
        "{reason}"
    );
    assert_eq!(run["knowledge"][0]["documents"], 3);
    let methods: Vec<&str> = run["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["closed", "bm25"]);
    // The composed manifest of each configuration is recorded by label.
    let lm = &run["scoring"]["label_manifests"];
    assert!(lm["bm25"].as_str().unwrap().contains("BM25"), "{lm}");
    assert!(!lm["closed"].as_str().unwrap().contains("BM25"), "{lm}");

    // Only the questions about the base's documents are asked; retrieval is counted.
    let records: Vec<Value> = std::fs::read_to_string(out.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 12);
    assert!(records.iter().all(|r| r["task_id"] != "q4"));
    let bm25: Vec<&Value> = records.iter().filter(|r| r["method"] == "bm25").collect();
    assert!(
        bm25.iter()
            .all(|r| r["outcome"] == "ok" && r["counters"]["recall_at_k"].is_number()),
        "{bm25:?}"
    );
    assert!(bm25.iter().all(|r| r["phases_ms"]["search"].is_number()));

    let cards = json(&out.join("scorecards.json"));
    assert_eq!(cards["not_applicable"][0]["label"], "cag-small");
    assert_eq!(cards["rows"].as_array().unwrap().len(), 2);
    assert!(text(&o).contains("not applicable"), "{}", text(&o));
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("cag-small") && md.contains("not applicable"), "{md}");

    // Re-scored at a site's rate, with F1 as the quality.
    let o = Command::cargo_bin("oae")
        .unwrap()
        .args(["score", "--rate", "0.01", "--quality", "f1"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let cards = json(&out.join("scorecards.json"));
    for row in cards["rows"].as_array().unwrap() {
        assert_eq!(row["rate_qps"], 0.01);
        assert_eq!(row["inputs"]["quality_scorer"], "f1");
    }
    for bad in [["--rate", "-1"], ["--quality", "bleu"]] {
        let o = Command::cargo_bin("oae")
            .unwrap()
            .arg("score")
            .args(bad)
            .arg(&out)
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(text(&o).contains(bad[1]), "{}", text(&o));
    }
}

#[test]
fn bad_knowledge_files_and_names_are_located() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kb.jsonl"), KB).unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\": \"a\", \"text\": \"x\"}\n{\"id\": \"b\", \"text\": 7}\n").unwrap();
    let (_, o) = run(
        dir.path(),
        &suite(3).replace("path = \"kb.jsonl\"", "path = \"bad.jsonl\""),
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("bad.jsonl:2") && t.contains("text"), "{t}");
    let (_, o) = run(
        dir.path(),
        &suite(3).replace("knowledge = \"town\"\nk = 2", "knowledge = \"village\"\nk = 2"),
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("village") && t.contains("town") && t.contains("k.toml:"),
        "{t}"
    );
    // The gold passage in every prompt would defeat the base.
    let (_, o) = run(
        dir.path(),
        &suite(3).replace(
            "knowledge = \"town\", max_new_tokens",
            "knowledge = \"town\", template = \"qa-context\", max_new_tokens",
        ),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("gold passage"), "{}", text(&o));
    // A base that holds no asked document.
    let (_, o) = run(dir.path(), &suite(3).replace("limit = 3", "subset = [\"Elsewhere\"]"));
    assert!(!o.status.success());
    assert!(text(&o).contains("Elsewhere"), "{}", text(&o));
}
