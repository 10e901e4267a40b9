//! The quality layer end to end through the binary, on the mock method: a task workload's
//! requests carry their references, answers are kept and scored, right answers count in the
//! scorecards, the gate catches a quality drop, and bad task files are located.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

const TASKS: &str = r#"{"id": "q1", "question": "Which river flows through Paris?", "context": "Paris lies on the Seine.", "references": ["the Seine", "Seine"], "answer_type": "extractive", "group": "paris"}
{"id": "q2", "question": "How many legs has a spider?", "references": ["8"], "answer_type": "numeric", "group": "animals"}
{"id": "q3", "question": "Which is a primary colour?", "choices": ["green", "red", "purple"], "references": ["B"], "answer_type": "choice", "group": "colours"}
{"id": "q4", "question": "Who wrote Hamlet?", "references": ["William Shakespeare", "Shakespeare"], "group": "books"}
"#;

fn oae() -> Command {
    Command::cargo_bin("oae").unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn suite(mock_keys: &str, slo: &str) -> String {
    // A quality bar needs every answer scored by its scorer: name it for the mixed task.
    let scorers = if slo.is_empty() {
        ""
    } else {
        ", scorers = [\"f1\", \"em\"]"
    };
    format!(
        r#"name = "quality-test"
[run]
seed = 5
requests = 60
[energy]
idle_baseline_s = 0.2
{slo}
[[workloads]]
name = "qa"
arrival = {{ process = "poisson", rate_qps = 40.0 }}
task = {{ path = "tasks.jsonl", max_new_tokens = 4{scorers} }}
[[methods]]
id = "mock"
prefill_ms = 1.0
{mock_keys}
"#
    )
}

fn run(dir: &Path, name: &str, suite_text: &str) -> (PathBuf, Output) {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, suite_text).unwrap();
    let out = dir.join(name);
    let o = oae()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    (out, o)
}

fn records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn cell(dir: &Path) -> Value {
    read_json(&dir.join("summary.json"))["cells"][0].clone()
}

fn row(dir: &Path) -> Value {
    read_json(&dir.join("scorecards.json"))["rows"][0].clone()
}

#[test]
fn right_answers_score_one_wrong_ones_zero_and_cost_follows() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tasks.jsonl"), TASKS).unwrap();

    let (right, o) = run(tmp.path(), "right", &suite("answer = \"reference\"", ""));
    assert!(o.status.success(), "{}", text(&o));
    let recs = records(&right);
    assert_eq!(recs.len(), 60);
    for r in &recs {
        let id = r["task_id"].as_str().expect("every request carries its task item");
        assert!(["q1", "q2", "q3", "q4"].contains(&id), "{id}");
        assert!(r["output_text"].is_string());
        for (_, v) in r["quality"].as_object().unwrap() {
            assert_eq!(v.as_f64(), Some(1.0), "{r}");
        }
    }
    let scorers: Vec<&str> = recs
        .iter()
        .flat_map(|r| r["quality"].as_object().unwrap().keys().map(String::as_str))
        .collect();
    for s in ["em", "f1", "numeric", "choice", "contains"] {
        assert!(scorers.contains(&s), "{s} never scored: {scorers:?}");
    }
    let c = cell(&right);
    assert_eq!(c["quality"]["em"]["mean"]["value"].as_f64(), Some(1.0));
    assert!(c["quality"]["em"]["n"].as_u64().unwrap() > 0);
    // Each item was asked: the seeded draw covers the four items.
    let mut ids: Vec<&str> = recs.iter().map(|r| r["task_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    assert!(text(&o).is_empty() || !text(&o).contains("panicked"));

    let bar = "[slo]\nquality = { scorer = \"f1\", min = 0.5 }";
    let (right_bar, o) = run(tmp.path(), "right-bar", &suite("answer = \"reference\"", bar));
    assert!(o.status.success(), "{}", text(&o));
    let (wrong_bar, o) = run(tmp.path(), "wrong-bar", &suite("answer = \"wrong\"", bar));
    assert!(o.status.success(), "{}", text(&o));
    let (rc, wc) = (cell(&right_bar), cell(&wrong_bar));
    assert_eq!(
        rc["goodput"]["good"], rc["goodput"]["measured"],
        "right answers are good"
    );
    assert_eq!(wc["goodput"]["good"].as_u64(), Some(0), "wrong answers never count");
    assert_eq!(wc["quality"]["f1"]["mean"]["value"].as_f64(), Some(0.0));
    let (rr, wr) = (row(&right_bar), row(&wrong_bar));
    assert!(rr["cost_per_1k_good_usd"]["value"].as_f64().unwrap().is_finite());
    assert_eq!(rr["inputs"]["quality"]["value"].as_f64(), Some(1.0));
    assert_eq!(rr["inputs"]["quality_in_attainment"], true);
    // No right answer: no cost per right answer can be given.
    assert!(
        wr["cost_per_1k_good_usd"]["value"]
            .as_f64()
            .is_none_or(|v| !v.is_finite()),
        "{wr}"
    );
    // The bar defines a right answer: `oae score --quality` may not redefine it.
    let o = oae()
        .args(["score", "--quality", "contains"])
        .arg(&right_bar)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("quality bar") && text(&o).contains("`f1`"),
        "{}",
        text(&o)
    );

    // Without a bar, q multiplies attainment: a third of answers wrong costs half as much
    // again per right answer.
    let (third, o) = run(
        tmp.path(),
        "third",
        &suite("answer = \"reference\"\nwrong_every = 3", ""),
    );
    assert!(o.status.success(), "{}", text(&o));
    let (r1, r3) = (row(&right), row(&third));
    let q3 = r3["inputs"]["quality"]["value"].as_f64().unwrap();
    assert!((0.55..0.8).contains(&q3), "{q3}");
    assert_eq!(r3["inputs"]["quality_in_attainment"], false);
    let c1 = r1["cost_per_1k_good_usd"]["value"].as_f64().unwrap();
    let c3 = r3["cost_per_1k_good_usd"]["value"].as_f64().unwrap();
    assert!(
        c3 > c1 * 1.2,
        "cost per right answer rises with wrong answers: {c1} → {c3}"
    );
}

#[test]
fn the_gate_fails_a_quality_drop_and_passes_an_identical_run() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tasks.jsonl"), TASKS).unwrap();
    let (a, o) = run(tmp.path(), "a", &suite("answer = \"reference\"", ""));
    assert!(o.status.success(), "{}", text(&o));
    let (b, o) = run(tmp.path(), "b", &suite("answer = \"reference\"\nwrong_every = 3", ""));
    assert!(o.status.success(), "{}", text(&o));
    let gate = |base: &Path, cur: &Path, out: &str| {
        oae()
            .args(["gate", "--metrics", "quality", "--baseline"])
            .arg(base)
            .arg("--current")
            .arg(cur)
            .arg("--out")
            .arg(tmp.path().join(out))
            .output()
            .unwrap()
    };
    let same = gate(&a, &a, "g-same");
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    let drop = gate(&a, &b, "g-drop");
    assert_eq!(drop.status.code(), Some(1), "{}", text(&drop));
    let report = read_json(&tmp.path().join("g-drop").join("gate.json"));
    let c = report["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "quality")
        .expect("a quality comparison");
    assert_eq!(c["status"], "regression", "{c}");
    assert!(c["change"].as_f64().unwrap() > 25.0, "positive change = worse: {c}");
    assert!(c["ci_lo"].as_f64().unwrap() > 0.0, "{c}");
}

#[test]
fn noisy_workloads_get_a_quality_robustness_ratio() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tasks.jsonl"), TASKS).unwrap();
    let noisy = r#"
[[workloads]]
name = "qa-typos"
perturbs = "qa"
perturbation = "5 % typos"
arrival = { process = "poisson", rate_qps = 40.0 }
task = { path = "tasks.jsonl", max_new_tokens = 4, noise = { typos = 0.05 } }
"#;
    let suite_text = suite("answer = \"reference\"", "").replace("[[methods]]", &format!("{noisy}\n[[methods]]"));
    let (dir, o) = run(tmp.path(), "noisy", &suite_text);
    assert!(o.status.success(), "{}", text(&o));
    let cards = read_json(&dir.join("scorecards.json"));
    let nominal = cards["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["workload"] == "qa")
        .unwrap();
    let p = &nominal["robustness"]["perturbations"][0];
    assert_eq!(p["perturbation"], "5 % typos");
    // The mock answers the reference whatever the prompt: quality holds exactly.
    assert_eq!(p["quality_ratio"].as_f64(), Some(1.0), "{p}");
    assert_eq!(nominal["robustness"]["worst_quality"][0].as_f64(), Some(1.0));
    // Both workloads ask the same items in the same order (the noise changes only their text).
    let ids = |w: &str| -> Vec<String> {
        records(&dir)
            .iter()
            .filter(|r| r["workload"] == w)
            .map(|r| r["task_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("qa"), ids("qa-typos"), "the same items, in the same order");
}

#[test]
fn a_method_that_returns_no_text_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tasks.jsonl"), TASKS).unwrap();
    let (dir, o) = run(tmp.path(), "silent", &suite("", ""));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("returned no text for 60 answered task request(s)"),
        "{}",
        text(&o)
    );
    assert!(
        records(&dir)
            .iter()
            .all(|r| r["quality"].as_object().unwrap().is_empty() && r["output_text"].is_null())
    );
    assert!(cell(&dir)["quality"].as_object().unwrap().is_empty());
}

#[test]
fn bad_task_files_and_bars_are_located() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = format!(
        "{TASKS}{{\"id\": \"q5\", \"question\": \"?\", \"references\": [\"x\"], \"answer_type\": \"essay\"}}\n"
    );
    std::fs::write(tmp.path().join("tasks.jsonl"), bad).unwrap();
    let (_, o) = run(tmp.path(), "bad", &suite("", ""));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("tasks.jsonl:5: answer_type"), "{t}");

    std::fs::write(tmp.path().join("tasks.jsonl"), TASKS).unwrap();
    let (_, o) = run(
        tmp.path(),
        "bar",
        &suite("", "[slo]\nquality = { scorer = \"bleu\", min = 0.5 }"),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("slo.quality.scorer") && text(&o).contains("unknown scorer `bleu`"),
        "{}",
        text(&o)
    );
    let (_, o) = run(
        tmp.path(),
        "bar2",
        &suite("", "[slo]\nquality = { scorer = \"f1\", min = 1.5 }"),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("slo.quality.min"), "{}", text(&o));
    // A model scorer reads the kept text: keeping none is refused before anything loads.
    let no_text = suite("", "")
        .replace("max_new_tokens = 4", "max_new_tokens = 4, scorers = [\"minilm\"]")
        .replace("requests = 60", "requests = 60\nkeep_output_chars = 0");
    let (_, o) = run(tmp.path(), "no-text", &no_text);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("run.keep_output_chars"), "{}", text(&o));
    // A model scorer whose model is not cached stops the run before anything is replayed.
    let file = tmp.path().join("minilm.toml");
    std::fs::write(
        &file,
        suite("", "").replace("max_new_tokens = 4", "max_new_tokens = 4, scorers = [\"minilm\"]"),
    )
    .unwrap();
    let out = tmp.path().join("minilm");
    let o = oae()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .arg("--out")
        .arg(&out)
        .env("OAE_MODELS_DIR", tmp.path().join("no-models"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("oae models fetch all-minilm-l6-v2"), "{}", text(&o));
    assert!(!out.join("requests.jsonl").exists(), "nothing replayed");
}

#[test]
fn chain_of_thought_counts_reasoning_and_answer_tokens_and_prices_each_correct_answer() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tasks.jsonl"), TASKS).unwrap();
    let cot = suite("answer = \"reference\"\nthink = 3\ntokens = 5", "").replace(
        "max_new_tokens = 4 }",
        "max_new_tokens = 4, reasoning = \"cot\", reasoning_budget = 8 }",
    );
    let (dir, o) = run(tmp.path(), "cot", &cot);
    assert!(o.status.success(), "{}", text(&o));
    for r in records(&dir) {
        // 3 steps and the `Answer: ` token are reasoning, the reference is the answer.
        assert_eq!(
            (r["reasoning_tokens"].as_u64(), r["answer_tokens"].as_u64()),
            (Some(4), Some(1)),
            "{r}"
        );
        assert_eq!(
            r["max_new_tokens"].as_u64(),
            Some(12),
            "answer allowance + reasoning budget"
        );
        for (_, v) in r["quality"].as_object().unwrap() {
            assert_eq!(v.as_f64(), Some(1.0), "the answer part is scored, not the working: {r}");
        }
    }
    let c = cell(&dir);
    let rs = &c["reasoning"];
    assert_eq!(rs["overhead"].as_f64(), Some(4.0), "{rs}");
    assert_eq!(rs["correct"], rs["measured"]);
    assert_eq!(rs["no_answer"].as_u64(), Some(0));
    assert_eq!(rs["tokens_per_correct"].as_f64(), Some(5.0));
    assert_eq!(rs["reasoning_tokens_per_correct"].as_f64(), Some(4.0));
    assert!(rs["energy_j_per_correct"].as_f64().unwrap() > 0.0);
    let pc = &row(&dir)["per_correct"];
    assert_eq!(pc["accuracy"].as_f64(), Some(1.0), "{pc}");
    assert_eq!(pc["reasoning_overhead"].as_f64(), Some(4.0));
    assert!(pc["cost_usd"].as_f64().unwrap() > 0.0);
    let run_json = read_json(&dir.join("run.json"));
    let task = &run_json["workloads"][0]["config"]["task"];
    assert_eq!(
        (task["reasoning"].as_str(), task["reasoning_budget"].as_u64()),
        (Some("cot"), Some(8)),
        "{task}"
    );

    // Without the marker (the budget ran out mid-thought) there is no answer: wrong, counted.
    let cut = cot.replace("tokens = 5", "tokens = 3");
    let (dir, o) = run(tmp.path(), "cut", &cut);
    assert!(o.status.success(), "{}", text(&o));
    let rs = &cell(&dir)["reasoning"];
    assert_eq!(rs["correct"].as_u64(), Some(0), "{rs}");
    assert_eq!(rs["no_answer"], rs["measured"]);
    assert!(rs["tokens_per_correct"].is_null());

    // Direct answers: no reasoning tokens.
    let direct = suite("answer = \"reference\"", "")
        .replace("max_new_tokens = 4 }", "max_new_tokens = 4, reasoning = \"direct\" }");
    let (dir, o) = run(tmp.path(), "direct", &direct);
    assert!(o.status.success(), "{}", text(&o));
    assert!(records(&dir).iter().all(|r| r["reasoning_tokens"].as_u64() == Some(0)));
    assert_eq!(cell(&dir)["reasoning"]["overhead"].as_f64(), Some(0.0));

    // A budget without chain of thought is refused where it stands.
    let bad = suite("", "").replace("max_new_tokens = 4 }", "max_new_tokens = 4, reasoning_budget = 8 }");
    let (_, o) = run(tmp.path(), "bad", &bad);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("bad.toml:11") && text(&o).contains("reasoning_budget"),
        "{}",
        text(&o)
    );
}

#[test]
fn pass_at_1_runs_the_unit_tests_after_the_replay_and_leaves_cut_answers_unscored() {
    let tmp = tempfile::tempdir().unwrap();
    let code = r#"{"id": "add", "prompt": "def add(a, b):\n", "references": ["    return a + b\n"], "answer_type": "code", "tests": {"test": "def check(c):\n    assert c(2, 3) == 5\n", "entry_point": "add"}}
{"id": "neg", "prompt": "def neg(a):\n", "references": ["    return -a\n"], "answer_type": "code", "tests": {"test": "def check(c):\n    assert c(4) == -4\n", "entry_point": "neg"}}
"#;
    std::fs::write(tmp.path().join("code.jsonl"), code).unwrap();
    let suite = |keep: u32| {
        format!(
            "name = \"code\"\n[run]\nseed = 1\nrequests = 6\nkeep_output_chars = {keep}\n[energy]\nidle_baseline_s = 0.2\n[[workloads]]\nname = \"he\"\narrival = {{ process = \"constant\", rate_qps = 20.0 }}\ntask = {{ path = \"code.jsonl\", max_new_tokens = 4, scorers = [\"pass@1\"] }}\n[[methods]]\nid = \"mock\"\nanswer = \"reference\"\n"
        )
    };
    let run_opted_in = |name: &str, text: &str| {
        let file = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = tmp.path().join(name);
        let o = oae()
            .env("OAE_ALLOW_CODE_EXECUTION", "1")
            .args(["run", "--quiet", "--out"])
            .arg(&out)
            .arg(&file)
            .output()
            .unwrap();
        (out, o)
    };
    let (dir, o) = run_opted_in("whole", &suite(2000));
    if o.status.code() == Some(2) && text(&o).contains("pass@1") {
        eprintln!("skipped: no python3 or no sandbox here: {}", text(&o));
        return;
    }
    assert!(o.status.success(), "{}", text(&o));
    for r in records(&dir) {
        assert_eq!(
            r["quality"]["pass@1"].as_f64(),
            Some(1.0),
            "the reference passes its tests: {r}"
        );
    }
    assert_eq!(cell(&dir)["quality"]["pass@1"]["n"].as_u64(), Some(6));
    // Answers kept cut short are left unscored, with a warning, not scored wrong.
    let (dir, o) = run_opted_in("cut", &suite(5));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("cut short"), "{}", text(&o));
    assert!(records(&dir).iter().all(|r| r["quality"].get("pass@1").is_none()));
}
