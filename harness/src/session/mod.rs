//! A whole suite run: plan (validate, build, schedule), then execute into a run directory.
//!
//! Planning does everything that can fail on bad input — method ids, method configs,
//! schedules — before any directory is created, so a typo never leaves a half-made run.
//! Execution prepares each method (timed and metered as setup), replays every workload
//! against it, and keeps every record on disk as it completes. Whatever stops a run early
//! (Ctrl-C, a failing setup, a full disk) leaves `status = "aborted"` and the reason in
//! run.json, and every record written so far.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::Value;

use oae_core::rundir::carbon::CarbonOverrides;
use oae_core::rundir::energy::Unavailable;
use oae_core::rundir::{CellSummary, NotApplicable, RUN_JSON, ReplayInfo, ScoringSettings};
use oae_workloads::Schedule;

use crate::carbon::Hardware;
use crate::clock::{secs_since, utc_now_rfc3339};
use crate::energy::validity::validity;
use crate::meters::{self, Sampler};
use crate::rundir::RunDir;
use crate::runner::{CellPlan, Histograms, run_cell};
use crate::suite::{MethodEntry, Order, Suite};
use crate::{BuildContext, HarnessError, Method, MethodError, MethodSpec, RequestRecord, host};
use oae_quality::ModelScorer;

mod finish;
mod runjson;

pub use finish::CellHistograms;
pub(crate) use finish::trial_figures;
use finish::{Finisher, MethodDone, Pending};
use runjson::RunJsonWriter;

pub use oae_core::rundir::RunStatus;

/// Why the stop flag was set, when the process knows (the signal): run.json's abort reason.
static STOP_REASON: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records why the stop flag is (about to be) set, e.g. "interrupted by SIGTERM"; the first
/// reason stays.
pub fn set_stop_reason(reason: &str) {
    let _ = STOP_REASON.set(reason.to_string());
}

/// The abort reason of a stop: the recorded one, else "interrupted".
fn interrupted() -> String {
    STOP_REASON.get().cloned().unwrap_or_else(|| "interrupted".into())
}

/// Live progress of a run, for the terminal.
pub trait Progress {
    /// A line of news (setup started, meters in use, ...).
    fn message(&mut self, _msg: &str) {}
    /// A replay is starting.
    fn cell_started(&mut self, _method: &str, _workload: &str, _requests: usize) {}
    /// A request completed.
    fn record(&mut self, _record: &RequestRecord) {}
    /// A replay finished.
    fn cell_finished(&mut self, _summary: &CellSummary) {}
}

/// Progress that shows nothing.
pub struct Silent;
impl Progress for Silent {}

/// Who ran this, for provenance.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// Version of the binary.
    pub oae_version: String,
    /// Git commit the binary was built from, when known.
    pub git_sha: Option<String>,
    /// The command line.
    pub command: Vec<String>,
    /// Command-line overrides of suite values, for run.json.
    pub overrides: BTreeMap<String, Value>,
    /// Runtime settings decided by the binary (compute threads and why), for run.json.
    pub runtime: BTreeMap<String, Value>,
    /// What scoring needs from the suite and the binary (baseline, gate thresholds, each
    /// method's declared manifest), for run.json; `None` when nothing provided it.
    pub scoring: Option<ScoringSettings>,
    /// Carbon keys a site file sets: they win over the suite's `[carbon]`.
    pub carbon_overrides: CarbonOverrides,
}

/// What a finished (or stopped) run produced.
#[derive(Debug)]
pub struct RunResult {
    /// The run directory.
    pub dir: PathBuf,
    /// Complete or aborted (never running).
    pub status: RunStatus,
    /// Why it stopped early.
    pub abort_reason: Option<String>,
    /// Per-cell summaries.
    pub summaries: Vec<CellSummary>,
    /// Records in requests.jsonl.
    pub records: usize,
}

/// A validated suite with its methods built and schedules generated.
pub struct Plan {
    /// The suite.
    pub suite: Suite,
    methods: Vec<(MethodEntry, Vec<Box<dyn Method>>)>,
    /// One schedule per workload.
    pub schedules: Vec<Schedule>,
    meters: Option<Vec<Box<dyn crate::meters::Meter>>>,
    model_scorers: Vec<Box<dyn ModelScorer>>,
}

impl Plan {
    /// The model-backed scorers the suite's task workloads name (`oae_quality::scorers::
    /// MODEL_SCORERS`), which the caller must load and hand over with
    /// [`Plan::with_model_scorers`] before [`execute`].
    pub fn model_scorers_needed(&self) -> Vec<&'static str> {
        oae_quality::scorers::MODEL_SCORERS
            .iter()
            .map(|m| m.name)
            .filter(|name| {
                self.suite
                    .workloads
                    .iter()
                    .filter_map(|w| w.task.as_ref())
                    .any(|t| t.scores_any_answer_with(name))
            })
            .collect()
    }

    /// Runs with these model-backed scorers (loaded by the caller: they need models).
    pub fn with_model_scorers(mut self, scorers: Vec<Box<dyn ModelScorer>>) -> Plan {
        self.model_scorers = scorers;
        self
    }

    /// Runs with these meters instead of the machine's (tests, replays).
    pub fn with_meters(mut self, meters: Vec<Box<dyn crate::meters::Meter>>) -> Plan {
        self.meters = Some(meters);
        self
    }
}

/// Validates the suite against `registry`, builds every method instance and every schedule.
pub fn plan(suite: Suite, registry: &[&'static dyn MethodSpec]) -> Result<Plan, HarnessError> {
    suite.check_methods(registry)?;
    let mut methods = Vec::new();
    // A method none of whose cells this run replays is not built (nor set up).
    for entry in suite.methods.iter().filter(|m| suite.selection.has_method(&m.label)) {
        let spec = registry.iter().find(|s| s.id() == entry.id).expect("checked above");
        let mut instances = Vec::new();
        for instance in 0..entry.instances {
            let ctx = BuildContext {
                device: suite.run.device,
                seed: suite.run.seed,
                label: entry.label.clone(),
                instance,
                knowledge: suite.knowledge.clone(),
            };
            let m = spec.build(&entry.config, &ctx).map_err(|source| match source {
                crate::MethodError::Config(c) => HarnessError::Config(c),
                other => HarnessError::Method {
                    label: entry.label.clone(),
                    source: other,
                },
            })?;
            instances.push(m);
        }
        methods.push((entry.clone(), instances));
    }
    check_memory(&suite, crate::host::facts().memory_bytes)?;
    let schedules: Vec<Schedule> = suite
        .workloads
        .iter()
        .map(|w| w.schedule(suite.run.seed, suite.run.limit, suite.run.idle_gap_cap))
        .collect::<Result<_, _>>()?;
    if let Some(s) = schedules.iter().find(|s| s.is_empty()) {
        return Err(HarnessError::Invalid(format!(
            "{}: workload `{}` generates no requests in the run's duration; lengthen `duration_s` or raise the rate",
            suite.source.label, s.workload
        )));
    }
    Ok(Plan {
        suite,
        methods,
        schedules,
        meters: None,
        model_scorers: Vec::new(),
    })
}

/// Memory a request costs while a run holds it — its arrival in the schedule and its record
/// until the run ends — at the least (a long prompt or answer costs more), bytes.
pub const MIN_BYTES_PER_REQUEST: u64 = 1024;

/// Refuses, before any schedule is generated, a run whose requests could not fit in half of
/// this machine's memory (`memory_bytes`; 0 when unknown: no check), with the numbers.
fn check_memory(suite: &Suite, memory_bytes: u64) -> Result<(), HarnessError> {
    if memory_bytes == 0 {
        return Ok(());
    }
    let per_workload = |w: &oae_workloads::WorkloadSpec| -> Option<f64> {
        match suite.run.limit {
            oae_workloads::Limit::Count(n) => Some(n as f64),
            // Twice the mean rate: a bursty process overshoots its mean over a short run.
            oae_workloads::Limit::Duration(d) => w.mean_rate_qps().map(|r| 2.0 * r * d.as_secs_f64()),
        }
    };
    let requests: f64 = suite.workloads.iter().filter_map(per_workload).sum::<f64>()
        * f64::from(suite.run.trials)
        * suite.methods.len().max(1) as f64;
    let need = requests * MIN_BYTES_PER_REQUEST as f64;
    let budget = memory_bytes as f64 / 2.0;
    if need > budget {
        return Err(HarnessError::Invalid(format!(
            "{}: {requests:.3e} requests (workloads × requests × trials × methods) would hold at least {:.1} GB in memory (≥ {MIN_BYTES_PER_REQUEST} bytes each for the schedule and the record), more than half of this machine's {:.1} GB; lower `requests` or `duration_s`, or run the suite in parts and merge them (`oae merge`)",
            suite.source.label,
            need / 1e9,
            memory_bytes as f64 / 1e9
        )));
    }
    Ok(())
}

/// Which replay: a workload's index and the trial.
#[derive(Debug, Clone, Copy)]
struct Turn {
    workload: usize,
    trial: u32,
}

/// What a method's replays left behind.
enum MethodEnd {
    /// Every workload replayed; the after-baseline may follow.
    Done,
    /// Stopped (interrupted, a failed replay): keep what was recorded, run nothing more.
    Stopped,
    /// The replay failed in a way that consumed the instances.
    Lost,
}

/// Runs the plan into `out` (created; must not exist or be empty).
pub fn execute(
    plan: Plan,
    out: &Path,
    stop: &AtomicBool,
    progress: &mut dyn Progress,
    invocation: &Invocation,
) -> Result<RunResult, HarnessError> {
    let needed = plan.model_scorers_needed();
    if let Some(missing) = needed
        .iter()
        .find(|n| !plan.model_scorers.iter().any(|s| s.name() == **n))
    {
        return Err(HarnessError::Invalid(format!(
            "{}: scorer `{missing}` needs its model loaded before the run (oae run does this; a library caller uses Plan::with_model_scorers)",
            plan.suite.source.label
        )));
    }
    let Plan {
        suite,
        methods,
        schedules,
        meters: meters_override,
        mut model_scorers,
    } = plan;
    let mut dir = RunDir::create(out)?;
    let epoch = Instant::now();
    let start_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let opened = match meters_override {
        Some(meters) => meters::OpenMeters {
            meters,
            unavailable: Vec::new(),
        },
        None => meters::open_all(&suite.energy.meters),
    };
    report_unavailable(&opened.unavailable, progress);
    let host = host::facts();
    let hardware = Hardware {
        vcpus: host.logical_cpus,
        virtual_machine: host.virtual_machine,
        gpus: gpu_domains(&opened.meters),
    };
    let carbon = suite.carbon.resolve(&invocation.carbon_overrides, &hardware);
    let sampler = Sampler::start(opened.meters, suite.run.sample_interval, epoch);
    let mut writer = RunJsonWriter {
        suite: &suite,
        schedules: &schedules,
        invocation,
        host,
        started_utc: utc_now_rfc3339(),
        carbon: carbon.assumptions.clone(),
        sources: meters::check_all(&suite.energy.meters),
        unavailable: opened
            .unavailable
            .iter()
            .map(|(source, reason)| Unavailable {
                source: source.clone(),
                reason: reason.clone(),
            })
            .collect(),
        methods: Vec::new(),
        preparing: Vec::new(),
        not_applicable: Vec::new(),
        replays: Vec::new(),
        dispatcher_priority: None,
    };
    let t = sampler.snapshot();
    let v = validity(&t, &[], &[]);
    dir.write_json(RUN_JSON, &writer.render(RunStatus::Running, None, None, &t, v, 0))?;

    let mut finish = Finisher {
        suite: &suite,
        schedules: &schedules,
        carbon: &carbon,
        start_unix,
        summaries: Vec::new(),
        hists: Vec::new(),
        all_records: Vec::new(),
        drifts: Vec::new(),
        model_scorers: &mut model_scorers,
    };
    let mut abort: Option<String> = None;
    let mut ctx = MethodRun {
        sampler: &sampler,
        suite: &suite,
        schedules: &schedules,
        epoch,
        stop,
    };
    for block in blocks(methods, suite.run.order()) {
        if stop.load(Ordering::Relaxed) {
            abort.get_or_insert_with(interrupted);
            break;
        }
        let end = ctx.run_block(block, &mut dir, &mut finish, &mut writer, progress, &mut abort);
        if !matches!(end, MethodEnd::Done) {
            break;
        }
    }
    if stop.load(Ordering::Relaxed) {
        abort.get_or_insert_with(interrupted);
    }
    let timeline = sampler.stop();
    write_final(&mut dir, &writer, finish, &timeline, abort)
}

/// Says once per distinct reason which energy sources are unavailable.
fn report_unavailable(unavailable: &[(String, String)], progress: &mut dyn Progress) {
    let mut last_reason = "";
    for (name, reason) in unavailable {
        if reason == last_reason {
            progress.message(&format!("energy source {name} unavailable: same reason"));
        } else {
            progress.message(&format!("energy source {name} unavailable: {reason}"));
        }
        last_reason = reason;
    }
}

/// The GPU domains among the opened meters, each once.
fn gpu_domains(meters: &[Box<dyn crate::Meter>]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for m in meters {
        let d = m.domain();
        if d.starts_with("gpu:") && !v.iter().any(|x| x == d) {
            v.push(d.to_string());
        }
    }
    v
}

/// Everything a method's turn needs that stays fixed for the run.
struct MethodRun<'a> {
    sampler: &'a Sampler,
    suite: &'a Suite,
    schedules: &'a [Schedule],
    epoch: Instant,
    stop: &'a AtomicBool,
}

/// A method within a block: its instances, what run.json will say of it, its replays.
struct Member {
    entry: MethodEntry,
    instances: Vec<Box<dyn Method>>,
    done: MethodDone,
    pending: Vec<Pending>,
}

/// The methods that share one setup phase and one pair of idle baselines: each method alone
/// (sequential order), or all of them (interleaved, random).
pub(crate) fn blocks<T>(methods: Vec<T>, order: Order) -> Vec<Vec<T>> {
    match order {
        Order::Sequential => methods.into_iter().map(|m| vec![m]).collect(),
        Order::Interleaved | Order::Random => vec![methods],
    }
}

/// The order of a block's `n` methods in `trial`: suite order, or a seeded shuffle.
pub(crate) fn turn_order(n: usize, trial: u32, order: Order, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    if order == Order::Random {
        use rand::Rng;
        let mut rng = oae_core::rng::seeded(seed, &["method-order", &trial.to_string()]);
        for i in (1..n).rev() {
            v.swap(i, rng.random_range(0..=i));
        }
    }
    v
}

impl MethodRun<'_> {
    /// Prepares one method (setup, timed and metered); `Err(true)` when setup failed
    /// (`abort` says why), `Err(false)` when the method found it cannot apply to this suite
    /// (recorded in `writer.not_applicable`; the run goes on without it).
    fn prepare(
        &self,
        entry: MethodEntry,
        mut instances: Vec<Box<dyn Method>>,
        run_dir: &Path,
        writer: &mut RunJsonWriter<'_>,
        progress: &mut dyn Progress,
        abort: &mut Option<String>,
    ) -> Result<Member, bool> {
        progress.message(&format!(
            "preparing `{}` ({} instance(s))",
            entry.label,
            instances.len()
        ));
        let files = run_dir.join("methods").join(&entry.label);
        let setup_from = self.sampler.read_now();
        for m in instances.iter_mut() {
            m.files_dir(&files);
            match m.prepare().and_then(|_| m.sync()) {
                Ok(()) => {}
                Err(MethodError::NotApplicable(reason)) => {
                    progress.message(&format!(
                        "`{}` is not applicable to this suite, skipped: {reason}",
                        entry.label
                    ));
                    writer.not_applicable.push(NotApplicable {
                        label: entry.label.clone(),
                        id: entry.id.clone(),
                        reason,
                        setup_s: self.sampler.read_now() - setup_from,
                    });
                    return Err(false);
                }
                Err(e) => {
                    *abort = Some(format!("method `{}`: setup failed: {e}", entry.label));
                    return Err(true);
                }
            }
        }
        let setup_to = self.sampler.read_now();
        let first = instances.first();
        let done = MethodDone {
            label: entry.label.clone(),
            id: entry.id.clone(),
            instances: entry.instances,
            setup_s: setup_to - setup_from,
            // Energy is read from the block's final timeline: a meter whose readings carry
            // the driver's own timestamps (NVML) has no sample at `setup_to` yet.
            setup_window: (setup_from, setup_to),
            setup_j: None,
            cold_start_s: first.and_then(|m| m.cold_start_s()),
            facts: first.map(|m| m.facts()).unwrap_or_default(),
            weight_bytes: first.and_then(|m| m.weight_bytes()),
            before: None,
            after: None,
        };
        Ok(Member {
            entry,
            instances,
            done,
            pending: Vec::new(),
        })
    }

    /// Runs one block: prepares its methods, measures idle before, replays every trial of
    /// every workload of every method in the block's turn order, measures idle after, and
    /// finishes each method's cells into `finish` and `writer`.
    #[allow(clippy::too_many_arguments)]
    fn run_block(
        &mut self,
        block: Vec<(MethodEntry, Vec<Box<dyn Method>>)>,
        dir: &mut RunDir,
        finish: &mut Finisher<'_>,
        writer: &mut RunJsonWriter<'_>,
        progress: &mut dyn Progress,
        abort: &mut Option<String>,
    ) -> MethodEnd {
        let mut members = Vec::new();
        for (entry, instances) in block {
            match self.prepare(entry, instances, dir.path(), writer, progress, abort) {
                Ok(m) => members.push(m),
                Err(false) => {}
                Err(true) => return MethodEnd::Lost,
            }
        }
        if members.is_empty() {
            return MethodEnd::Done;
        }
        writer.preparing = members.iter().map(|m| m.done.provisional()).collect();
        if let Err(e) = self.checkpoint(dir, writer) {
            *abort = Some(e.to_string());
            return MethodEnd::Lost;
        }
        let idle_s = self.suite.energy.idle_baseline;
        let before = idle_window(self.sampler, idle_s, self.stop, progress, "before");
        let end = self.replay_all(&mut members, dir, writer, progress, abort);
        // The methods stay loaded through the after-baseline (loaded idle, as before the
        // replays: a launched server keeps running until its instances are dropped).
        let after = match end {
            MethodEnd::Done => idle_window(self.sampler, idle_s, self.stop, progress, "after"),
            _ => None,
        };
        for m in members.iter_mut() {
            m.instances.clear();
        }
        let timeline = self.sampler.snapshot();
        for mut m in members {
            m.done.before = before;
            m.done.after = after;
            let info = finish.finish_method(&timeline, progress, m.done, m.pending);
            writer.preparing.retain(|p| p.label != info.label);
            writer.methods.push(info);
        }
        end
    }

    /// Rewrites run.json, still `running`, with what is known now (each method set up so far,
    /// each replay begun, the records written): a run killed after this point still names its
    /// methods' ids and can be scored with `--allow-partial`.
    fn checkpoint(&self, dir: &RunDir, writer: &RunJsonWriter<'_>) -> Result<(), HarnessError> {
        let t = self.sampler.snapshot();
        let v = validity(&t, &[], &[]);
        dir.write_json(
            RUN_JSON,
            &writer.render(RunStatus::Running, None, None, &t, v, dir.records_written()),
        )
    }

    /// Every trial × method (in turn order) × workload of a block.
    fn replay_all(
        &mut self,
        members: &mut [Member],
        dir: &mut RunDir,
        writer: &mut RunJsonWriter<'_>,
        progress: &mut dyn Progress,
        abort: &mut Option<String>,
    ) -> MethodEnd {
        let run = &self.suite.run;
        for trial in 0..run.trials {
            for mi in turn_order(members.len(), trial, run.order(), run.seed) {
                for (wi, schedule) in self.schedules.iter().enumerate() {
                    if !self.suite.selection.runs(&members[mi].entry.label, wi, trial) {
                        continue;
                    }
                    if self.stop.load(Ordering::Relaxed) {
                        abort.get_or_insert_with(interrupted);
                        return MethodEnd::Stopped;
                    }
                    let m = &mut members[mi];
                    let instances = std::mem::take(&mut m.instances);
                    let turn = Turn { workload: wi, trial };
                    match self.replay(&m.entry, turn, schedule, instances, dir, writer, progress) {
                        Ok((p, back, why)) => {
                            m.pending.push(p);
                            m.instances = back;
                            if let Err(e) = self.checkpoint(dir, writer) {
                                *abort = Some(e.to_string());
                                return MethodEnd::Lost;
                            }
                            if let Some(why) = why {
                                abort.get_or_insert(why);
                                return MethodEnd::Stopped;
                            }
                        }
                        Err(e) => {
                            // The instances went with the failed replay: nothing more can run.
                            *abort = Some(e.to_string());
                            return MethodEnd::Lost;
                        }
                    }
                }
            }
        }
        MethodEnd::Done
    }

    /// Replays one workload; returns its pending cell, the instances, and why the run must
    /// stop (interrupted, a worker failed) if it must.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn replay(
        &self,
        entry: &MethodEntry,
        turn: Turn,
        schedule: &Schedule,
        instances: Vec<Box<dyn Method>>,
        dir: &mut RunDir,
        writer: &mut RunJsonWriter<'_>,
        progress: &mut dyn Progress,
    ) -> Result<(Pending, Vec<Box<dyn Method>>, Option<String>), HarnessError> {
        progress.cell_started(&entry.label, &schedule.workload, schedule.len());
        let nudge = self.sampler.nudger();
        let boundary = move || nudge.nudge();
        let run = &self.suite.run;
        let cell = CellPlan {
            method: &entry.label,
            schedule,
            warmup: run.warmup,
            cooldown: run.cooldown,
            trial: turn.trial,
            controls: run.controls,
            boundary: Some(&boundary),
            keep_output_chars: run.keep_output_chars,
        };
        let mut h = Histograms::default();
        let steal_before = host::cpu_steal_s();
        let cpu_before = host::CpuMark::now();
        writer.replays.push(ReplayInfo {
            method: entry.label.clone(),
            workload: schedule.workload.clone(),
            trial: turn.trial,
            start_s: self.sampler.read_now(),
        });
        let result = run_cell(&cell, instances, self.stop, &mut |r| {
            dir.append_record(r)?;
            h.record(r);
            progress.record(r);
            Ok(())
        })?;
        let end_s = self.sampler.read_now();
        let unscored = result
            .records
            .iter()
            .filter(|r| r.task_id.is_some() && r.outcome == crate::Outcome::Ok && r.output_text.is_none())
            .count();
        if unscored > 0 {
            progress.message(&format!(
                "warning: `{}` returned no text for {unscored} answered task request(s) on `{}` (the method cannot detokenize, or the mock has no `answer`): their quality is unknown and a quality bar counts them as wrong",
                entry.label, schedule.workload
            ));
        }
        let mut records = result.records;
        records.sort_by_key(|r| r.request_id);
        crate::summary::fill_idle_before(&mut records);
        writer.dispatcher_priority = Some(result.dispatcher_priority.clone());
        let why = match (result.error, result.aborted) {
            (Some(e), _) => Some(e),
            (None, true) => Some(interrupted()),
            (None, false) => None,
        };
        let t0_s = secs_since(self.epoch, result.t0);
        if let Some(last) = writer.replays.last_mut() {
            last.start_s = t0_s;
        }
        let pending = Pending {
            workload: turn.workload,
            trial: turn.trial,
            t0_s,
            end_s,
            replay_s: secs_since(result.t0, result.end).max(0.0),
            steal_s: steal_before.zip(host::cpu_steal_s()).map(|(a, b)| b - a),
            other_cpu_s: cpu_before.zip(host::CpuMark::now()).map(|(a, b)| a.others_since(b)),
            records,
            hists: h,
        };
        Ok((pending, result.instances, why))
    }
}

/// Measures loaded idle for `d` (nothing runs); returns the window, or `None` when skipped
/// or interrupted.
fn idle_window(
    sampler: &Sampler,
    d: std::time::Duration,
    stop: &AtomicBool,
    progress: &mut dyn Progress,
    when: &str,
) -> Option<(f64, f64)> {
    if d.is_zero() || sampler.meter_count() == 0 {
        return None;
    }
    progress.message(&format!(
        "measuring loaded idle {when} the replays for {:.0} s",
        d.as_secs_f64()
    ));
    let from = sampler.read_now();
    let completed = crate::clock::sleep_until(Instant::now() + d, stop);
    let to = sampler.read_now();
    completed.then_some((from, to))
}

/// Writes every file of the finished (or stopped) run — each even if another fails — and
/// reports the first failure.
fn write_final(
    dir: &mut RunDir,
    writer: &RunJsonWriter<'_>,
    finish: Finisher<'_>,
    timeline: &crate::meters::Timeline,
    abort: Option<String>,
) -> Result<RunResult, HarnessError> {
    let Finisher {
        summaries,
        hists,
        all_records,
        drifts,
        ..
    } = finish;
    let mut first_err = None;
    let keep = |first_err: &mut Option<HarnessError>, r: Result<(), HarnessError>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    keep(&mut first_err, dir.rewrite_records(&all_records));
    keep(&mut first_err, dir.write_timeline(timeline));
    keep(&mut first_err, dir.write_histograms(&hists));
    // A result that could not be written (a full disk) makes the run incomplete, and run.json
    // says so, with why (the records appended during the run stay in requests.jsonl).
    let abort = match (&abort, &first_err) {
        (None, Some(e)) => Some(format!("writing the results failed: {e}")),
        _ => abort,
    };
    let status = if abort.is_some() {
        RunStatus::Aborted
    } else {
        RunStatus::Complete
    };
    keep(&mut first_err, dir.write_summary(status, &summaries));
    let finished = utc_now_rfc3339();
    let v = validity(timeline, &summaries, &drifts);
    let run = writer.render(
        status,
        abort.as_deref(),
        Some(&finished),
        timeline,
        v,
        all_records.len(),
    );
    // run.json's final word matters most: rewritten in place when there is no room for a
    // temporary copy.
    keep(&mut first_err, dir.write_json_or_in_place(RUN_JSON, &run));
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(RunResult {
        dir: dir.path().to_path_buf(),
        status,
        abort_reason: abort,
        summaries,
        records: all_records.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meters::replay::ReplayMeter;
    use oae_core::rundir::{EnergyKind, read_run, read_summary};

    fn suite(extra_method_keys: &str) -> Suite {
        let text = format!(
            "[run]\nseed = 2\nrequests = 6\n[energy]\nidle_baseline_s = 0.3\n[[workloads]]\nname = \"w\"\narrival = {{ process = \"constant\", rate_qps = 40 }}\ninput_tokens = 4\noutput_tokens = 2\n[[methods]]\nid = \"mock\"\nprefill_ms = 1.0\n{extra_method_keys}\n"
        );
        Suite::parse("s.toml", &text, "s").unwrap()
    }

    /// 20 W on one measured cpu meter for 30 s.
    fn meter() -> Vec<Box<dyn crate::Meter>> {
        let start = Instant::now();
        let points = (0..=3000).map(|i| (i as f64 * 0.01, 0.2 * i as f64)).collect();
        vec![Box::new(ReplayMeter::new(
            "watts",
            "cpu",
            EnergyKind::Measured,
            points,
            Box::new(move || start.elapsed()),
        ))]
    }

    fn run(s: Suite) -> (tempfile::TempDir, RunResult) {
        let plan = plan(s, &[&crate::mock::SPEC]).unwrap().with_meters(meter());
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let r = execute(plan, &out, &AtomicBool::new(false), &mut Silent, &Invocation::default()).unwrap();
        (dir, r)
    }

    /// A model scorer without a model: scores an answer by its length (0.1 per character,
    /// at most 1) and counts its calls.
    struct FakeModelScorer(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl ModelScorer for FakeModelScorer {
        fn name(&self) -> &'static str {
            "minilm"
        }
        fn score_batch(&mut self, answers: &[(&str, &oae_quality::TaskItem)]) -> Result<Vec<f64>, String> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(answers.iter().map(|(a, _)| (a.len() as f64 / 10.0).min(1.0)).collect())
        }
    }

    #[test]
    fn model_scorers_score_each_cell_after_its_replay_and_reach_the_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.jsonl"),
            "{\"id\": \"a\", \"question\": \"q?\", \"references\": [\"abc\"]}\n",
        )
        .unwrap();
        let text = "[run]\nseed = 2\nrequests = 5\n[energy]\nidle_baseline_s = 0.3\n[[workloads]]\nname = \"w\"\narrival = { process = \"constant\", rate_qps = 40 }\ntask = { path = \"t.jsonl\", scorers = [\"em\", \"minilm\"], max_new_tokens = 2 }\n[[methods]]\nid = \"mock\"\nanswer = \"reference\"\n";
        let path = dir.path().join("s.toml");
        std::fs::write(&path, text).unwrap();
        let suite = Suite::parse(&path.display().to_string(), text, "s").unwrap();
        let p = plan(suite, &[&crate::mock::SPEC]).unwrap().with_meters(meter());
        assert_eq!(p.model_scorers_needed(), ["minilm"]);
        // Without the scorer loaded, the run refuses to start.
        let refused = execute(
            p,
            &dir.path().join("no"),
            &AtomicBool::new(false),
            &mut Silent,
            &Invocation::default(),
        );
        assert!(matches!(refused, Err(HarnessError::Invalid(m)) if m.contains("minilm")));

        let suite = Suite::parse(&path.display().to_string(), text, "s").unwrap();
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let p = plan(suite, &[&crate::mock::SPEC])
            .unwrap()
            .with_meters(meter())
            .with_model_scorers(vec![Box::new(FakeModelScorer(calls.clone()))]);
        let out = dir.path().join("run");
        let r = execute(p, &out, &AtomicBool::new(false), &mut Silent, &Invocation::default()).unwrap();
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one batch for the cell"
        );
        let run = read_run(&r.dir).unwrap();
        let records: Vec<RequestRecord> = oae_core::rundir::RecordReader::open(&r.dir)
            .unwrap()
            .map(|x| x.unwrap().1)
            .collect();
        assert_eq!(records.len(), 5);
        for rec in &records {
            assert_eq!(rec.quality.get("em"), Some(&1.0));
            assert!((rec.quality["minilm"] - 0.3).abs() < 1e-12, "{:?}", rec.quality);
        }
        let summary = read_summary(&r.dir, &run).unwrap().unwrap();
        let q = &summary.cells[0].quality["minilm"];
        assert!((q.mean.value - 0.3).abs() < 1e-12);
    }

    #[test]
    fn a_complete_run_writes_every_file_and_they_agree() {
        let (_d, r) = run(suite(""));
        assert_eq!((r.status, r.records), (RunStatus::Complete, 6));
        let run = read_run(&r.dir).unwrap();
        let summary = read_summary(&r.dir, &run).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Complete);
        assert_eq!((run.records, summary.cells.len()), (6, 1));
        assert_eq!(run.methods[0].weight_bytes, Some(0), "the mock reports no weights");
        assert!(run.methods[0].idle_baseline.before.is_some() && run.methods[0].idle_baseline.after.is_some());
        let e = summary.cells[0].energy.as_ref().unwrap();
        assert!(e.valid && (e.idle_w.unwrap() - 20.0).abs() < 0.5, "{e:?}");
        assert!(summary.cells[0].carbon.is_some());
        assert!(run.energy.validity.valid);
        for f in ["timeline.csv", "histograms.hlog", "requests.jsonl"] {
            assert!(r.dir.join(f).is_file(), "{f}");
        }
    }

    fn two_methods(run_keys: &str) -> Suite {
        let text = format!(
            "[run]\nseed = 9\nrequests = 4\n{run_keys}\n[energy]\nidle_baseline_s = 0\n[[workloads]]\nname = \"w\"\narrival = {{ process = \"constant\", rate_qps = 50 }}\ninput_tokens = 4\noutput_tokens = 2\n[[methods]]\nid = \"mock\"\nlabel = \"a\"\n[[methods]]\nid = \"mock\"\nlabel = \"b\"\n"
        );
        Suite::parse("s.toml", &text, "s").unwrap()
    }

    fn turns(run: &oae_core::rundir::RunJson) -> Vec<String> {
        run.replays.iter().map(|r| format!("{}{}", r.method, r.trial)).collect()
    }

    #[test]
    fn trials_interleave_methods_and_every_record_and_summary_knows_its_trial() {
        let (_d, r) = run(two_methods("trials = 3"));
        assert_eq!((r.status, r.records), (RunStatus::Complete, 24));
        let run = read_run(&r.dir).unwrap();
        assert_eq!((run.run.trials, run.run.order.as_str()), (3, "interleaved"));
        assert_eq!(turns(&run), ["a0", "b0", "a1", "b1", "a2", "b2"]);
        let summary = read_summary(&r.dir, &run).unwrap().unwrap();
        assert_eq!(summary.cells.len(), 2, "one cell per (method, workload), trials pooled");
        for c in &summary.cells {
            assert_eq!(c.requests, 12);
            let trials: Vec<u32> = c.trials.iter().map(|t| t.trial).collect();
            assert_eq!(trials, [0, 1, 2]);
            assert!(c.trials.iter().all(|t| t.measured == 4 && t.e2e_p50_ms.is_some()));
            assert_eq!(c.latency["e2e_ms"].mean_ci_method, "hierarchical-bootstrap");
            let e = c.energy.as_ref().unwrap();
            assert!(e.valid && (e.busy_j + e.gap_j - e.window_j).abs() < 1e-6, "{e:?}");
        }
        let records: Vec<_> = oae_core::rundir::RecordReader::open(&r.dir)
            .unwrap()
            .map(|x| x.unwrap().1)
            .collect();
        for t in 0..3 {
            assert_eq!(records.iter().filter(|x| x.trial == t).count(), 8);
        }
    }

    /// A run of some cells replays exactly those (method, workload, trial) turns, with
    /// their trial numbers, and sets up no method without a selected cell.
    #[test]
    fn a_cell_selection_replays_only_its_cells() {
        let mut s = two_methods("trials = 3");
        // Cells: a/w/0, a/w/1, a/w/2, b/w/0, … — take a's last trial and b's first.
        let chosen = crate::cells::select(&s, "2..4").unwrap();
        s.selection = crate::cells::Selection::of(&s, &chosen);
        let (_d, r) = run(s);
        assert_eq!((r.status, r.records), (RunStatus::Complete, 8));
        let json = read_run(&r.dir).unwrap();
        // Interleaved, trial by trial: b's trial 0 comes before a's trial 2.
        assert_eq!(turns(&json), ["b0", "a2"]);
        let records: Vec<_> = oae_core::rundir::RecordReader::open(&r.dir)
            .unwrap()
            .map(|x| x.unwrap().1)
            .collect();
        let seen: std::collections::BTreeSet<(String, u32)> =
            records.iter().map(|x| (x.method.clone(), x.trial)).collect();
        assert_eq!(seen, [("a".to_string(), 2), ("b".to_string(), 0)].into());
        let mut s = two_methods("trials = 3");
        let chosen = crate::cells::select(&s, "3..=5").unwrap();
        s.selection = crate::cells::Selection::of(&s, &chosen);
        let (_d, r) = run(s);
        let json = read_run(&r.dir).unwrap();
        assert_eq!(json.methods.iter().map(|m| m.label.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(turns(&json), ["b0", "b1", "b2"]);
    }

    #[test]
    fn the_order_is_sequential_by_default_and_a_random_one_is_seeded_and_recorded() {
        let (_d, r) = run(two_methods(""));
        let run1 = read_run(&r.dir).unwrap();
        assert_eq!((run1.run.trials, run1.run.order.as_str()), (1, "sequential"));
        assert_eq!(turns(&run1), ["a0", "b0"]);
        let (_d, r) = run(two_methods("trials = 2\norder = \"sequential\""));
        assert_eq!(turns(&read_run(&r.dir).unwrap()), ["a0", "a1", "b0", "b1"]);
        let orders: Vec<Vec<usize>> = (0..8).map(|t| turn_order(2, t, Order::Random, 9)).collect();
        assert_eq!(
            orders,
            (0..8).map(|t| turn_order(2, t, Order::Random, 9)).collect::<Vec<_>>(),
            "seeded"
        );
        assert!(
            orders.contains(&vec![1, 0]) && orders.contains(&vec![0, 1]),
            "{orders:?}"
        );
        let (_d, r) = run(two_methods("trials = 8\norder = \"random\""));
        let got = turns(&read_run(&r.dir).unwrap());
        let want: Vec<String> = orders
            .iter()
            .enumerate()
            .flat_map(|(t, o)| o.iter().map(move |&m| format!("{}{t}", ["a", "b"][m])))
            .collect();
        assert_eq!(got, want, "the recorded order is the seeded one");
    }

    #[test]
    fn a_failing_setup_aborts_with_the_reason_and_no_half_method() {
        let (_d, r) = run(suite("fail_setup = true"));
        assert_eq!((r.status, r.records), (RunStatus::Aborted, 0));
        assert!(r.abort_reason.as_deref().unwrap().contains("setup failed"), "{r:?}");
        let run = read_run(&r.dir).unwrap();
        assert_eq!(run.status, RunStatus::Aborted);
        assert!(run.methods.is_empty(), "a method whose setup failed has no entry");
        assert!(run.finished_utc.is_some());
    }
}
