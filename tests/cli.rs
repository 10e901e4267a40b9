//! End-to-end tests of the `oae` binary: outputs parse and agree; bad input exits 2 with a
//! located message; an interrupted run says so and keeps its records.

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

mod common;

fn oae() -> Command {
    Command::cargo_bin("oae").unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record line {l}: {e}")))
        .collect()
}

const MOCK_SUITE: &str = r#"
name = "mock-e2e"
[run]
seed = 5
requests = 30
warmup_s = 0.05
[energy]
idle_baseline_s = 1.0
[[workloads]]
name = "burst"
arrival = { process = "poisson", rate_qps = 200.0 }
input_tokens = { dist = "uniform", min = 4, max = 32 }
output_tokens = 3
[[methods]]
id = "mock"
label = "flaky"
prefill_ms = 1.0
decode_ms_per_token = 0.2
fail_every = 5
"#;

/// `oae run SUITE --quiet --out OUT` with extra arguments.
/// Suites that do not set `[energy] idle_baseline_s` run without a baseline (the 30 s default
/// would only slow the tests down).
fn run_suite(suite: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let sets_baseline = std::fs::read_to_string(suite)
        .unwrap_or_default()
        .contains("idle_baseline_s")
        || extra.contains(&"--idle-baseline-s");
    oae()
        .arg("run")
        .arg(suite)
        .arg("--quiet")
        .args(if sets_baseline {
            &[][..]
        } else {
            &["--idle-baseline-s", "0"][..]
        })
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn write_suite(dir: &Path, text: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("suite.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn default_suite_run_produces_files_that_parse_and_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = oae()
        .args(["run", "--requests", "12", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("dense-greedy × sporadic-poisson") && stdout.contains("ESTIMATED"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("run directory: {}", out.display())));

    let run = read_json(&out.join("run.json"));
    assert_eq!(run["status"], "complete");
    // Two methods (dense baseline, self-speculative) × 12 requests.
    assert_eq!(run["methods"].as_array().unwrap().len(), 2);
    assert_eq!(run["records"], 24);
    assert_eq!(run["overrides"]["requests"], 12);
    assert_eq!(run["workloads"][0]["requests"], 12);
    assert_eq!(run["workloads"][0]["schedule_hash"].as_str().unwrap().len(), 64);
    assert_eq!(run["suite"]["name"], "quick");
    // Estimated unless this machine has a readable hardware counter (RAPL as root on bare metal).
    let measured_here = read_json(&out.join("summary.json"))["cells"][0]["energy"]["kind"] == "measured";
    assert_eq!(run["energy"]["validity"]["estimated"], !measured_here);
    assert!(run["host"]["logical_cpus"].as_u64().unwrap() >= 1);

    let all = records(&out);
    assert_eq!(all.len(), 24, "record count = requests × methods");
    for method in ["dense-greedy", "self-speculative"] {
        let mut ids: Vec<u64> = all
            .iter()
            .filter(|r| r["method"] == method)
            .map(|r| r["request_id"].as_u64().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, (0..12).collect::<Vec<_>>(), "{method}");
    }
    let recs: Vec<&Value> = all.iter().filter(|r| r["method"] == "dense-greedy").collect();
    // Scored and reported at the end of the run.
    let cards = read_json(&out.join("scorecards.json"));
    assert_eq!(cards["baseline"], "dense-greedy");
    assert_eq!(cards["rows"].as_array().unwrap().len(), 2);
    assert!(out.join("leaderboard.html").is_file() && out.join("summary.md").is_file());
    assert!(
        stdout.contains("self-speculative") && stdout.contains("once overhead is counted"),
        "{stdout}"
    );
    // The quick suite measures a 5 s idle baseline before and after: dynamic energy exists,
    // amortized ≥ active, phases add up to active, carbon is attached to every request.
    let baseline = &run["methods"][0]["idle_baseline"];
    assert!(baseline["before"]["duration_s"].as_f64().unwrap() >= 5.0, "{baseline}");
    assert!(baseline["meters"][0]["idle_w"].as_f64().unwrap() > 0.0, "{baseline}");
    assert_eq!(
        run["energy"]["validity"]["valid"], true,
        "{}",
        run["energy"]["validity"]
    );
    assert!(run["energy"]["validity"]["idle_drift_pct"].is_number());
    for r in &recs {
        assert_eq!(r["outcome"], "ok");
        assert_eq!(r["energy_estimated"], !measured_here);
        let active = r["energy_active_j"].as_f64().unwrap();
        assert!(active >= 0.0);
        assert!(r["energy_amortized_j"].as_f64().unwrap() >= active);
        assert!(r["energy_dyn_j"].is_number(), "{r}");
        let phases = r["energy_prefill_j"].as_f64().unwrap() + r["energy_decode_j"].as_f64().unwrap();
        assert!((phases - active).abs() <= 1e-9 * active.max(1.0));
        assert!(r["co2e_g"].as_f64().unwrap() > 0.0);
        assert!(r["e2e_ms"].as_f64().unwrap() >= r["ttft_ms"].as_f64().unwrap());
    }

    let summary = read_json(&out.join("summary.json"));
    let cell = &summary["cells"][0];
    assert_eq!(cell["requests"], 12);
    let warm = recs.iter().filter(|r| r["warmup"] == true).count() as u64;
    assert_eq!(cell["warmup"].as_u64().unwrap(), warm);
    assert_eq!(cell["measured"].as_u64().unwrap() + warm, 12);
    assert_eq!(cell["ok"], cell["measured"]);
    let ttft = &cell["latency"]["ttft_ms"];
    assert_eq!(ttft["n"], cell["ok"]);
    assert!(ttft["p50"]["value"].as_f64().unwrap() > 0.0);
    assert_eq!(cell["energy"]["estimated"].as_bool().unwrap(), !measured_here);
    assert_eq!(cell["energy"]["valid"], true);
    assert!(cell["energy"]["conservation_error_j"].as_f64().unwrap().abs() < 1e-6);
    let carbon = &cell["carbon"];
    assert_eq!(carbon["estimated"], true);
    assert_eq!(carbon["pue_default"], true);
    let f = &carbon["per_request_facility"];
    let parts = f["operational_g"].as_f64().unwrap() + f["embodied_g"].as_f64().unwrap();
    assert!((parts - f["total_g"].as_f64().unwrap()).abs() < 1e-12);
    assert!(out.join("timeline.csv").exists() && out.join("histograms.hlog").exists());
    // Everything CI checks of its own quick run, through the typed schema.
    common::check_quick_run(&out, 12, 2, false);
}

#[test]
fn failures_are_recorded_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(tmp.path(), MOCK_SUITE);
    let out = tmp.path().join("run");
    let o = run_suite(&suite, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs = records(&out);
    assert_eq!(recs.len(), 30);
    let failed: Vec<&Value> = recs.iter().filter(|r| r["outcome"] == "error").collect();
    assert_eq!(failed.len(), 6, "ids 4, 9, 14, 19, 24, 29 fail");
    assert!(
        failed
            .iter()
            .all(|r| r["error"].as_str().unwrap().contains("mock failure"))
    );
    let cell = &read_json(&out.join("summary.json"))["cells"][0];
    let measured_failed = recs
        .iter()
        .filter(|r| r["outcome"] == "error" && r["warmup"] == false)
        .count() as u64;
    assert_eq!(cell["failed"].as_u64().unwrap(), measured_failed);
    assert_eq!(cell["outcomes"]["error"].as_u64().unwrap(), measured_failed);
}

#[test]
fn a_warm_up_in_prepare_keeps_the_cold_start_out_of_the_first_request() {
    // A scripted 400 ms first-call cost (a GPU's context creation and JIT), paid in setup
    // with `warm_up = true`, in the first request without.
    let tmp = tempfile::tempdir().unwrap();
    let suite = |warm: bool| {
        format!(
            "name = \"cold\"\n[run]\nseed = 1\nrequests = 4\nwarmup_s = 0.0\n[[workloads]]\nname = \"w\"\narrival = {{ process = \"constant\", rate_qps = 20.0 }}\ninput_tokens = 4\noutput_tokens = 2\n[[methods]]\nid = \"mock\"\nlabel = \"m\"\nprefill_ms = 1.0\ncold_start_ms = 400.0\nwarm_up = {warm}\n"
        )
    };
    let first_e2e_and_setup = |warm: bool| {
        let dir = tmp.path().join(format!("w{warm}"));
        let out = dir.join("run");
        let o = run_suite(&write_suite(&dir, &suite(warm)), &out, &["--no-report"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let recs = records(&out);
        let first = recs.iter().find(|r| r["request_id"] == 0).unwrap();
        let method = &read_json(&out.join("run.json"))["methods"][0];
        (
            first["service_ms"].as_f64().unwrap(),
            method["setup_s"].as_f64().unwrap(),
            method["cold_start_s"].as_f64(),
        )
    };
    let (service, setup, cold) = first_e2e_and_setup(true);
    assert!(service < 200.0, "the first request is served warm: {service} ms");
    assert!(setup >= 0.4, "setup paid the cold start: {setup} s");
    assert!(
        cold.is_some_and(|c| c >= 0.4 && c <= setup),
        "run.json cold_start_s: {cold:?}"
    );
    let (service, setup, cold) = first_e2e_and_setup(false);
    assert!(
        service >= 400.0,
        "without a warm-up the first request pays it: {service} ms"
    );
    assert!(setup < 0.4 && cold.is_none(), "{setup} {cold:?}");
}

#[test]
fn same_seed_same_schedule_different_seed_different_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(tmp.path(), MOCK_SUITE);
    let hash = |seed: &str, name: &str| {
        let out = tmp.path().join(name);
        let o = run_suite(&suite, &out, &["--requests", "5", "--seed", seed]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        read_json(&out.join("run.json"))["workloads"][0]["schedule_hash"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let a = hash("1", "a");
    assert_eq!(a, hash("1", "b"));
    assert_ne!(a, hash("2", "c"));
}

fn fails_with(args: &[&str], suite: Option<&str>, needles: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = oae();
    cmd.args(args);
    if let Some(text) = suite {
        cmd.arg(write_suite(tmp.path(), text));
    }
    let out = tmp.path().join("never");
    let o = cmd.arg("--out").arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "expected `{n}` in: {stderr}");
    }
    assert_eq!(stderr.trim().lines().count(), 1, "one clear message: {stderr}");
    assert!(!out.exists(), "bad input must not create a run directory");
}

#[test]
fn bad_suites_exit_2_naming_file_line_and_key() {
    fails_with(
        &["run"],
        Some(&MOCK_SUITE.replace("seed = 5", "seed = 5\nsede = 6")),
        &["suite.toml:5", "sede", "unknown field"],
    );
    fails_with(
        &["run"],
        Some(&MOCK_SUITE.replace("id = \"mock\"", "id = \"turbo\"")),
        &["suite.toml:15", "unknown method `turbo`", "dense", "mock"],
    );
    fails_with(
        &["run"],
        Some(&MOCK_SUITE.replace("rate_qps = 200.0", "rate_qps = 0")),
        &["suite.toml:11", "rate_qps", "greater than 0"],
    );
    fails_with(
        &["run"],
        Some(&MOCK_SUITE.replace("requests = 30", "requests = -3")),
        &["suite.toml:5", "requests"],
    );
    fails_with(
        &["run"],
        Some(&MOCK_SUITE.replace("output_tokens = 3", "output_tokens = 0")),
        &["suite.toml:13", "output_tokens"],
    );
    fails_with(
        &["run"],
        Some(&MOCK_SUITE.replace("fail_every = 5", "fail_evry = 5")),
        &["suite.toml:19", "methods[0].fail_evry"],
    );
    // [energy] and [carbon]: impossible values and unknown regions, located.
    fails_with(
        &["run"],
        Some(&MOCK_SUITE.replace("idle_baseline_s = 1.0", "idle_baseline_s = -1")),
        &["suite.toml:8", "energy.idle_baseline_s"],
    );
    fails_with(
        &["run"],
        Some(&MOCK_SUITE.replace("[energy]", "[carbon]\nregion = \"Frnace\"\n[energy]")),
        &["suite.toml:8", "carbon.region", "FRA (France)"],
    );
    fails_with(
        &["run"],
        Some(&MOCK_SUITE.replace("[energy]", "[carbon]\npue = -1.2\n[energy]")),
        &["suite.toml:8", "carbon.pue"],
    );
    fails_with(&["run"], Some("[run\nseed = 1"), &["suite.toml:1"]);
    fails_with(&["run", "no/such/suite.toml"], None, &["no/such/suite.toml"]);
}

#[test]
fn unwritable_output_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(tmp.path(), MOCK_SUITE);
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = oae()
        .arg("run")
        .arg(&suite)
        .arg("--out")
        .arg(file.join("run"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("a-file/run"));
}

#[test]
fn failing_setup_aborts_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(tmp.path(), &MOCK_SUITE.replace("fail_every = 5", "fail_setup = true"));
    let out = tmp.path().join("run");
    let o = run_suite(&suite, &out, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("run aborted"));
    let run = read_json(&out.join("run.json"));
    assert_eq!(run["status"], "aborted");
    assert!(run["abort_reason"].as_str().unwrap().contains("setup failed"));
}

/// Starts a slow mock run into `dir/run` and waits until it has written records.
fn slow_run_with_records(dir: &Path) -> (std::process::Child, std::path::PathBuf) {
    let slow = MOCK_SUITE
        .replace("rate_qps = 200.0", "rate_qps = 20.0")
        .replace("requests = 30", "requests = 200");
    let suite = write_suite(dir, &slow);
    let out = dir.join("run");
    let child = oae()
        .arg("run")
        .arg(&suite)
        .args(["--quiet", "--out"])
        .arg(&out)
        .spawn()
        .unwrap();
    let jsonl = out.join("requests.jsonl");
    let start = std::time::Instant::now();
    while std::fs::metadata(&jsonl).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(start.elapsed().as_secs() < 60, "no record was written");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (child, out)
}

/// A slow mock run stopped by `signal` once it has records: its exit code, run.json and
/// records.
fn run_stopped_by(signal: &str) -> (Option<i32>, Value, Vec<Value>) {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, out) = slow_run_with_records(tmp.path());
    Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    (status.code(), read_json(&out.join("run.json")), records(&out))
}

#[test]
fn interrupted_run_is_aborted_and_keeps_its_records() {
    // Ctrl-C, and what Slurm and Kubernetes send at a time limit, and a closed terminal.
    for (signal, code) in [("INT", 130), ("TERM", 143), ("HUP", 129)] {
        let (exit, run, recs) = run_stopped_by(signal);
        assert_eq!(exit, Some(code), "SIG{signal}");
        assert_eq!(run["status"], "aborted", "SIG{signal}");
        assert_eq!(run["abort_reason"], format!("interrupted by SIG{signal}"));
        assert!(!recs.is_empty() && recs.len() < 200, "SIG{signal}: {}", recs.len());
        assert_eq!(run["records"].as_u64().unwrap() as usize, recs.len());
    }
}

#[test]
fn list_and_doctor_work() {
    let o = oae().args(["list", "methods"]).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && s.contains("dense") && s.contains("mock") && s.contains("temperature"));
    let o = oae().args(["list", "workloads"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("poisson"));
    let o = oae().args(["list", "meters"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("cpu-model"));
    let o = oae().arg("doctor").output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(s.contains("nvml") && s.contains("rapl") && s.contains("memory"), "{s}");
}

#[test]
fn plan_reports_request_counts_and_rejects_impossible_input() {
    let o = oae()
        .args(["plan", "--rate", "0.5", "--percentile", "99", "--ci-width", "1"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(s.contains("368 requests before the interval has both bounds"), "{s}");
    assert!(s.contains("requests = "), "{s}");
    for bad in [["--rate", "0"], ["--percentile", "100"], ["--ci-width", "-1"]] {
        let mut args = vec!["plan", "--rate", "1", "--percentile", "99", "--ci-width", "1"];
        let i = args.iter().position(|a| *a == bad[0]).unwrap();
        args[i + 1] = bad[1];
        let o = oae().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(bad[0]));
    }
}

#[test]
fn merge_adds_histograms_exactly_and_keeps_every_record() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(tmp.path(), MOCK_SUITE);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert!(run_suite(&suite, &a, &["--seed", "1"]).status.success());
    assert!(run_suite(&suite, &b, &["--seed", "2"]).status.success());
    let out = tmp.path().join("merged");
    let o = oae()
        .arg("merge")
        .arg(&a)
        .arg(&b)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let merged = read_json(&out.join("merged.json"));
    let measured_ok = |d: &Path| {
        records(d)
            .iter()
            .filter(|r| r["warmup"] == false && r["outcome"] == "ok")
            .count() as u64
    };
    assert_eq!(
        merged["histograms"]["flaky|burst|e2e_us"]["n"].as_u64().unwrap(),
        measured_ok(&a) + measured_ok(&b)
    );
    assert_eq!(records(&out).len(), 60);
    let from_b = records(&out).iter().filter(|r| r["run_index"] == 1).count();
    assert_eq!(from_b, 30, "each record says which run it came from");
    assert_eq!(merged["sources"].as_array().unwrap().len(), 2);

    // Inputs are read through the typed schema: a run directory from before it is refused
    // with the oae that wrote it.
    let old = tmp.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(
        old.join("run.json"),
        "{\"oae_version\": \"0.0.9\", \"status\": \"complete\"}",
    )
    .unwrap();
    let o = oae()
        .arg("merge")
        .arg(&a)
        .arg(&old)
        .arg("--out")
        .arg(tmp.path().join("m3"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("oae 0.0.9") && e.contains("schema version"), "{e}");

    // An aborted run is refused unless --allow-partial.
    let bad = tmp.path().join("bad");
    let failing = write_suite(
        &tmp.path().join("f"),
        &MOCK_SUITE.replace("fail_every = 5", "fail_setup = true"),
    );
    let _ = run_suite(&failing, &bad, &[]);
    let o = oae()
        .arg("merge")
        .arg(&a)
        .arg(&bad)
        .arg("--out")
        .arg(tmp.path().join("m2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--allow-partial"));
}

/// A suite as a job array: `oae suite plan` numbers the cells with stable ids, `oae run
/// --cell I` (or `auto` from the array's task index) replays just that cell into its own
/// directory and records which, the cells' histograms merge to the one-machine run's, and a
/// merge refuses missing, repeated or mismatched cells.
#[test]
fn cells_of_a_suite_run_one_by_one_and_merge_to_the_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let text = MOCK_SUITE.replace(
        "fail_every = 5",
        "fail_every = 5\n[[methods]]\nid = \"mock\"\nlabel = \"steady\"\nprefill_ms = 0.5",
    );
    let suite = write_suite(tmp.path(), &text);
    let plan = |extra: &[&str]| {
        let o = oae()
            .args(["suite", "plan"])
            .arg(&suite)
            .args(extra)
            .arg("--json")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["cells"]
            .as_array()
            .unwrap()
            .clone()
    };
    let cells = plan(&["--trials", "2"]);
    assert_eq!(cells.len(), 4, "2 methods x 1 workload x 2 trials");
    assert_eq!(cells, plan(&["--trials", "2"]), "ids are stable");
    assert_ne!(cells[0]["id"], plan(&["--trials", "2", "--seed", "6"])[0]["id"]);

    let whole = tmp.path().join("whole");
    assert!(run_suite(&suite, &whole, &["--trials", "2"]).status.success());
    let mut parts = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        let out = tmp.path().join(format!("cell{i}"));
        let o = if i == 3 {
            // A job-array task finds its index in the environment.
            oae()
                .env("SLURM_ARRAY_TASK_ID", "3")
                .env("SLURMD_NODENAME", "node-07")
                .arg("run")
                .arg(&suite)
                .args(["--quiet", "--trials", "2", "--cell", "auto", "--out"])
                .arg(&out)
                .output()
                .unwrap()
        } else {
            run_suite(&suite, &out, &["--trials", "2", "--cell", &i.to_string()])
        };
        assert!(o.status.success(), "cell {i}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("oae merge"));
        let run = read_json(&out.join("run.json"));
        assert_eq!(run["overrides"]["cells"][0]["id"], cell["id"]);
        if i == 3 {
            // Where the cell ran: the node and the array task.
            let p = &run["runtime"]["placement"];
            assert_eq!(p["scheduler"]["SLURMD_NODENAME"], "node-07", "{p}");
            assert_eq!(p["scheduler"]["SLURM_ARRAY_TASK_ID"], "3", "{p}");
        }
        let rs = records(&out);
        assert_eq!(rs.len(), 30);
        assert!(
            rs.iter()
                .all(|r| r["method"] == cell["method"] && r["trial"] == cell["trial"])
        );
        assert!(
            !out.join("scorecards.json").exists(),
            "no scorecards for a part of a suite"
        );
        parts.push(out);
    }
    let merged = tmp.path().join("merged");
    let o = oae()
        .arg("merge")
        .args(&parts)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The same requests, replayed alike: the merged histograms count what the whole run
    // counted, per method.
    let m = read_json(&merged.join("merged.json"));
    let counted = |d: &Path, method: &str| {
        records(d)
            .iter()
            .filter(|r| r["method"] == method && r["warmup"] == false && r["outcome"] == "ok")
            .count() as u64
    };
    for method in ["flaky", "steady"] {
        assert_eq!(
            m["histograms"][format!("{method}|burst|e2e_us")]["n"].as_u64().unwrap(),
            counted(&whole, method),
            "{method}"
        );
    }
    assert_eq!(records(&merged).len(), records(&whole).len());
    assert_eq!(
        (m["cells"]["total"].as_u64(), m["partial"].as_bool()),
        (Some(4), Some(false))
    );
    assert_eq!(m["cells"]["missing"], serde_json::json!([]));

    // The cells make up the suite run: a run directory scored like the one-machine run —
    // the same cells with the same counts, statistics recomputed over the union of records,
    // scorecards with the same rows — that says where each cell ran.
    let run = read_json(&merged.join("run.json"));
    assert_eq!(run["status"], "complete");
    assert!(run["overrides"].get("cells").is_none(), "{}", run["overrides"]);
    assert_eq!(run["runtime"]["merged"]["from"].as_array().unwrap().len(), 4);
    assert_eq!(run["records"].as_u64(), Some(records(&whole).len() as u64));
    let (ws, ms) = (
        read_json(&whole.join("summary.json")),
        read_json(&merged.join("summary.json")),
    );
    let (wc, mc) = (ws["cells"].as_array().unwrap(), ms["cells"].as_array().unwrap());
    assert_eq!(wc.len(), mc.len());
    let merged_records = records(&merged);
    assert!(merged_records.iter().all(|r| r.get("run_index").is_none()));
    for (w, c) in wc.iter().zip(mc) {
        for k in ["method", "workload", "requests", "measured", "ok", "failed", "outcomes"] {
            assert_eq!(w[k], c[k], "{k} of {} {}", c["method"], c["workload"]);
        }
        assert_eq!(w["latency"]["e2e_ms"]["n"], c["latency"]["e2e_ms"]["n"]);
        assert_eq!(c["trials"].as_array().unwrap().len(), 2);
        let mut e2e: Vec<f64> = merged_records
            .iter()
            .filter(|r| r["method"] == c["method"] && r["warmup"] == false && r["outcome"] == "ok")
            .map(|r| r["e2e_ms"].as_f64().unwrap())
            .collect();
        e2e.sort_by(f64::total_cmp);
        let n = e2e.len();
        let p50 = c["latency"]["e2e_ms"]["p50"]["value"].as_f64().unwrap();
        assert!(
            e2e[(n - 1) / 2] <= p50 && p50 <= e2e[n / 2],
            "p50 {p50} is the median of the merged records"
        );
    }
    let rows = |d: &Path| {
        read_json(&d.join("scorecards.json"))["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["method"].clone(), r["workload"].clone(), r["verdict"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&merged), rows(&whole));
    assert!(merged.join("leaderboard.html").exists());

    // Missing, repeated or foreign cells are refused, naming them and the way out.
    let merge = |dirs: &[&Path], extra: &[&str], to: &str| {
        oae()
            .arg("merge")
            .args(dirs)
            .args(extra)
            .arg("--out")
            .arg(tmp.path().join(to))
            .output()
            .unwrap()
    };
    let o = merge(&[&parts[0], &parts[1], &parts[3]], &[], "m-missing");
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("cells 2 of 4 are missing") && e.contains("--allow-partial"),
        "{e}"
    );
    let o = merge(&[&parts[0], &parts[1], &parts[3]], &["--allow-partial"], "m-partial");
    assert!(o.status.success());
    let p = read_json(&tmp.path().join("m-partial/merged.json"));
    assert_eq!(
        (p["partial"].as_bool(), p["cells"]["missing"].clone()),
        (Some(true), serde_json::json!([2]))
    );
    // A suite run short of a cell is scored as partial, and says which cell it lacks.
    let r = read_json(&tmp.path().join("m-partial/run.json"));
    assert_eq!(r["status"], "aborted");
    assert!(
        r["abort_reason"].as_str().unwrap().contains("without cells 2 of 4"),
        "{}",
        r["abort_reason"]
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("PARTIAL RUN"));
    assert!(tmp.path().join("m-partial/scorecards.json").exists());
    let o = merge(&[&parts[0], &parts[0]], &[], "m-twice");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("in both"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let other = tmp.path().join("other");
    assert!(
        run_suite(&suite, &other, &["--trials", "2", "--requests", "7", "--cell", "2"])
            .status
            .success()
    );
    let o = merge(&[&parts[0], &parts[1], &other, &parts[3]], &[], "m-mismatch");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("overrides differ") && e.contains("--allow-mismatch"), "{e}");
    assert!(
        merge(
            &[&parts[0], &parts[1], &other, &parts[3]],
            &["--allow-mismatch"],
            "m-ok"
        )
        .status
        .success()
    );
    // Cells of different settings are no one suite run: merged, but not made a run to score.
    assert!(!tmp.path().join("m-ok/run.json").exists());

    // A part of a suite has no scorecards to gate or keep: refused before anything runs.
    let o = run_suite(
        &suite,
        &tmp.path().join("gated"),
        &["--cell", "0", "--baseline", "main"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
    assert!(!tmp.path().join("gated").exists());
    for (spec, says) in [("4", "does not exist"), ("auto", "SLURM_ARRAY_TASK_ID")] {
        let o = oae()
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .arg("run")
            .arg(&suite)
            .args(["--quiet", "--trials", "2", "--cell", spec, "--out"])
            .arg(tmp.path().join("bad"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{spec}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(says) && e.contains("4 cells"), "{spec}: {e}");
    }
}

/// `oae suite slurm` writes scripts that, submitted (here to a stand-in `sbatch` that runs
/// each array task in turn, then the dependent job), run every cell and merge them; a cell
/// whose run fails is retried.
#[test]
fn slurm_scripts_run_every_cell_and_merge_them() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        &MOCK_SUITE.replace("idle_baseline_s = 1.0", "idle_baseline_s = 0"),
    );
    let out = tmp.path().join("slurm");
    let o = oae()
        .args(["suite", "slurm"])
        .arg(&suite)
        .args(["--trials", "3", "--retries", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("3 cells"));
    // A stand-in sbatch: runs every index of an array script (SLURM_ARRAY_TASK_ID set), or
    // the script once, and prints a job id as --parsable does.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sbatch = bin.join("sbatch");
    std::fs::write(
        &sbatch,
        "#!/bin/bash\nscript=\"${@: -1}\"\nrange=$(sed -n 's/^#SBATCH --array=//p' \"$script\")\nif [ -n \"$range\" ]; then\n  for i in $(seq ${range%-*} ${range#*-}); do SLURM_ARRAY_TASK_ID=$i bash \"$script\" || exit 1; done\nelse\n  bash \"$script\" || exit 1\nfi\necho $RANDOM\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let o = Command::new("bash")
        .arg(out.join("submit.sh"))
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let merged = read_json(&out.join("merged/merged.json"));
    assert_eq!(
        (merged["cells"]["total"].as_u64(), merged["partial"].as_bool()),
        (Some(3), Some(false))
    );
    assert_eq!(records(&out.join("merged")).len(), 3 * 30);
    // A complete cell is not run again (a requeued task); a failed one is retried.
    let before = std::fs::metadata(out.join("cells/1/run.json"))
        .unwrap()
        .modified()
        .unwrap();
    let o = Command::new("bash")
        .arg(out.join("cells.sbatch"))
        .env("SLURM_ARRAY_TASK_ID", "1")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        std::fs::metadata(out.join("cells/1/run.json"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    let script = std::fs::read_to_string(out.join("cells.sbatch")).unwrap();
    std::fs::write(out.join("bad.sbatch"), script.replace("--cell auto", "--cell 99")).unwrap();
    std::fs::remove_dir_all(out.join("cells/2")).unwrap();
    let o = Command::new("bash")
        .arg(out.join("bad.sbatch"))
        .env("SLURM_ARRAY_TASK_ID", "2")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("attempt 1 failed") && e.contains("attempt 2 failed"), "{e}");
}

/// A disk that fills up during a run: exit 2 naming the file and the cause, no temporary
/// file left, every record appended so far kept, and run.json `aborted` with why. Needs a
/// small tmpfs, so root; skips with a message elsewhere.
#[test]
fn a_full_disk_aborts_the_run_and_run_json_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("tiny");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = Command::new("mount")
        // 128 KiB: more than the run's timeline and setup files take by themselves (about
        // 75 KiB over its fixed span of arrivals; at 64 KiB a run slowed by a busy machine
        // could fill the disk before the first request record was flushed), less than its
        // request records (about 160 KiB).
        .args(["-t", "tmpfs", "-o", "size=128k", "tmpfs"])
        .arg(&disk)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root); the full-disk path is not exercised");
        return;
    }
    let out = disk.join("run");
    let o = oae()
        .args(["run", "--requests", "40", "--idle-baseline-s", "0", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let run = std::fs::read_to_string(out.join("run.json")).unwrap_or_default();
    let appended = std::fs::read_to_string(out.join("requests.jsonl")).unwrap_or_default();
    let _ = Command::new("umount").arg(&disk).status();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("No space left on device"), "{e}");
    assert!(leftovers.iter().all(|f| !f.ends_with(".tmp")), "{leftovers:?}");
    let run: Value = serde_json::from_str(&run).unwrap();
    assert_eq!(run["status"], "aborted");
    assert!(
        run["abort_reason"]
            .as_str()
            .is_some_and(|r| r.contains("No space left")),
        "{}",
        run["abort_reason"]
    );
    assert!(
        appended.lines().count() > 0,
        "the records appended during the run are kept"
    );
}

#[test]
fn trace_workload_runs_end_to_end_and_keeps_source_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let mut csv = String::from("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n");
    for i in 0..40 {
        csv.push_str(&format!(
            "{},GPT-4,{},{},0,API log\n",
            i,
            10 + i,
            if i % 8 == 7 { 0 } else { 3 }
        ));
    }
    std::fs::write(tmp.path().join("burst.csv"), csv).unwrap();
    let suite = write_suite(
        tmp.path(),
        r#"
[run]
requests = 40
[[workloads]]
name = "replay"
trace = { path = "burst.csv", format = "burstgpt", time_scale = 0.01 }
[[methods]]
id = "mock"
"#,
    );
    let out = tmp.path().join("run");
    let o = run_suite(&suite, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs = records(&out);
    assert_eq!(recs.len(), 40);
    assert_eq!(recs.iter().filter(|r| r["source_failed"] == true).count(), 5);
    let cell = &read_json(&out.join("summary.json"))["cells"][0];
    assert_eq!(cell["source_failed"], 5);
    let run = read_json(&out.join("run.json"));
    assert_eq!(run["workloads"][0]["config"]["format"], "burstgpt");
    assert_eq!(run["workloads"][0]["source_failed"], 5);
}

#[test]
fn trace_inspect_detects_the_format_and_reports_bad_rows_with_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("b.csv");
    std::fs::write(&p, "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n0,A,10,5,15,x\n2,A,20,0,20,x\n70,A,30,7,37,x\n").unwrap();
    let o = oae().args(["trace", "inspect"]).arg(&p).arg("--json").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "burstgpt");
    assert_eq!(v["requests"], 3);
    assert_eq!(v["source_failed"], 1);
    assert_eq!(v["idle_gaps"], serde_json::json!([0, 1, 0, 1]));
    std::fs::write(
        &p,
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n0,A,10,5,15,x\n2,A,ten,0,20,x\n",
    )
    .unwrap();
    let o = oae().args(["trace", "inspect"]).arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("b.csv:3") && e.contains("Request tokens"), "{e}");

    // A later BurstGPT release: two more columns, another order — detected all the same.
    std::fs::write(
        &p,
        "Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type
0,s1,1.5,A,10,5,15,x
2,s2,0.7,A,20,0,20,x
",
    )
    .unwrap();
    let o = oae().args(["trace", "inspect"]).arg(&p).arg("--json").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["format"].as_str(), v["requests"].as_u64()),
        (Some("burstgpt"), Some(2))
    );

    // Merged front-end logs step back by under a microsecond: refused with the fix named,
    // accepted and counted when the tolerance is given.
    std::fs::write(
        &p,
        "t_s,input_tokens,output_tokens\n5.0000004,3,3\n5.0000001,3,3\n6,3,3\n",
    )
    .unwrap();
    let o = oae().args(["trace", "inspect"]).arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("b.csv:3") && e.contains("--reorder-tolerance-s"), "{e}");
    let o = oae()
        .args(["trace", "inspect", "--json", "--reorder-tolerance-s", "1e-6"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["requests"].as_u64(), v["reordered"].as_u64()), (Some(3), Some(1)));
}

#[test]
fn trace_fit_and_gen_round_trip() {
    use oae_core::rng::{exponential, seeded};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.csv");
    let mut rng = seeded(1, &["cli-fit"]);
    let (mut t, mut text) = (0.0, String::from("t_s,input_tokens,output_tokens,failed\n"));
    for i in 0..400 {
        t += exponential(&mut rng, 0.5);
        text.push_str(&format!("{t:.6},{},{},{}\n", 10 + i % 7, i % 5, u8::from(i % 5 == 0)));
    }
    std::fs::write(&src, text).unwrap();
    let o = oae().args(["trace", "fit"]).arg(&src).arg("--json").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["requests"], 400);
    assert_eq!(v["models"].as_array().unwrap().len(), 5);
    let rate = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "exponential")
        .unwrap()["params"]["rate_qps"]
        .as_f64()
        .unwrap();
    assert!((rate - 2.0).abs() < 0.3, "rate {rate}");
    assert_eq!(v["onoff"]["detected"], false);
    let o = oae().args(["trace", "fit"]).arg(&src).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("best by AIC"));

    let out = tmp.path().join("gen.jsonl");
    let o = oae()
        .args(["trace", "gen", "--like"])
        .arg(&src)
        .args(["--rate", "10", "--requests", "300", "--seed", "4", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 300);
    assert!(rows.windows(2).all(|w| w[0]["t_s"].as_f64() <= w[1]["t_s"].as_f64()));
    assert!(
        rows.iter().any(|r| r["failed"] == true),
        "source failures are resampled too"
    );
    let span = rows.last().unwrap()["t_s"].as_f64().unwrap();
    assert!((300.0 / span - 10.0).abs() < 2.5, "rate {}", 300.0 / span);
    // The generated file is a trace oae reads back.
    let o = oae()
        .args(["trace", "inspect"])
        .arg(&out)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Same seed, same file.
    let again = tmp.path().join("again.jsonl");
    let o = oae()
        .args(["trace", "gen", "--like"])
        .arg(&src)
        .args(["--rate", "10", "--requests", "300", "--seed", "4", "--out"])
        .arg(&again)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());

    for (args, needle) in [
        (vec!["--rate", "0"], "--rate"),
        (vec!["--rate", "1", "--model", "pareto"], "weibull"),
        (vec!["--rate", "1", "--duration-s=-3"], "--duration-s"),
        (vec!["--rate=-2"], "--rate"),
    ] {
        let o = oae()
            .args(["trace", "gen", "--like"])
            .arg(&src)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(needle), "{args:?}");
    }
    let short = tmp.path().join("short.csv");
    std::fs::write(&short, "t_s,input_tokens,output_tokens\n0,1,1\n1,1,1\n2.5,1,1\n").unwrap();
    let o = oae().args(["trace", "fit"]).arg(&short).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 20"));

    // A malformed row names its file, line and field; nothing is written for gen.
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "t_s,input_tokens,output_tokens\n0,1,1\n1,x,1\n").unwrap();
    for args in [vec!["trace", "fit"], vec!["trace", "gen", "--rate", "1", "--like"]] {
        let o = oae().args(&args).arg(&bad).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("bad.csv:3") && e.contains("input_tokens"), "{args:?}: {e}");
    }
    let nowhere = tmp.path().join("no-such-dir").join("gen.csv");
    let o = oae()
        .args(["trace", "gen", "--rate", "1", "--like"])
        .arg(&src)
        .arg("--out")
        .arg(&nowhere)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot write"));
    assert!(!nowhere.exists());
}

#[test]
fn model_problems_in_a_suite_exit_2_naming_the_key_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let empty_cache = tmp.path().join("models");
    let dense = "[[methods]]\nid = \"dense\"\n";
    let cases: [(&str, &[&str]); 4] = [
        (
            "model = { kind = \"gguf\", name = \"smollm2-135m-instruct\" }",
            &[
                "suite.toml:",
                "methods[0].model",
                "oae models fetch smollm2-135m-instruct",
            ],
        ),
        (
            "model = { kind = \"gguf\", path = \"nowhere/model.gguf\" }",
            &["methods[0].model", "nowhere/model.gguf"],
        ),
        (
            "model = { kind = \"hf\", name = \"smollm3\" }",
            &["methods[0].model", "unknown model name `smollm3`"],
        ),
        ("model = { kind = \"onnx\" }", &["methods[0].model", "onnx"]),
    ];
    for (line, needles) in cases {
        let suite = MOCK_SUITE.split("[[methods]]").next().unwrap().to_string() + dense + line + "\n";
        let path = write_suite(tmp.path(), &suite);
        let out = tmp.path().join("never");
        let o = oae()
            .env("OAE_MODELS_DIR", &empty_cache)
            .arg("run")
            .arg(&path)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{line}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{line}: expected `{n}` in: {stderr}");
        }
        assert!(!out.exists());
    }
    fails_with(
        &["run"],
        Some(
            &(MOCK_SUITE.split("[[methods]]").next().unwrap().to_string()
                + "[[methods]]\nid = \"speculative\"\ndraft = { layers = 2 }\ngamma = 0\n"),
        ),
        &["suite.toml:", "methods[0].gamma", "at least 1"],
    );
}

#[test]
fn models_list_and_unknown_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let o = oae()
        .env("OAE_MODELS_DIR", tmp.path())
        .args(["models", "list"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && s.contains("smollm2-135m-instruct") && s.contains("absent"),
        "{s}"
    );
    let o = oae()
        .env("OAE_MODELS_DIR", tmp.path())
        .args(["models", "fetch", "gpt-5"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown model `gpt-5`"));
    let o = oae().env("OAE_MODELS_DIR", tmp.path()).arg("doctor").output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("models") && s.contains("absent (oae models fetch smollm2-135m-instruct)"),
        "{s}"
    );
    let o = oae().args(["list", "methods"]).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("moe") && s.contains("speculative") && s.contains("upcycle") && s.contains("gamma"),
        "{s}"
    );
}

#[test]
fn a_run_too_big_for_memory_is_refused_at_once_with_the_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(tmp.path(), MOCK_SUITE);
    let started = std::time::Instant::now();
    let out = oae()
        .arg("run")
        .arg(&suite)
        .args(["--requests", "99999999999", "--quiet", "--out"])
        .arg(tmp.path().join("run"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("would hold at least") && err.contains("GB"), "{err}");
    assert!(err.contains("lower `requests`"), "{err}");
    assert!(started.elapsed().as_secs() < 30, "refused before generating anything");
    assert!(!tmp.path().join("run").exists());
}

#[test]
fn a_run_killed_with_sigkill_names_its_methods_and_scores_as_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, out) = slow_run_with_records(tmp.path());
    child.kill().unwrap();
    child.wait().unwrap();
    let run = read_json(&out.join("run.json"));
    assert_eq!(run["status"], "running", "a SIGKILL leaves no chance to say more");
    let methods = run["methods"].as_array().unwrap();
    assert!(!methods.is_empty(), "the method set up before the kill is named");
    assert_eq!(methods[0]["id"], "mock");
    let score = oae().arg("score").arg(&out).arg("--allow-partial").output().unwrap();
    let text = String::from_utf8_lossy(&score.stdout);
    assert!(
        score.status.success(),
        "{}{text}",
        String::from_utf8_lossy(&score.stderr)
    );
    assert!(text.contains("PARTIAL RUN"), "{text}");
}

/// A two-method, two-trial mock suite started in `dir` and stopped by `signal` in the middle
/// of its second replay (45 of 4 × 30 records written); returns the run directory.
fn run_stopped_midway(dir: &Path, signal: &str) -> std::path::PathBuf {
    let text = MOCK_SUITE
        .replace("rate_qps = 200.0", "rate_qps = 40.0")
        .replace("idle_baseline_s = 1.0", "idle_baseline_s = 0.3")
        .replace("warmup_s = 0.05", "warmup_s = 0.05\ntrials = 2")
        + "[[methods]]\nid = \"mock\"\nlabel = \"steady\"\nprefill_ms = 0.5\n";
    let suite = write_suite(dir, &text);
    let out = dir.join("run");
    let mut child = oae()
        .current_dir(dir)
        .arg("run")
        .arg(suite.file_name().unwrap())
        .args(["--quiet", "--out", "run"])
        .spawn()
        .unwrap();
    let jsonl = out.join("requests.jsonl");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&jsonl).map(|s| s.lines().count()).unwrap_or(0) < 45 {
        assert!(
            start.elapsed().as_secs() < 60,
            "the run did not reach its second replay"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    out
}

/// `oae run --resume run` in `dir` exits 2 with a message containing `why`.
fn refused_resume(dir: &Path, why: &str) {
    let o = oae()
        .current_dir(dir)
        .args(["run", "--resume", "run"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains(why), "{e}");
}

/// `oae run --resume DIR` after a `kill -9` in the middle of a cell, and after a SIGTERM:
/// the complete cells are kept, the one cut short runs again with the others, and DIR is the
/// whole suite run — every request of every cell exactly once, complete, scored; energy the
/// killed process never attributed is said to be missing, a SIGTERM's is kept.
#[test]
fn a_stopped_run_resumes_to_the_whole_suite_without_duplicates() {
    for signal in ["KILL", "TERM"] {
        let tmp = tempfile::tempdir().unwrap();
        let out = run_stopped_midway(tmp.path(), signal);
        let stopped = records(&out).len();
        assert!((45..120).contains(&stopped), "{signal}: {stopped} records");
        let o = oae()
            .current_dir(tmp.path())
            .args(["run", "--quiet", "--resume", "run"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{signal}: {text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            text.contains("resuming run: 1 of 4 cell(s) complete, 3 to run"),
            "{signal}: {text}"
        );
        let run = read_json(&out.join("run.json"));
        assert_eq!(run["status"], "complete", "{signal}");
        let recs = records(&out);
        let mut seen = std::collections::BTreeSet::new();
        for r in &recs {
            let key = (
                r["method"].as_str().unwrap().to_string(),
                r["trial"].as_u64().unwrap(),
                r["request_id"].as_u64().unwrap(),
            );
            assert!(seen.insert(key.clone()), "{signal}: {key:?} twice");
        }
        for method in ["flaky", "steady"] {
            for trial in 0..2 {
                let ids: Vec<u64> = seen
                    .iter()
                    .filter(|k| k.0 == method && k.1 == trial)
                    .map(|k| k.2)
                    .collect();
                assert_eq!(ids, (0..30).collect::<Vec<_>>(), "{signal}: {method} trial {trial}");
            }
        }
        assert!(out.join("parts/0/run.json").exists() && out.join("parts/1/run.json").exists());
        assert!(
            out.join("scorecards.json").exists(),
            "{signal}: scored like a whole run"
        );
        let summary = read_json(&out.join("summary.json"));
        let cells = summary["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 2);
        assert!(
            cells
                .iter()
                .all(|c| c["requests"] == 60 && c["trials"].as_array().unwrap().len() == 2)
        );
        let lost: Vec<&str> = run["energy"]["unavailable"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["reason"].as_str().unwrap().contains("killed before it attributed"))
            .map(|u| u["source"].as_str().unwrap())
            .collect();
        if signal == "KILL" {
            assert_eq!(lost, ["flaky | burst, trial(s) 0 in run/parts/0"], "{run}");
            assert!(cells[0]["energy"].is_null(), "no energy pooled from part of the trials");
        } else {
            assert!(lost.is_empty(), "{lost:?}");
            assert!(cells.iter().all(|c| !c["energy"].is_null()));
        }
        // Done is done.
        refused_resume(tmp.path(), "nothing to resume");
    }
    // A directory that holds no run says so.
    let empty = tempfile::tempdir().unwrap();
    let o = oae().args(["run", "--resume"]).arg(empty.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no run.json here"));
    // A changed suite file is not resumed into.
    let tmp = tempfile::tempdir().unwrap();
    run_stopped_midway(tmp.path(), "KILL");
    let suite = tmp.path().join("suite.toml");
    let text = std::fs::read_to_string(&suite).unwrap();
    std::fs::write(&suite, format!("{text}\n# edited\n")).unwrap();
    refused_resume(tmp.path(), "changed since the run");
}

/// A run killed before it wrote its histograms merges with `--allow-partial`: its histograms
/// are rebuilt from its records (counting what they count), and nothing is written when the
/// merge is refused.
#[test]
fn a_killed_run_merges_as_partial_with_histograms_from_its_records() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_stopped_midway(tmp.path(), "KILL");
    assert!(!out.join("histograms.hlog").exists(), "a SIGKILL leaves no histograms");
    let merged = tmp.path().join("merged");
    let o = oae().arg("merge").arg(&out).arg("--out").arg(&merged).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--allow-partial"));
    assert!(!merged.exists(), "a refused merge writes nothing");
    let o = oae()
        .arg("merge")
        .arg(&out)
        .args(["--allow-partial", "--out"])
        .arg(&merged)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = read_json(&merged.join("merged.json"));
    assert_eq!(m["partial"], true);
    let recs = records(&out);
    for method in ["flaky", "steady"] {
        let ok = recs
            .iter()
            .filter(|r| r["method"] == method && r["warmup"] == false && r["outcome"] == "ok")
            .count() as u64;
        let n = m["histograms"][format!("{method}|burst|e2e_us")]["n"]
            .as_u64()
            .unwrap_or(0);
        assert_eq!(n, ok, "{method}");
    }
}
