//! `oae run` with the `openai` method end to end: oae launches its own scripted server
//! (`oae fake-server`) as the method's setup, replays a Poisson trace against it, records
//! every request — failures with their own outcomes — and stops the server.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `suite` into `dir`, runs it (must succeed) and returns the run directory and its records.
fn run(dir: &Path, suite: &str) -> (PathBuf, Vec<Value>) {
    let path = dir.join("suite.toml");
    std::fs::write(&path, suite).unwrap();
    let out = dir.join("run");
    let o = Command::cargo_bin("oae")
        .unwrap()
        .arg("run")
        .arg(&path)
        .args(["--quiet", "--no-report", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let records = std::fs::read_to_string(out.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, records)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_launched_server_is_setup_and_every_request_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bin = Command::cargo_bin("oae")
        .unwrap()
        .get_program()
        .to_string_lossy()
        .into_owned();
    // Warm-up takes completion 0 (ok); then requests 0..12 meet ok, ok, 429, cut, 500, ok.
    let suite = format!(
        r#"
name = "http-e2e"
[run]
seed = 3
requests = 12
warmup_s = 0.0
[energy]
idle_baseline_s = 0.0
[[workloads]]
name = "poisson"
arrival = {{ process = "poisson", rate_qps = 40.0 }}
input_tokens = {{ dist = "uniform", min = 8, max = 32 }}
output_tokens = 6
[[methods]]
id = "openai"
label = "fake-llama"
base_url = "http://127.0.0.1:{port}/v1"
model = "fake"
server = "llama.cpp"
launch = {{ command = ["{bin}", "fake-server", "--listen", "127.0.0.1:{port}", "--ttft-ms", "20", "--itl-ms", "5", "--loading-s", "0.3", "--faults", "ok,ok,ok,429,cut,500"] }}
"#
    );
    let (out, records) = run(dir.path(), &suite);

    assert_eq!(records.len(), 12, "every request has a record");
    let outcome = |i: usize| {
        records.iter().find(|r| r["request_id"] == i).unwrap()["outcome"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Completion k (k = 0 the warm-up) follows faults[k % 6]: request i is completion i + 1.
    let want = |i: usize| match (i + 1) % 6 {
        3 => "rejected",
        4 | 5 => "error",
        _ => "ok",
    };
    for i in 0..12 {
        assert_eq!(outcome(i), want(i), "request {i}");
    }
    for r in records.iter().filter(|r| r["outcome"] == "ok") {
        assert_eq!(r["output_tokens"], 6);
        assert!(r["input_tokens"].as_u64().unwrap() > 0);
        let ttft = r["ttft_ms"].as_f64().unwrap();
        assert!(
            ttft >= 20.0,
            "TTFT from the intended arrival includes the scripted 20 ms: {ttft}"
        );
        assert_eq!(r["itl_ms"].as_array().unwrap().len(), 5);
        assert!(r["tpot_ms"].as_f64().unwrap() >= 4.0);
        assert_eq!(r["counters"]["tokens_from_usage"], 1.0);
    }
    let rejected = records.iter().find(|r| r["outcome"] == "rejected").unwrap();
    assert!(rejected["error"].as_str().unwrap().contains("HTTP 429"));
    assert_eq!(rejected["counters"]["http_429"], 1.0);

    let run = read_json(&out.join("run.json"));
    let m = &run["methods"][0];
    let server = &m["facts"]["server"];
    assert_eq!(server["launched"], true);
    let ready = server["ready_s"].as_f64().unwrap();
    assert!(ready >= 0.3, "the server's loading time is measured: {ready}");
    assert!(m["setup_s"].as_f64().unwrap() >= ready, "start-up is part of setup");
    let log = out.join("methods/fake-llama/server.log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("serving model `fake`"), "{text}");
    // Stopped at the end: nothing listens any more.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server was stopped"
    );
}

/// Against llama.cpp's own server (llama-cpp-python[server], `scripts/llama-server.sh`) serving
/// SmolLM2: needs `OAE_LLAMA_SERVER_PYTHON` (the script's output) and the cached model (`oae
/// models fetch smollm2-135m-instruct`); skips with a message without them, unless
/// `OAE_REQUIRE_LLAMA_SERVER=1` (set by CI once it has installed both).
#[test]
fn a_real_llama_cpp_server_is_launched_replayed_and_stopped() {
    let required = std::env::var("OAE_REQUIRE_LLAMA_SERVER").is_ok_and(|v| v == "1");
    let skip = |why: String| {
        assert!(!required, "OAE_REQUIRE_LLAMA_SERVER=1 but {why}");
        eprintln!("skipped: {why}");
    };
    let Ok(python) = std::env::var("OAE_LLAMA_SERVER_PYTHON") else {
        return skip("OAE_LLAMA_SERVER_PYTHON is not set (py=$(scripts/llama-server.sh) installs the server)".into());
    };
    let entry = oae_methods::model::catalog::entry("smollm2-135m-instruct").unwrap();
    let root = oae_methods::model::catalog::cache_dir();
    if !entry.present(&root) {
        return skip("the SmolLM2 model is not cached (oae models fetch smollm2-135m-instruct)".into());
    }
    let gguf = entry.model_path(&root);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let suite = format!(
        r#"
name = "llama-server"
[run]
seed = 11
requests = 8
warmup_s = 0.0
[energy]
idle_baseline_s = 0.0
[[workloads]]
name = "poisson"
arrival = {{ process = "poisson", rate_qps = 1.0 }}
input_tokens = {{ dist = "uniform", min = 16, max = 64 }}
output_tokens = 12
[[methods]]
id = "openai"
label = "llama-server"
base_url = "http://127.0.0.1:{port}/v1"
model = "smollm2"
server = "llama.cpp"
tokenizer = "{gguf}"
launch = {{ command = ["{python}", "-m", "llama_cpp.server", "--model", "{gguf}", "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", "{port}", "--n_ctx", "1024", "--n_threads", "2"], ready = "/v1/models", ready_timeout_s = 120 }}
"#,
        gguf = gguf.display()
    );
    let (out, records) = run(dir.path(), &suite);
    assert_eq!(records.len(), 8);
    for r in &records {
        assert_eq!(r["outcome"], "ok", "{r}");
        let n = r["output_tokens"].as_u64().unwrap();
        assert!((1..=12).contains(&n), "{r}");
        // The prompt's own tokens (16–64 bytes of text) when the server sends no usage
        // (llama-cpp-python 0.3.36 does not, streaming): counted by the tokenizer, flagged.
        assert!(r["input_tokens"].as_u64().unwrap() >= 1, "{r}");
        assert!(!r["output_text"].as_str().unwrap().is_empty(), "{r}");
        assert!(r["ttft_ms"].as_f64().unwrap() > 0.0);
        assert!(r["e2e_ms"].as_f64().unwrap() >= r["ttft_ms"].as_f64().unwrap());
        let c = &r["counters"];
        assert_eq!(
            c["tokens_from_usage"].as_f64().unwrap_or(0.0) + c["tokens_from_tokenizer"].as_f64().unwrap_or(0.0),
            1.0,
            "counted by the server or the model's tokenizer, never by chunks: {c}"
        );
        let chunks = c["chunks"].as_f64().unwrap();
        assert!(chunks >= 1.0);
        assert_eq!(
            r["itl_ms"].as_array().unwrap().len() as f64,
            chunks - 1.0,
            "one ITL per gap between chunks"
        );
    }
    let run = read_json(&out.join("run.json"));
    let m = &run["methods"][0];
    assert!(
        m["facts"]["served_models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "smollm2")
    );
    let ready = m["facts"]["server"]["ready_s"].as_f64().unwrap();
    assert!(ready > 0.0 && m["setup_s"].as_f64().unwrap() >= ready);
    let log = std::fs::read_to_string(out.join("methods/llama-server/server.log")).unwrap();
    assert!(!log.trim().is_empty(), "the server's log is kept");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server was stopped"
    );
}
