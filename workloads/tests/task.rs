//! Task workloads: requests drawn from a task file carry their references; the draw and the
//! noise are seeded; subsets, groups and limits select items; bad settings are located.

use std::path::Path;
use std::sync::Arc;

use oae_core::config::SourceFile;
use oae_workloads::workload::WorkloadEntry;
use oae_workloads::{Limit, Schedule, WorkloadSpec};

const TASKS: &str = r#"{"id": "a1", "question": "Which river flows through Paris?", "context": "Paris lies on the Seine.", "references": ["Seine"], "answer_type": "extractive", "group": "paris"}
{"id": "a2", "question": "Which tower is in Paris?", "context": "The Eiffel Tower is in Paris.", "references": ["Eiffel Tower"], "answer_type": "extractive", "group": "paris"}
{"id": "b1", "question": "How many legs has a spider?", "references": ["8"], "answer_type": "numeric", "group": "animals"}
{"id": "c1", "question": "Who wrote Hamlet?", "references": ["Shakespeare"], "group": "books"}
{"id": "c2", "question": "Who wrote Emma?", "references": ["Jane Austen"], "group": "books"}
"#;

fn spec(dir: &Path, workload: &str) -> Result<WorkloadSpec, oae_core::ConfigError> {
    std::fs::write(dir.join("tasks.jsonl"), TASKS).unwrap();
    let suite_path = dir.join("suite.toml");
    let source: Arc<SourceFile> = SourceFile::new(suite_path.display().to_string(), workload);
    let entry: WorkloadEntry = toml::from_str(workload).unwrap();
    WorkloadSpec::from_entry(entry, &source, 0, &[])
}

fn schedule(dir: &Path, task_keys: &str, seed: u64, n: u64) -> Schedule {
    let text = format!(
        "name = \"qa\"\narrival = {{ process = \"poisson\", rate_qps = 2.0 }}\ntask = {{ path = \"tasks.jsonl\"{task_keys} }}\n"
    );
    spec(dir, &text).unwrap().schedule(seed, Limit::Count(n), None).unwrap()
}

fn ids(s: &Schedule) -> Vec<String> {
    s.arrivals
        .iter()
        .map(|a| a.request.task.as_ref().unwrap().item.id.clone())
        .collect()
}

#[test]
fn requests_carry_their_item_and_the_draw_is_seeded() {
    let tmp = tempfile::tempdir().unwrap();
    let s = schedule(tmp.path(), "", 7, 10);
    assert_eq!(s.arrivals.len(), 10);
    let first = ids(&s);
    // Every item is asked once before any is asked again.
    let mut round: Vec<&String> = first[..5].iter().collect();
    round.sort();
    round.dedup();
    assert_eq!(round.len(), 5, "{first:?}");
    assert_eq!(first[..5], first[5..]);
    assert_eq!(ids(&schedule(tmp.path(), "", 7, 10)), first, "same seed, same order");
    assert_ne!(
        ids(&schedule(tmp.path(), "", 8, 10)),
        first,
        "another seed, another order"
    );
    assert_eq!(
        ids(&schedule(tmp.path(), ", shuffle = false", 8, 5)),
        ["a1", "a2", "b1", "c1", "c2"]
    );
    for a in &s.arrivals {
        let t = a.request.task.as_ref().unwrap();
        assert!(a.request.prompt.contains(t.item.question.as_deref().unwrap()));
        assert_eq!(a.request.max_new_tokens, 64, "the default cap");
        assert_eq!(a.request.target_input_tokens as usize, a.request.prompt.len());
        let want: &[&str] = match t.item.answer_type {
            oae_quality::AnswerType::Extractive => &["em", "f1"],
            oae_quality::AnswerType::Numeric => &["numeric"],
            _ => &["contains", "f1"],
        };
        assert_eq!(&*t.scorers, want, "{}", t.item.id);
    }
    // The extractive items are asked with their passage; the closed-book template drops it.
    let with = s
        .arrivals
        .iter()
        .find(|a| a.request.task.as_ref().unwrap().item.id == "a1")
        .unwrap();
    assert!(with.request.prompt.contains("Paris lies on the Seine."));
    let closed = schedule(tmp.path(), ", template = \"qa-closed\"", 7, 5);
    assert!(closed.arrivals.iter().all(|a| !a.request.prompt.contains("Passage")));
}

#[test]
fn subsets_groups_and_limits_select_items() {
    let tmp = tempfile::tempdir().unwrap();
    let mut got = ids(&schedule(tmp.path(), ", subset = [\"books\"]", 1, 4));
    got.sort();
    assert_eq!(got, ["c1", "c1", "c2", "c2"]);
    let mut got = ids(&schedule(tmp.path(), ", groups = 2", 1, 3));
    got.sort();
    assert_eq!(got, ["a1", "a2", "b1"]);
    let mut got = ids(&schedule(tmp.path(), ", limit = 2", 3, 4));
    got.sort();
    assert_eq!(got, ["a1", "a1", "a2", "a2"], "a limit keeps the file's first items");
    // A sample is a seeded draw across the selection; in file order without shuffle.
    let draw = |seed| ids(&schedule(tmp.path(), ", sample = 3, shuffle = false", seed, 3));
    let (a, b) = (draw(1), draw(1));
    assert_eq!(a, b);
    assert!((1..10).any(|s| draw(s) != a), "another seed draws other items");
    let pos = |id: &String| ["a1", "a2", "b1", "c1", "c2"].iter().position(|x| x == id).unwrap();
    assert!(a.windows(2).all(|w| pos(&w[0]) < pos(&w[1])), "{a:?}");
}

#[test]
fn noise_is_seeded_and_touches_only_the_question() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = ", shuffle = false, noise = { typos = 0.2, case = \"random\", distractor = true }";
    let a = schedule(tmp.path(), keys, 3, 5);
    let b = schedule(tmp.path(), keys, 3, 5);
    let c = schedule(tmp.path(), keys, 4, 5);
    let prompts = |s: &Schedule| s.arrivals.iter().map(|a| a.request.prompt.clone()).collect::<Vec<_>>();
    assert_eq!(prompts(&a), prompts(&b), "same seed, same noisy prompts");
    assert_ne!(prompts(&a), prompts(&c));
    let clean = schedule(tmp.path(), ", shuffle = false", 3, 5);
    for (noisy, clean) in a.arrivals.iter().zip(&clean.arrivals) {
        assert_ne!(noisy.request.prompt, clean.request.prompt);
        // The passage and the instructions are untouched.
        assert!(
            noisy
                .request
                .prompt
                .starts_with(clean.request.prompt.lines().next().unwrap())
        );
    }
    assert!(a.arrivals[0].request.prompt.contains("Paris lies on the Seine."));
}

#[test]
fn bad_task_settings_are_located() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |keys: &str| {
        let text = format!(
            "name = \"qa\"\narrival = {{ process = \"poisson\", rate_qps = 2.0 }}\ntask = {{ path = \"tasks.jsonl\"{keys} }}\n"
        );
        spec(tmp.path(), &text).unwrap_err().to_string()
    };
    assert!(err(", scorers = [\"bleu\"]").contains("unknown scorer `bleu`"));
    assert!(err(", template = \"essay\"").contains("workloads[0].task.template"));
    assert!(err(", subset = [\"films\"]").contains("films"));
    assert!(err(", noise = { typos = 0.9 }").contains("noise.typos"));
    assert!(err(", reasoning = \"tree\"").contains("workloads[0].task.reasoning"));
    // pass@1 needs each item's unit tests (these items have none), named by item.
    let e = err(", scorers = [\"pass@1\"]");
    assert!(
        e.contains("workloads[0].task.scorers") && e.contains("item `a1` has no `tests`"),
        "{e}"
    );
    // Running generated code needs the user's consent (this test never gives it).
    if std::env::var("OAE_ALLOW_CODE_EXECUTION").is_err() {
        std::fs::write(
            tmp.path().join("code.jsonl"),
            r#"{"id": "f", "prompt": "def f():\n", "references": ["    return 1\n"], "answer_type": "code", "tests": {"test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}}"#,
        )
        .unwrap();
        let text = "name = \"code\"\narrival = { process = \"poisson\", rate_qps = 2.0 }\ntask = { path = \"code.jsonl\", scorers = [\"pass@1\"] }\n";
        let e = spec(tmp.path(), text).unwrap_err().to_string();
        assert!(
            e.contains("workloads[0].task.scorers") && e.contains("OAE_ALLOW_CODE_EXECUTION=1"),
            "{e}"
        );
    }
    assert!(err(", template = \"qa-context\"").contains("no `context`"));
    let text = "name = \"qa\"\narrival = { process = \"poisson\", rate_qps = 2.0 }\ninput_tokens = 8\ntask = { path = \"tasks.jsonl\" }\n";
    assert!(
        spec(tmp.path(), text)
            .unwrap_err()
            .to_string()
            .contains("remove input_tokens")
    );
    let text = "name = \"qa\"\narrival = { process = \"poisson\", rate_qps = 2.0 }\ntask = { path = \"none.jsonl\" }\n";
    assert!(spec(tmp.path(), text).unwrap_err().to_string().contains("no task file"));
}

#[test]
fn a_dataset_not_fetched_says_how_to_fetch_it() {
    let tmp = tempfile::tempdir().unwrap();
    // SAFETY: no other test in this binary reads OAE_DATASETS_DIR.
    unsafe { std::env::set_var("OAE_DATASETS_DIR", tmp.path().join("empty")) };
    let text = "name = \"qa\"\narrival = { process = \"poisson\", rate_qps = 2.0 }\ntask = { dataset = \"gsm8k\" }\n";
    let e = spec(tmp.path(), text).unwrap_err().to_string();
    assert!(
        e.contains("workloads[0].task.dataset") && e.contains("oae datasets fetch gsm8k"),
        "{e}"
    );
    let text = "name = \"qa\"\narrival = { process = \"poisson\", rate_qps = 2.0 }\ntask = { dataset = \"mmlu\" }\n";
    assert!(
        spec(tmp.path(), text)
            .unwrap_err()
            .to_string()
            .contains("unknown dataset `mmlu`")
    );
    let text = "name = \"qa\"\narrival = { process = \"poisson\", rate_qps = 2.0 }\ntask = { limit = 3 }\n";
    let e = spec(tmp.path(), text).unwrap_err().to_string();
    assert!(e.contains("workloads[0].task.path") && e.contains("dataset"), "{e}");
}

#[test]
fn a_trace_times_the_requests_and_the_task_asks_them() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("t.csv"),
        "t_s,input_tokens,output_tokens\n0.0,500,7\n1.5,20,9\n4.0,33,11\n",
    )
    .unwrap();
    let text = "name = \"qa\"\ntrace = { path = \"t.csv\", format = \"oae-csv\" }\ntask = { path = \"tasks.jsonl\", shuffle = false }\n";
    let s = spec(tmp.path(), text)
        .unwrap()
        .schedule(1, Limit::Count(3), None)
        .unwrap();
    let at: Vec<f64> = s.arrivals.iter().map(|a| a.at.as_secs_f64()).collect();
    assert_eq!(at, [0.0, 1.5, 4.0], "the trace's timing");
    let out: Vec<u32> = s.arrivals.iter().map(|a| a.request.max_new_tokens).collect();
    assert_eq!(out, [7, 9, 11], "the trace's generation lengths");
    assert_eq!(ids(&s), ["a1", "a2", "b1"], "the task's questions");
    for a in &s.arrivals {
        assert_eq!(
            a.request.target_input_tokens as usize,
            a.request.prompt.len(),
            "the prompt's own length"
        );
    }
}
