//! End-to-end tests of scoring, reports and the gate through the binary, on mock-method runs:
//! a run compared with itself passes, a 50 % slower one fails, a 2 % change does not; named
//! baselines; injection attempts render as text; bad input exits 2 with a located message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

/// Runs are timed: one at a time, so tests in this file do not slow each other down.
static SERIAL: Mutex<()> = Mutex::new(());

fn oae() -> Command {
    Command::cargo_bin("oae").unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A mock suite: `scale` multiplies the service time.
fn suite(label: &str, scale: f64, extra: &str) -> String {
    format!(
        r#"name = "gate-test"
[run]
seed = 11
requests = 120
warmup_s = 0.2
[energy]
idle_baseline_s = 0.3
[slo]
e2e_ms = 500.0
[[workloads]]
name = "steady"
arrival = {{ process = "poisson", rate_qps = 25.0 }}
input_tokens = {{ dist = "uniform", min = 4, max = 32 }}
output_tokens = {{ dist = "uniform", min = 2, max = 12 }}
[[methods]]
id = "mock"
label = "{label}"
prefill_ms = {}
decode_ms_per_token = {}
{extra}"#,
        2.0 * scale,
        1.0 * scale
    )
}

fn run(dir: &Path, name: &str, suite_text: &str, extra: &[&str]) -> (PathBuf, Output) {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, suite_text).unwrap();
    let out = dir.join(name);
    let o = oae()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .arg("--out")
        .arg(&out)
        .args(extra)
        .env("OAE_BASELINES_DIR", dir.join("baselines"))
        .output()
        .unwrap();
    (out, o)
}

fn gate(base: &Path, cur: &Path, extra: &[&str]) -> Output {
    oae()
        .args(["gate", "--baseline"])
        .arg(base)
        .arg("--current")
        .arg(cur)
        .args(extra)
        .output()
        .unwrap()
}

const TIMING: &str = "e2e_p50_ms,e2e_p95_ms,ttft_p50_ms,service_mean_ms,tpot_mean_ms,attainment,failed_share";

#[test]
fn the_gate_passes_a_run_against_itself_fails_a_50_percent_slowdown_and_ignores_2_percent() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let (base, o) = run(tmp.path(), "base", &suite("m", 1.0, ""), &[]);
    assert!(o.status.success(), "{}", text(&o));
    // Every report was written at the end of the run.
    for f in [
        "scorecards.json",
        "leaderboard.csv",
        "leaderboard.parquet",
        "leaderboard.json",
        "summary.md",
        "leaderboard.html",
    ] {
        assert!(base.join(f).is_file(), "{f} missing");
    }
    let parquet = std::fs::read(base.join("leaderboard.parquet")).unwrap();
    assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));
    let csv = std::fs::read_to_string(base.join("leaderboard.csv")).unwrap();
    assert!(
        csv.starts_with("method,method_id,workload,") && csv.lines().count() == 2,
        "{csv}"
    );

    // Against itself: every metric passes with no change, exit 0.
    let o = gate(&base, &base, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let g = read_json(&base.join("gate.json"));
    assert_eq!(g["passed"], true);
    let cmp = g["comparisons"].as_array().unwrap();
    assert!(cmp.len() >= 10, "{g}");
    // (p99 needs 200 requests to be gated: skipped, which does not fail.)
    assert!(
        cmp.iter()
            .all(|c| (c["status"] == "pass" && c["change"].as_f64() == Some(0.0)) || c["status"] == "skipped"),
        "{g}"
    );
    assert!(cmp.iter().filter(|c| c["status"] == "pass").count() >= 10, "{g}");
    assert!(std::fs::read_to_string(base.join("gate.md")).unwrap().contains("pass"));

    // 2 % slower: at noise level and under the 5 % threshold — passes.
    let (small, o) = run(tmp.path(), "small", &suite("m", 1.02, ""), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = gate(&base, &small, &["--metrics", TIMING]);
    assert_eq!(o.status.code(), Some(0), "a 2 % change failed the gate:\n{}", text(&o));

    // 50 % slower: fails with the default (reference) noise floors, which it says it used. (It
    // was 30 %: on a loaded CI machine the mock's sleeps once measured +17.8 %, under the 25.5 %
    // reference floor — the gate was right, the test's margin too thin.) …
    let (slow, o) = run(tmp.path(), "slow", &suite("m", 1.5, ""), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = gate(&base, &slow, &["--metrics", TIMING]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = text(&o);
    assert!(
        s.contains("REGRESSION") && s.contains("gate: FAIL") && s.contains("not calibrated"),
        "{s}"
    );
    // … and without floors, on every timing metric it moved, service time included.
    let o = gate(&base, &slow, &["--metrics", TIMING, "--no-noise-floor"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = text(&o);
    assert!(
        s.contains("REGRESSION") && s.contains("service_mean_ms") && s.contains("gate: FAIL"),
        "{s}"
    );
    let g = read_json(&slow.join("gate.json"));
    let service = g["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "service_mean_ms")
        .unwrap();
    let change = service["change"].as_f64().unwrap();
    assert!(
        service["status"] == "regression" && change > 30.0 && change < 70.0,
        "{service}"
    );
    // A generous threshold lets it through: the threshold is what decides, not just noise.
    // (Service time: a tail percentile of a loaded machine may move more than 90 %.)
    let o = gate(&base, &slow, &["--metrics", "service_mean_ms", "--threshold-pct", "90"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A method that vanished fails the gate.
    let (other, o) = run(tmp.path(), "other", &suite("renamed", 1.0, ""), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = gate(&base, &other, &["--metrics", TIMING]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("MISSING"));

    // Unknown metric names: exit 2 with the valid ones listed.
    let o = gate(&base, &base, &["--threshold", "latency=3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("unknown metric `latency`") && text(&o).contains("e2e_p95_ms"),
        "{}",
        text(&o)
    );
}

#[test]
fn named_baselines_are_saved_and_gated_against() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let gate_section = format!(
        "[gate]\nmetrics = [{}]\n",
        TIMING
            .split(',')
            .map(|m| format!("\"{m}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (_, o) = run(
        tmp.path(),
        "first",
        &suite("m", 1.0, &gate_section),
        &["--save-baseline", "main"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(tmp.path().join("baselines/main/run.json").is_file(), "{}", text(&o));
    // A regressed run is gated, and is not saved over the reference it failed against.
    let (cur, o) = run(
        tmp.path(),
        "second",
        &suite("m", 1.4, &gate_section),
        &["--baseline", "main", "--save-baseline", "main"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(read_json(&cur.join("gate.json"))["passed"] == false);
    assert!(text(&o).contains("baseline `main` NOT saved"), "{}", text(&o));
    let kept = read_json(&tmp.path().join("baselines/main/run.json"));
    assert!(kept["command"].to_string().contains("first.toml"), "{kept}");
    let (_, o) = run(
        tmp.path(),
        "third",
        &suite("m", 1.0, &gate_section),
        &["--baseline", "nope"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("no baseline named `nope`") && text(&o).contains("--save-baseline nope"),
        "{}",
        text(&o)
    );
}

#[test]
fn perturbation_workloads_are_scored_for_robustness() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let s = suite("m", 1.0, "").replace("requests = 120", "requests = 60").replace(
        "[[methods]]",
        "[[workloads]]\nname = \"burst\"\nperturbs = \"steady\"\nperturbation = \"bursty arrivals\"\narrival = { process = \"poisson\", rate_qps = 120.0 }\ninput_tokens = 16\noutput_tokens = 8\n\n[[methods]]",
    );
    let (dir, o) = run(tmp.path(), "robust", &s, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let cards = read_json(&dir.join("scorecards.json"));
    let nominal = cards["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["workload"] == "steady")
        .unwrap();
    let rob = &nominal["robustness"];
    assert_eq!(rob["perturbations"][0]["workload"], "burst", "{rob}");
    assert_eq!(rob["worst_p95_e2e"][1], "bursty arrivals", "{rob}");
    // 120 req/s against ~10 ms of service (utilisation > 1) queues up: the tail grows.
    assert!(rob["worst_p95_e2e"][0].as_f64().unwrap() > 1.5, "{rob}");
    let html = std::fs::read_to_string(dir.join("leaderboard.html")).unwrap();
    assert!(html.contains("<td class=\"t\">bursty arrivals</td>"));
}

#[test]
fn injection_attempts_in_labels_render_as_text() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let evil = r#"<img src=x onerror=alert(1)> & "quoted" | **bold**"#;
    let mut s = suite("dense-ish", 1.0, "").replace("requests = 120", "requests = 20");
    s.push_str(&format!(
        "[[methods]]\nid = \"mock\"\nlabel = '{evil}'\nprefill_ms = 1.0\ndecode_ms_per_token = 0.5\n"
    ));
    let (dir, o) = run(tmp.path(), "evil", &s, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(dir.join("leaderboard.html")).unwrap();
    assert!(!html.contains("<img"), "raw markup from a label reached the page");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot;"),
        "escaped label missing"
    );
    // Only our own script block.
    assert_eq!(html.matches("<script").count(), 1);
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        !md.contains("<img") && md.contains("&lt;img") && md.contains("\\| \\*\\*bold\\*\\*"),
        "{md}"
    );
    let csv = std::fs::read_to_string(dir.join("leaderboard.csv")).unwrap();
    assert!(
        csv.contains(r#""<img src=x onerror=alert(1)> & ""quoted"" | **bold**""#),
        "{csv}"
    );
}

#[test]
fn bad_input_exits_2_with_a_located_message() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    // Unknown metric in the suite's thresholds: refused before anything runs.
    let (_, o) = run(
        tmp.path(),
        "badgate",
        &suite("m", 1.0, "[gate]\nthresholds = { latency_p95 = 3.0 }\n"),
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let s = text(&o);
    assert!(
        s.contains("badgate.toml:2") && s.contains("gate.thresholds") && s.contains("unknown metric `latency_p95`"),
        "{s}"
    );
    let (_, o) = run(
        tmp.path(),
        "badbase",
        &suite("m", 1.0, "[score]\nbaseline = \"dense\"\n"),
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("score.baseline") && text(&o).contains("no method labelled `dense`"),
        "{}",
        text(&o)
    );

    // A malformed site file.
    let site = tmp.path().join("site.toml");
    std::fs::write(&site, "pue = 1.2\nenergy_usd_per_kwh = \"cheap\"\n").unwrap();
    let (dir, o) = run(
        tmp.path(),
        "ok",
        &suite("m", 1.0, "").replace("requests = 120", "requests = 20"),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = oae().arg("score").arg(&dir).arg("--site").arg(&site).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("site.toml:2") && text(&o).contains("energy_usd_per_kwh"),
        "{}",
        text(&o)
    );

    // A site's own manifest replaces the declared cost; a bad one is located.
    let m = tmp.path().join("mock-site.toml");
    std::fs::write(
        &m,
        "method = \"mock\"\nexpertise = \"ml-specialist\"\ncomponents = []\ntuning_knobs = []\nevidence = \"site estimate\"\n[engineer_weeks]\ndeploy = 7\nmaintain_per_year = 0\n",
    )
    .unwrap();
    let o = oae().arg("score").arg(&dir).arg("--manifest").arg(&m).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let cards = read_json(&dir.join("scorecards.json"));
    assert_eq!(cards["rows"][0]["declared"]["level"], 4);
    assert_eq!(cards["rows"][0]["declared"]["engineer_weeks"][1], 7.0);
    std::fs::write(
        &m,
        std::fs::read_to_string(&m)
            .unwrap()
            .replace("deploy = 7", "deploy = -7"),
    )
    .unwrap();
    let o = oae().arg("score").arg(&dir).arg("--manifest").arg(&m).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("mock-site.toml:7") && text(&o).contains("engineer_weeks.deploy"),
        "{}",
        text(&o)
    );

    // An aborted run: refused without --allow-partial; with it, every report says so.
    let run_json = dir.join("run.json");
    let mut run: Value = read_json(&run_json);
    run["status"] = "aborted".into();
    run["abort_reason"] = "interrupted".into();
    std::fs::write(&run_json, serde_json::to_string(&run).unwrap()).unwrap();
    let out = tmp.path().join("partial-report");
    let o = oae().arg("report").arg(&dir).arg("--out").arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("--allow-partial") && !out.join("leaderboard.html").exists(),
        "{}",
        text(&o)
    );
    let o = oae()
        .arg("report")
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .arg("--allow-partial")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        std::fs::read_to_string(out.join("leaderboard.html"))
            .unwrap()
            .contains("PARTIAL RUN")
    );
    assert!(
        std::fs::read_to_string(out.join("summary.md"))
            .unwrap()
            .contains("PARTIAL RUN")
    );
    let csv = std::fs::read_to_string(out.join("leaderboard.csv")).unwrap();
    let (head, row) = (csv.lines().next().unwrap(), csv.lines().nth(1).unwrap());
    let i = head.split(',').position(|c| c == "partial_run").unwrap();
    assert_eq!(row.split(',').nth(i), Some("true"), "{csv}");
    assert_eq!(read_json(&out.join("leaderboard.json"))["partial"], true);
    assert_eq!(read_json(&out.join("scorecards.json"))["run"]["partial"], true);

    // Not a run directory.
    let o = oae().arg("score").arg(tmp.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no run.json"), "{}", text(&o));
}

/// The mock suite with 60 requests per trial.
fn short(label: &str, scale: f64) -> String {
    suite(label, scale, "").replace("requests = 120", "requests = 60")
}

#[test]
fn trials_calibration_and_paired_gates_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    // Trials: every cell replayed three times, interleaved; the gate's intervals are then
    // hierarchical and it says so.
    let (a, o) = run(tmp.path(), "a", &short("m", 1.0), &["--trials", "3", "--no-report"]);
    assert!(o.status.success(), "{}", text(&o));
    let run_json = read_json(&a.join("run.json"));
    assert_eq!(run_json["run"]["trials"], 3);
    assert_eq!(run_json["replays"].as_array().unwrap().len(), 3);
    assert_eq!(run_json["overrides"]["trials"], 3);
    let summary = read_json(&a.join("summary.json"));
    assert_eq!(summary["cells"][0]["trials"].as_array().unwrap().len(), 3);
    let (b, o) = run(tmp.path(), "b", &short("m", 1.0), &["--trials", "3", "--no-report"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = gate(&a, &b, &["--metrics", TIMING]);
    let t = text(&o);
    assert!(t.contains("hierarchical") && t.contains("trials 3 vs 3"), "{t}");

    // Calibration: three A/A runs → a noise file whose floors the gate applies.
    let c = {
        let (c, o) = run(tmp.path(), "c", &short("m", 1.0), &["--trials", "3", "--no-report"]);
        assert!(o.status.success(), "{}", text(&o));
        c
    };
    let noise = tmp.path().join("noise.json");
    let o = oae()
        .args(["gate", "calibrate"])
        .arg(&a)
        .arg(&b)
        .arg(&c)
        .arg("--out")
        .arg(&noise)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("service_mean_ms"), "{}", text(&o));
    let n = read_json(&noise);
    assert_eq!(n["runs"].as_array().unwrap().len(), 3);
    assert!(n["metrics"]["service_mean_ms"].as_f64().unwrap() >= 0.0);
    let o = gate(&a, &b, &["--metrics", TIMING, "--noise"]);
    assert_eq!(o.status.code(), Some(2), "--noise needs a file: {}", text(&o));
    let o = oae()
        .args(["gate", "--baseline"])
        .arg(&a)
        .arg("--current")
        .arg(&b)
        .arg("--noise")
        .arg(&noise)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "A/A with its own calibration passes: {}",
        text(&o)
    );
    assert!(
        read_json(&b.join("gate.json"))["noise"]
            .as_str()
            .unwrap()
            .ends_with("noise.json")
    );
    let o = oae().args(["gate", "calibrate"]).arg(&a).arg(&b).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "two runs are too few: {}", text(&o));

    // Paired: two suites replayed interleaved in one run; a 30 % slower configuration fails,
    // the same one passes.
    let base_suite = tmp.path().join("base.toml");
    std::fs::write(&base_suite, short("m", 1.0)).unwrap();
    let slow_suite = tmp.path().join("slow.toml");
    std::fs::write(&slow_suite, short("m", 1.3)).unwrap();
    let paired = |current: &Path, out: &Path| {
        oae()
            .args([
                "gate",
                "--paired",
                "--quiet",
                "--trials",
                "2",
                "--metrics",
                TIMING,
                "--baseline",
            ])
            .arg(&base_suite)
            .arg("--current")
            .arg(current)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let o = paired(&slow_suite, &tmp.path().join("p-slow"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("REGRESSION"), "{}", text(&o));
    let labels: Vec<String> = read_json(&tmp.path().join("p-slow").join("run.json"))["replays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        labels,
        ["baseline:m", "current:m", "baseline:m", "current:m"],
        "interleaved"
    );
    let o = paired(&base_suite, &tmp.path().join("p-same"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        read_json(&tmp.path().join("p-same").join("gate.json"))["noise"]
            .as_str()
            .unwrap()
            .contains("paired"),
        "paired gates use paired floors"
    );
    // Paired A/A runs calibrate paired floors, which fit paired gates only; kinds do not mix.
    for name in ["p-same2", "p-same3"] {
        let o = paired(&base_suite, &tmp.path().join(name));
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    let paired_noise = tmp.path().join("paired-noise.json");
    let o = oae()
        .args(["gate", "calibrate"])
        .args(["p-same", "p-same2", "p-same3"].map(|n| tmp.path().join(n)))
        .arg("--out")
        .arg(&paired_noise)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let n = read_json(&paired_noise);
    assert_eq!(n["paired"], true);
    assert!(n["cells"].as_array().unwrap().iter().all(|c| c["method"] == "m"), "{n}");
    let o = gate(&a, &b, &["--noise", paired_noise.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("calibrated on paired runs"), "{}", text(&o));
    let o = oae()
        .args(["gate", "calibrate"])
        .arg(&a)
        .arg(tmp.path().join("p-same"))
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // Suites that replay different traffic cannot be paired.
    let other = tmp.path().join("other.toml");
    std::fs::write(&other, short("m", 1.0).replace("rate_qps = 25.0", "rate_qps = 5.0")).unwrap();
    let o = paired(&other, &tmp.path().join("p-other"));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("same traffic"), "{}", text(&o));
}
