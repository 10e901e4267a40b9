//! `oae run`: plan the suite, replay it, print the table, point at the run directory.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use oae_core::rundir::{CellSummary, Outcome, RequestRecord};
use oae_harness::clock::{utc_now_rfc3339, utc_stamp};
use oae_harness::rundir::RunDir;
use oae_harness::session::{self, Invocation, Progress, RunResult, RunStatus};
use oae_harness::suite::Suite;
use oae_reports::flow::{self, AfterRun, ScoringInputs};
use oae_workloads::Limit;

use crate::cli::RunArgs;
use crate::render;

/// The embedded default suite.
pub const QUICK: &str = include_str!("../../suites/quick.toml");

/// The label of the embedded suite in run.json.
pub(super) const EMBEDDED: &str = "suites/quick.toml (embedded)";

/// Command-line values that change what a suite measures; recorded in run.json's overrides.
#[derive(Debug, Default)]
pub(super) struct SuiteOverrides {
    seed: Option<u64>,
    requests: Option<u64>,
    trials: Option<u32>,
    idle_baseline_s: Option<f64>,
}

impl SuiteOverrides {
    /// Applies them to `suite`; returns run.json's overrides.
    pub(super) fn apply(&self, suite: &mut Suite) -> BTreeMap<String, serde_json::Value> {
        let mut overrides = BTreeMap::new();
        if let Some(seed) = self.seed {
            suite.run.seed = seed;
            overrides.insert("seed".to_string(), json!(seed));
        }
        if let Some(n) = self.requests {
            suite.run.limit = Limit::Count(n);
            overrides.insert("requests".to_string(), json!(n));
        }
        if let Some(n) = self.trials {
            suite.run.trials = n;
            overrides.insert("trials".to_string(), json!(n));
        }
        if let Some(s) = self.idle_baseline_s {
            suite.energy.idle_baseline = std::time::Duration::from_secs_f64(s);
            overrides.insert("idle_baseline_s".to_string(), json!(s));
        }
        overrides
    }

    /// The overrides a run recorded.
    pub(super) fn recorded(o: &BTreeMap<String, serde_json::Value>) -> SuiteOverrides {
        SuiteOverrides {
            seed: o.get("seed").and_then(|v| v.as_u64()),
            requests: o.get("requests").and_then(|v| v.as_u64()),
            trials: o.get("trials").and_then(|v| v.as_u64()).map(|t| t as u32),
            idle_baseline_s: o.get("idle_baseline_s").and_then(|v| v.as_f64()),
        }
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.resume {
        return super::resume::resume(dir, &args);
    }
    let mut suite = match &args.suite {
        Some(path) => Suite::load(path)?,
        None => Suite::parse(EMBEDDED, QUICK, "quick")?,
    };
    let mut overrides = SuiteOverrides {
        seed: args.seed,
        requests: args.requests,
        trials: args.trials,
        idle_baseline_s: args.idle_baseline_s,
    }
    .apply(&mut suite);
    // After the overrides: a cell's id covers the seed and request count it runs with.
    let cells = match &args.cell {
        Some(spec) => {
            let chosen = oae_harness::cells::select(&suite, spec)?;
            suite.selection = oae_harness::cells::Selection::of(&suite, &chosen);
            overrides.insert("cells".to_string(), json!(chosen));
            overrides.insert(
                "cells_total".to_string(),
                json!(oae_harness::cells::cells(&suite).len()),
            );
            Some(chosen)
        }
        None => None,
    };
    let out = match (&args.out, &cells) {
        (Some(o), _) => Some(o.clone()),
        // Cells of one suite run side by side: each its own directory by default.
        (None, Some(c)) => Some(default_out(&format!("{}/cell-{}-{}", suite.name, c[0].index, c[0].id))),
        (None, None) => None,
    };
    let inputs = ScoringInputs {
        site: args.site.clone(),
        manifests: args.manifests.clone(),
        shipped: super::score::shipped_manifests(),
        ..ScoringInputs::default()
    };
    let (result, stop) = execute_suite(suite, overrides, out, &inputs, args.quiet)?;
    if let (Some(c), RunStatus::Complete) = (&cells, result.status) {
        let ids: Vec<&str> = c.iter().map(|c| c.id.as_str()).collect();
        println!(
            "ran {} cell(s) ({}); a part of the suite gets no scorecards: combine the cells' directories with `oae merge`",
            c.len(),
            ids.join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    match result.status {
        RunStatus::Complete => super::score::after_run(
            &result.dir,
            &inputs,
            &AfterRun {
                report: !args.no_report,
                save_baseline: args.save_baseline.clone(),
                baseline: args.baseline.clone(),
                noise: args.noise.clone(),
            },
        ),
        // Aborted (a finished run is never `running`).
        RunStatus::Aborted | RunStatus::Running => Ok(aborted(&result, &stop)),
    }
}

/// What an aborted run says, and its exit code: 128 + the signal's number when a signal
/// stopped it (130 SIGINT, 143 SIGTERM, 129 SIGHUP), else 2.
pub fn aborted(result: &RunResult, stop: &crate::signals::Stop) -> ExitCode {
    let reason = result.abort_reason.clone().unwrap_or_else(|| "unknown".into());
    eprintln!(
        "run aborted: {reason}; run.json says \"aborted\" and requests.jsonl keeps all {} records written",
        result.records
    );
    eprintln!(
        "no reports written for an incomplete run; to score what was recorded: oae report {} --allow-partial",
        result.dir.display()
    );
    match stop.exit_code() {
        Some(code) if stop.flag.load(Ordering::SeqCst) && reason.starts_with("interrupted") => ExitCode::from(code),
        _ => ExitCode::from(2),
    }
}

/// Runs `suite` into `out` (default: `oae-results/<suite>/<stamp>`) with its scoring
/// settings recorded, SIGINT / SIGTERM / SIGHUP handled, progress shown and the table
/// printed; returns the run and the stop state (set when a signal came).
pub fn execute_suite(
    suite: Suite,
    overrides: BTreeMap<String, serde_json::Value>,
    out: Option<PathBuf>,
    inputs: &ScoringInputs,
    quiet: bool,
) -> anyhow::Result<(RunResult, crate::signals::Stop)> {
    let methods: Vec<(String, String)> = suite.methods.iter().map(|m| (m.label.clone(), m.id.clone())).collect();
    let composed: BTreeMap<String, String> = suite
        .methods
        .iter()
        .filter_map(|m| {
            let spec = oae_methods::registry().into_iter().find(|s| s.id() == m.id)?;
            Some((m.label.clone(), spec.manifest_for(&m.config)?))
        })
        .collect();
    let scoring = flow::scoring_for_run(
        suite.score.as_ref(),
        suite.gate.as_ref(),
        &methods,
        &inputs.shipped,
        &composed,
    )?;
    // Bad site or manifest files fail before the replay, not after it.
    let opts = flow::options(inputs)?;
    let threads = compute_threads(suite.run.threads);
    // SAFETY: no other thread exists yet (the Ctrl-C handler and the runner start later),
    // so nothing can read the environment concurrently.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.0.to_string()) };
    let registry = oae_methods::registry();
    let plan = session::plan(suite, &registry)?;
    // Model-backed scorers load their models now: a missing model fails before the replay.
    let scorers = plan
        .model_scorers_needed()
        .into_iter()
        .map(oae_methods::scorers::load)
        .collect::<Result<Vec<_>, _>>()?;
    let plan = plan.with_model_scorers(scorers);
    let out = out.unwrap_or_else(|| default_out(&plan.suite.name));

    let stop = crate::signals::install("finishing the request in service and writing results")?;

    let invocation = Invocation {
        oae_version: env!("CARGO_PKG_VERSION").to_string(),
        git_sha: Some(env!("OAE_GIT_SHA").to_string()).filter(|s| !s.is_empty()),
        command: std::env::args().collect(),
        overrides,
        runtime: [
            (
                "compute_threads".to_string(),
                json!({ "threads": threads.0, "source": threads.1 }),
            ),
            ("placement".to_string(), placement()),
        ]
        .into(),
        scoring: Some(scoring),
        carbon_overrides: opts.carbon_overrides,
    };
    let mut progress = TerminalProgress::new(quiet);
    let result = session::execute(plan, &out, &stop.flag, &mut progress, &invocation)?;
    progress.finish();
    print!("{}", render::cells(&result.summaries, render::NO_ENERGY_SOURCE));
    println!("run directory: {}", result.dir.display());
    Ok((result, stop))
}

/// The job-scheduler variables that say where a run (a cell of a job array) ran.
const PLACEMENT_VARS: [&str; 8] = [
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURMD_NODENAME",
    "SLURM_JOB_PARTITION",
    "JOB_COMPLETION_INDEX",
    "HOSTNAME",
    "KUBERNETES_SERVICE_HOST",
];

/// Where this run ran: the machine's host name and the job scheduler's placement, so the
/// cells of a job array can be traced to their nodes.
fn placement() -> serde_json::Value {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty());
    let scheduler: BTreeMap<&str, String> = PLACEMENT_VARS
        .iter()
        .filter_map(|v| std::env::var(v).ok().map(|x| (*v, x)))
        .collect();
    json!({ "hostname": host, "scheduler": scheduler })
}

/// Compute threads for the methods, and where the number came from.
///
/// Default: logical CPUs − 1 (at least 1). The harness's dispatcher, sampler and collector
/// need a core of their own; a method that takes every core delays request releases and
/// meter reads, which would then be measured as the method's latency. On a 2-vCPU machine
/// this is also the fastest setting for small models (thread-pool dispatch costs more than
/// it saves on small matrices; see the decode bench).
fn compute_threads(from_suite: Option<u32>) -> (usize, &'static str) {
    if let Some(n) = from_suite {
        return (n as usize, "suite [run] threads");
    }
    if let Some(n) = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return (n, "RAYON_NUM_THREADS");
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    ((cpus - 1).max(1), "default: logical CPUs - 1, one left for the harness")
}

/// `oae-results/<suite>/<UTC stamp>`, with a suffix if that second is taken.
fn default_out(suite: &str) -> PathBuf {
    let stamp = utc_stamp(&utc_now_rfc3339());
    let base = RunDir::default_path(std::path::Path::new("oae-results"), suite, &stamp);
    let mut candidate = base.clone();
    let mut n = 2;
    while candidate.exists() {
        candidate = base.with_file_name(format!("{stamp}-{n}"));
        n += 1;
    }
    candidate
}

/// A progress bar on a terminal, plain lines otherwise, nothing with --quiet.
struct TerminalProgress {
    quiet: bool,
    tty: bool,
    bar: Option<ProgressBar>,
    ok: usize,
    failed: usize,
}

impl TerminalProgress {
    fn new(quiet: bool) -> Self {
        Self {
            quiet,
            tty: std::io::stderr().is_terminal(),
            bar: None,
            ok: 0,
            failed: 0,
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Progress for TerminalProgress {
    fn message(&mut self, msg: &str) {
        // --quiet silences news, never warnings.
        if self.quiet && !msg.starts_with("warning:") {
            return;
        }
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn cell_started(&mut self, method: &str, workload: &str, requests: usize) {
        self.finish();
        (self.ok, self.failed) = (0, 0);
        if self.quiet {
            return;
        }
        if self.tty {
            let bar = ProgressBar::with_draw_target(Some(requests as u64), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(format!("{method} × {workload}"));
            self.bar = Some(bar);
        } else {
            eprintln!("replaying {method} × {workload}: {requests} requests");
        }
    }

    fn record(&mut self, r: &RequestRecord) {
        if r.outcome == Outcome::Ok {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
        if let Some(b) = &self.bar {
            let last = r.e2e_ms.map(|v| format!(" · last e2e {v:.1} ms")).unwrap_or_default();
            b.set_message(format!("ok {} · failed {}{last}", self.ok, self.failed));
            b.inc(1);
        }
    }

    fn cell_finished(&mut self, s: &CellSummary) {
        self.finish();
        if !self.quiet && !self.tty {
            eprintln!(
                "done {} × {}: {} ok, {} failed in {:.1} s",
                s.method, s.workload, s.ok, s.failed, s.replay_s
            );
        }
    }
}
