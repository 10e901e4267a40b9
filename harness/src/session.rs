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

use serde_json::{Value, json};

use oae_workloads::{Limit, Schedule};

use crate::clock::{secs_since, utc_now_rfc3339};
use crate::energy::{Attribution, IdlePower, Work, attribute};
use crate::meters::{self, Sampler, Timeline};
use crate::rundir::RunDir;
use crate::runner::{CellPlan, Histograms, run_cell};
use crate::stats::Stat;
use crate::suite::{MethodEntry, Suite};
use crate::summary::{CellInfo, CellSummary, EnergySummary, Sensitivity, summarize};
use crate::{BuildContext, EnergyKind, HarnessError, Method, MethodSpec, RequestRecord, host};

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
    /// method's declared manifest), for run.json; `null` when nothing provided it.
    pub scoring: Value,
}

/// Final status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Every arrival of every cell was released and recorded.
    Complete,
    /// Stopped early; the reason is in run.json.
    Aborted,
}

/// What a finished (or stopped) run produced.
#[derive(Debug)]
pub struct RunResult {
    /// The run directory.
    pub dir: PathBuf,
    /// Complete or aborted.
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
}

impl Plan {
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
    for entry in &suite.methods {
        let spec = registry.iter().find(|s| s.id() == entry.id).expect("checked above");
        let mut instances = Vec::new();
        for instance in 0..entry.instances {
            let ctx = BuildContext {
                device: suite.run.device,
                seed: suite.run.seed,
                label: entry.label.clone(),
                instance,
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
    })
}

/// Runs the plan into `out` (created; must not exist or be empty).
pub fn execute(
    plan: Plan,
    out: &Path,
    stop: &AtomicBool,
    progress: &mut dyn Progress,
    invocation: &Invocation,
) -> Result<RunResult, HarnessError> {
    let Plan {
        suite,
        methods,
        schedules,
        meters: meters_override,
    } = plan;
    let mut dir = RunDir::create(out)?;
    let started_utc = utc_now_rfc3339();
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
    let sources = [host::nvml_status(), host::rapl_status()];
    let sampler = Sampler::start(opened.meters, suite.run.sample_interval, epoch);
    let mut last_reason = "";
    for (name, reason) in &opened.unavailable {
        if reason == last_reason {
            progress.message(&format!("energy source {name} unavailable: same reason"));
        } else {
            progress.message(&format!("energy source {name} unavailable: {reason}"));
        }
        last_reason = reason;
    }

    let mut ctx = RunJson {
        suite: &suite,
        schedules: &schedules,
        invocation,
        host: serde_json::to_value(host::facts()).unwrap_or(Value::Null),
        validity: Value::Null,
        started_utc,
        sources: serde_json::to_value(&sources).unwrap_or(Value::Null),
        unavailable: opened
            .unavailable
            .iter()
            .map(|(s, r)| json!({"source": s, "reason": r}))
            .collect(),
        methods: Vec::new(),
        dispatcher_priority: None,
    };
    dir.write_json("run.json", &ctx.render("running", None, None, &sampler.snapshot(), 0))?;

    let nudge = sampler.nudger();
    let nudge_boundary = move || nudge.nudge();
    let host_facts = host::facts();
    let mut finish = Finisher {
        sampler: &sampler,
        suite: &suite,
        schedules: &schedules,
        start_unix,
        n_vcpu: host_facts.logical_cpus,
        summaries: Vec::new(),
        hists: Vec::new(),
        all_records: Vec::new(),
        drifts: Vec::new(),
    };
    let mut abort: Option<String> = None;

    'methods: for (entry, mut instances) in methods {
        if stop.load(Ordering::Relaxed) {
            abort.get_or_insert_with(|| "interrupted".into());
            break;
        }
        progress.message(&format!(
            "preparing `{}` ({} instance(s))",
            entry.label,
            instances.len()
        ));
        let setup_from = sampler.read_now();
        for m in instances.iter_mut() {
            if let Err(e) = m.prepare().and_then(|_| m.sync()) {
                abort = Some(format!("method `{}`: setup failed: {e}", entry.label));
                break 'methods;
            }
        }
        let setup_to = sampler.read_now();
        let setup_s = setup_to - setup_from;
        let snapshot = sampler.snapshot();
        let setup_j = energy_sum(&snapshot, |m| snapshot.energy_between(m, setup_from, setup_to));
        let before = idle_window(&sampler, suite.energy.idle_baseline, stop, progress, "before");
        let mut done = MethodDone {
            label: entry.label.clone(),
            id: entry.id.clone(),
            instances: entry.instances,
            setup_s,
            setup_j,
            facts: instances.first().map(|m| m.facts()).unwrap_or_default(),
            before,
            after: None,
        };

        let mut pending: Vec<Pending> = Vec::new();
        let mut stop_all = false;
        for (wi, schedule) in schedules.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                abort.get_or_insert_with(|| "interrupted".into());
                stop_all = true;
                break;
            }
            progress.cell_started(&entry.label, &schedule.workload, schedule.len());
            let cell = CellPlan {
                method: &entry.label,
                schedule,
                warmup: suite.run.warmup,
                cooldown: suite.run.cooldown,
                trial: 0,
                controls: suite.run.controls,
                boundary: Some(&nudge_boundary),
            };
            let mut h = Histograms::default();
            let steal_before = host::cpu_steal_s();
            let result = run_cell(&cell, instances, stop, &mut |r| {
                dir.append_record(r)?;
                h.record(r);
                progress.record(r);
                Ok(())
            });
            let run = match result {
                Ok(run) => run,
                Err(e) => {
                    abort = Some(e.to_string());
                    // The instances went with the failed replay: nothing more can run.
                    finish_method(&mut finish, progress, done, pending, &mut ctx);
                    break 'methods;
                }
            };
            let end_s = sampler.read_now();
            let mut records = run.records;
            records.sort_by_key(|r| r.request_id);
            crate::summary::fill_idle_before(&mut records);
            ctx.dispatcher_priority = Some(run.dispatcher_priority.clone());
            pending.push(Pending {
                workload: wi,
                t0_s: secs_since(epoch, run.t0),
                end_s,
                replay_s: secs_since(run.t0, run.end).max(0.0),
                steal_s: steal_before.zip(host::cpu_steal_s()).map(|(a, b)| b - a),
                records,
                hists: h,
            });
            instances = run.instances;
            if let Some(e) = run.error {
                abort = Some(e);
                stop_all = true;
                break;
            }
            if run.aborted {
                abort.get_or_insert_with(|| "interrupted".into());
                stop_all = true;
                break;
            }
        }
        if !stop_all {
            done.after = idle_window(&sampler, suite.energy.idle_baseline, stop, progress, "after");
        }
        finish_method(&mut finish, progress, done, pending, &mut ctx);
        if stop_all {
            break 'methods;
        }
    }
    if stop.load(Ordering::Relaxed) {
        abort.get_or_insert_with(|| "interrupted".into());
    }

    let Finisher {
        summaries,
        hists,
        all_records,
        drifts,
        ..
    } = finish;
    let timeline = sampler.stop();
    ctx.validity = validity(&timeline, &summaries, &drifts);
    let status = if abort.is_some() {
        RunStatus::Aborted
    } else {
        RunStatus::Complete
    };
    // Finish every file even if one fails, then report the first failure.
    let mut first_err = None;
    let mut keep = |r: Result<(), HarnessError>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    keep(dir.rewrite_records(&all_records));
    keep(dir.write_timeline(&timeline));
    keep(
        dir.write_histograms(
            &hists
                .iter()
                .map(|(m, w, s, d, h)| (m.clone(), w.clone(), *s, *d, h))
                .collect::<Vec<_>>(),
        ),
    );
    keep(dir.write_json(
        "summary.json",
        &json!({ "status": status_str(status), "cells": summaries }),
    ));
    let finished = utc_now_rfc3339();
    keep(dir.write_json(
        "run.json",
        &ctx.render(
            status_str(status),
            abort.as_deref(),
            Some(&finished),
            &timeline,
            all_records.len(),
        ),
    ));
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

fn status_str(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Complete => "complete",
        RunStatus::Aborted => "aborted",
    }
}

/// Indices of the primary meters (one per domain); cross-check meters are never summed.
fn primary(t: &Timeline) -> Vec<usize> {
    (0..t.meters.len()).filter(|&m| t.meters[m].primary).collect()
}

fn estimated(t: &Timeline) -> bool {
    primary(t).iter().any(|&m| t.meters[m].kind == EnergyKind::Estimated)
}

/// Sums `f(meter)` over the primary meters; `None` if there are none or any is unknown.
fn energy_sum(t: &Timeline, f: impl Fn(usize) -> Option<f64>) -> Option<f64> {
    let p = primary(t);
    if p.is_empty() {
        return None;
    }
    p.into_iter().map(f).sum()
}

/// A replay whose records wait for the method's after-baseline before attribution.
struct Pending {
    workload: usize,
    t0_s: f64,
    end_s: f64,
    replay_s: f64,
    steal_s: Option<f64>,
    records: Vec<RequestRecord>,
    hists: Histograms,
}

/// What run.json records about a method, filled in as it runs.
struct MethodDone {
    label: String,
    id: String,
    instances: u32,
    setup_s: f64,
    setup_j: Option<f64>,
    facts: BTreeMap<String, Value>,
    before: Option<(f64, f64)>,
    after: Option<(f64, f64)>,
}

/// Accumulates finished cells.
struct Finisher<'a> {
    sampler: &'a Sampler,
    suite: &'a Suite,
    schedules: &'a [Schedule],
    start_unix: f64,
    n_vcpu: usize,
    summaries: Vec<CellSummary>,
    hists: Vec<(String, String, f64, f64, Histograms)>,
    all_records: Vec<RequestRecord>,
    /// (method, domain, drift %) of each idle baseline pair.
    drifts: Vec<(String, String, f64)>,
}

/// Drift between the before and after idle baselines beyond which a run is flagged, %.
const IDLE_DRIFT_FLAG_PCT: f64 = 10.0;

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

/// Bin length for idle power: 1 s, shorter for baselines under 3 s (flagged by the caller).
fn idle_bin_s(windows: &[(f64, f64)]) -> f64 {
    let shortest = windows.iter().map(|w| w.1 - w.0).fold(f64::INFINITY, f64::min);
    if shortest.is_finite() {
        (shortest / 3.0).min(1.0)
    } else {
        1.0
    }
}

/// Per meter: idle power from both baseline windows, and the before/after medians.
fn idle_model(t: &Timeline, before: Option<(f64, f64)>, after: Option<(f64, f64)>) -> Vec<Option<IdleFit>> {
    let windows: Vec<(f64, f64)> = before.into_iter().chain(after).collect();
    if windows.is_empty() {
        return vec![None; t.meters.len()];
    }
    let bin = idle_bin_s(&windows);
    (0..t.meters.len())
        .map(|m| {
            let pts: Vec<(f64, f64)> = t.of(m).iter().map(|s| (s.t_s, s.energy_j)).collect();
            let both = crate::energy::idle_power(&pts, &windows, bin)?;
            let one = |w: Option<(f64, f64)>| w.and_then(|w| crate::energy::idle_power(&pts, &[w], bin));
            Some(IdleFit {
                both,
                before: one(before),
                after: one(after),
            })
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct IdleFit {
    both: IdlePower,
    before: Option<IdlePower>,
    after: Option<IdlePower>,
}

impl IdleFit {
    fn drift_pct(&self) -> Option<f64> {
        let (b, a) = (self.before?.median_w, self.after?.median_w);
        (b > 0.0).then(|| (a - b) / b * 100.0)
    }
}

/// Attributes the cells of one method (after both idle baselines), records run.json's method
/// entry, and reports each cell.
fn finish_method(
    f: &mut Finisher<'_>,
    progress: &mut dyn Progress,
    done: MethodDone,
    pending: Vec<Pending>,
    ctx: &mut RunJson<'_>,
) {
    let timeline = f.sampler.snapshot();
    let idle = idle_model(&timeline, done.before, done.after);
    let baseline_json: Vec<Value> = idle
        .iter()
        .enumerate()
        .filter_map(|(m, fit)| {
            let fit = fit.as_ref()?;
            let info = &timeline.meters[m];
            let drift = fit.drift_pct();
            if let Some(d) = drift
                && info.primary
            {
                f.drifts.push((done.label.clone(), info.domain.clone(), d));
            }
            Some(json!({
                "source": info.name,
                "domain": info.domain,
                "idle_w": fit.both.median_w,
                "idle_iqr_w": fit.both.iqr_w,
                "bins": fit.both.bins,
                "bin_s": fit.both.bin_s,
                "before_w": fit.before.map(|p| p.median_w),
                "after_w": fit.after.map(|p| p.median_w),
                "idle_drift_pct": drift,
                "drift_flagged": drift.is_some_and(|d| d.abs() > IDLE_DRIFT_FLAG_PCT),
            }))
        })
        .collect();
    let span = |w: Option<(f64, f64)>| w.map(|(a, b)| json!({ "from_s": a, "to_s": b, "duration_s": b - a }));
    let short = [done.before, done.after]
        .iter()
        .flatten()
        .any(|w| w.1 - w.0 < crate::suite::DEFAULT_IDLE_BASELINE_S);
    ctx.methods.push(json!({
        "label": done.label,
        "id": done.id,
        "instances": done.instances,
        "setup_s": done.setup_s,
        "setup_energy_j": done.setup_j,
        "setup_energy_estimated": estimated(&timeline),
        "facts": done.facts,
        "idle_baseline": {
            "before": span(done.before),
            "after": span(done.after),
            "meters": baseline_json,
            "note": if done.before.is_none() && done.after.is_none() {
                Some("no idle baseline: energy_dyn_j is null and compressed idle time is not added back")
            } else if short {
                Some("baseline shorter than 30 s: idle power is noisier than the methodology asks for")
            } else {
                None
            },
        },
    }));
    let idle_w: Vec<Option<f64>> = idle.iter().map(|fit| fit.map(|x| x.both.median_w)).collect();

    for p in pending {
        let schedule = &f.schedules[p.workload];
        let mut records = p.records;
        let info = CellInfo {
            method: &done.label,
            method_id: &done.id,
            workload: &schedule.workload,
            replay_s: p.replay_s,
            offered_rate_qps: schedule.replay_rate_qps(),
            setup_s: done.setup_s,
            confidence: f.suite.run.confidence,
            warmup_s: f.suite.run.warmup.as_secs_f64(),
            cooldown_s: f.suite.run.cooldown.as_secs_f64(),
            slo: f.suite.slo,
            min_requests: f.suite.run.min_requests,
            min_duration_s: f.suite.run.min_duration_s,
        };
        let compressed_s = schedule.compression.skipped_s;
        let energy = attribute_cell(
            &timeline,
            &mut records,
            CellWindow {
                t0_s: p.t0_s,
                end_s: p.end_s,
                compressed_s,
            },
            &idle_w,
            f.suite.energy.prefill_weight,
            done.setup_j,
            f.suite.run.confidence,
        );
        let mut summary = summarize(&info, &records);
        // Carbon only from energy that can be trusted; an invalid window gets none.
        if energy.as_ref().is_some_and(|e| e.valid) {
            let gpus: Vec<String> = timeline
                .meters
                .iter()
                .map(|m| m.domain.clone())
                .filter(|d| d.starts_with("gpu:"))
                .fold(Vec::new(), |mut v, d| {
                    if !v.contains(&d) {
                        v.push(d);
                    }
                    v
                });
            let emb = crate::carbon::Embodied::for_hardware(f.n_vcpu, &gpus, &f.suite.carbon.embodied);
            let served: Vec<usize> = (0..records.len())
                .filter(|&i| records[i].energy_amortized_j.is_some())
                .collect();
            let energies: Vec<crate::carbon::RequestEnergy> = served
                .iter()
                .map(|&i| crate::carbon::RequestEnergy {
                    dyn_j: records[i].energy_dyn_j,
                    amortized_j: records[i].energy_amortized_j.unwrap_or(0.0),
                })
                .collect();
            let ci = f
                .suite
                .carbon
                .intensity_over(f.start_unix + p.t0_s, f.start_unix + p.end_s);
            let (c, per) = crate::carbon::cell_carbon(&f.suite.carbon, ci, &emb, &energies, p.replay_s + compressed_s);
            for (&i, g) in served.iter().zip(per) {
                records[i].co2e_g = Some(g);
            }
            summary.carbon = Some(c);
        }
        summary.energy = energy;
        summary.replay_start_s = p.t0_s;
        summary.host_steal_s = p.steal_s;
        progress.cell_finished(&summary);
        f.hists.push((
            done.label.clone(),
            schedule.workload.clone(),
            p.t0_s,
            p.replay_s,
            p.hists,
        ));
        f.summaries.push(summary);
        f.all_records.extend(records);
    }
}

/// The replay window of a cell on the timeline.
#[derive(Debug, Clone, Copy)]
struct CellWindow {
    t0_s: f64,
    end_s: f64,
    compressed_s: f64,
}

/// Attributes each domain's energy over the replay window to the cell's records (in place)
/// and returns the cell's energy summary.
#[allow(clippy::too_many_arguments)]
fn attribute_cell(
    t: &Timeline,
    records: &mut [RequestRecord],
    w: CellWindow,
    idle_w: &[Option<f64>],
    prefill_weight: f64,
    setup_j: Option<f64>,
    confidence: f64,
) -> Option<EnergySummary> {
    if t.meters.is_empty() {
        return None;
    }
    let (t0_s, end_s) = (w.t0_s, w.end_s);
    let works: Vec<Option<Work>> = records
        .iter()
        .map(|r| {
            let (s, e) = r.started_s.zip(r.finished_s)?;
            Some(Work {
                start: t0_s + s,
                first_token: r.first_token_s.map(|x| t0_s + x),
                end: t0_s + e,
                prefill: f64::from(r.input_tokens.unwrap_or(0)) * prefill_weight,
                decode: f64::from(r.output_tokens.saturating_sub(1)),
            })
        })
        .collect();
    let n = records.len();
    let mut sum = Attribution {
        active_j: vec![None; n],
        dyn_j: vec![None; n],
        prefill_j: vec![None; n],
        decode_j: vec![None; n],
        time_share_j: vec![None; n],
        ..Attribution::default()
    };
    let mut amortized = vec![None::<f64>; n];
    let (mut invalid_reasons, mut fallbacks) = (Vec::new(), Vec::new());
    let (mut used, mut idle_sum, mut compressed_j) = (Vec::new(), Some(0.0), Some(0.0));
    let (mut band_lo, mut band_hi, mut band_any) = (0.0, 0.0, false);
    let mut dyn_missing = false;
    for (domain, pick) in t.serving(t0_s, end_s) {
        let Some(m) = pick else {
            invalid_reasons.push(format!(
                "{domain}: no meter covers the replay window (a counter reset or a meter failure inside it)"
            ));
            continue;
        };
        let info = &t.meters[m];
        if !info.primary {
            let why = t
                .failures
                .iter()
                .find(|x| t.meters[x.meter].domain == domain && t.meters[x.meter].primary)
                .map(|x| {
                    format!(
                        "primary {} failed at {:.1} s: {}",
                        t.meters[x.meter].name, x.t_s, x.reason
                    )
                })
                .unwrap_or_else(|| "the primary meter does not cover the window".into());
            fallbacks.push(format!("{domain}: {} ({why})", info.name));
        }
        let pts = t.of(m);
        let samples: Vec<(f64, f64)> = pts.iter().map(|s| (s.t_s, s.energy_j)).collect();
        let Some(a) = attribute(&samples, &works, t0_s, end_s, idle_w[m]) else {
            invalid_reasons.push(format!("{domain}: samples do not cover the replay window"));
            continue;
        };
        if !a.conserves() {
            invalid_reasons.push(format!(
                "{domain}: energy not conserved (Σ active + gap differs from the window by {:.3e} J)",
                a.conservation_error_j
            ));
        }
        // Band: the estimated source's low/high cumulative energy over the same window.
        let band_at = |x: f64| -> Option<(f64, f64)> {
            let i = pts.partition_point(|s| s.t_s <= x);
            let (p, q) = (pts.get(i.checked_sub(1)?)?, pts.get(i).unwrap_or(&pts[i - 1]));
            let (bp, bq) = (p.band_j?, q.band_j?);
            let f = if q.t_s > p.t_s {
                (x - p.t_s) / (q.t_s - p.t_s)
            } else {
                0.0
            };
            Some((bp.0 + (bq.0 - bp.0) * f, bp.1 + (bq.1 - bp.1) * f))
        };
        match band_at(t0_s).zip(band_at(end_s)) {
            Some((b0, b1)) => {
                band_lo += b1.0 - b0.0;
                band_hi += b1.1 - b0.1;
                band_any = true;
            }
            None => {
                band_lo += a.window_j;
                band_hi += a.window_j;
            }
        }
        let extra = idle_w[m].map(|p| p * w.compressed_s);
        compressed_j = compressed_j.zip(extra).map(|(x, y)| x + y);
        idle_sum = idle_sum.zip(idle_w[m]).map(|(x, y)| x + y);
        dyn_missing |= idle_w[m].is_none();
        for (i, y) in a.amortized_j(extra.unwrap_or(0.0)).into_iter().enumerate() {
            if let Some(y) = y {
                *amortized[i].get_or_insert(0.0) += y;
            }
        }
        let merge = |dst: &mut Vec<Option<f64>>, src: &[Option<f64>]| {
            for (d, s) in dst.iter_mut().zip(src) {
                if let Some(s) = s {
                    *d.get_or_insert(0.0) += s;
                }
            }
        };
        merge(&mut sum.active_j, &a.active_j);
        merge(&mut sum.dyn_j, &a.dyn_j);
        merge(&mut sum.prefill_j, &a.prefill_j);
        merge(&mut sum.decode_j, &a.decode_j);
        merge(&mut sum.time_share_j, &a.time_share_j);
        sum.window_j += a.window_j;
        sum.gap_j += a.gap_j;
        sum.busy_j += a.busy_j;
        sum.negative_dyn_j += a.negative_dyn_j;
        sum.conservation_error_j += a.conservation_error_j;
        used.push(m);
    }
    if used.is_empty() {
        // No domain could be measured over the window: say so rather than report nothing.
        return Some(EnergySummary {
            source: "none".into(),
            domain: "none".into(),
            kind: EnergyKind::Estimated,
            estimated: true,
            valid: false,
            invalid_reasons,
            fallbacks,
            window_j: 0.0,
            mean_power_w: 0.0,
            busy_j: 0.0,
            gap_j: 0.0,
            idle_w: None,
            dyn_j: None,
            negative_dyn_j: None,
            compressed_idle_j: None,
            compressed_s: w.compressed_s,
            dyn_j_per_request: None,
            active_j_per_request: None,
            amortized_j_per_request: None,
            sensitivity: Sensitivity::default(),
            phases_j: BTreeMap::new(),
            band: None,
            conservation_error_j: 0.0,
            setup_j,
        });
    }
    let kind = used
        .iter()
        .map(|&m| t.meters[m].kind)
        .max()
        .unwrap_or(EnergyKind::Estimated);
    let source = used
        .iter()
        .map(|&m| t.meters[m].name.as_str())
        .collect::<Vec<_>>()
        .join("+");
    let domain = used
        .iter()
        .map(|&m| t.meters[m].domain.as_str())
        .collect::<Vec<_>>()
        .join("+");
    let estimated = kind != EnergyKind::Measured;
    for (i, r) in records.iter_mut().enumerate() {
        r.energy_active_j = sum.active_j[i];
        r.energy_dyn_j = if dyn_missing { None } else { sum.dyn_j[i] };
        r.energy_amortized_j = amortized[i];
        r.energy_prefill_j = sum.prefill_j[i];
        r.energy_decode_j = sum.decode_j[i];
        r.energy_source = Some(source.clone());
        r.energy_estimated = estimated;
    }
    let measured: Vec<usize> = (0..records.len()).filter(|&i| records[i].measured()).collect();
    let stat = |f: &dyn Fn(usize) -> Option<f64>| Stat::from_samples(measured.iter().filter_map(|&i| f(i)), confidence);
    let mean = |f: &dyn Fn(usize) -> Option<f64>| {
        let v: Vec<f64> = measured.iter().filter_map(|&i| f(i)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let n_served = works.iter().filter(|x| x.is_some()).count();
    let span = (end_s - t0_s).max(f64::MIN_POSITIVE);
    let mut phases_j = BTreeMap::new();
    phases_j.insert("prefill".to_string(), sum.prefill_j.iter().flatten().sum());
    phases_j.insert("decode".to_string(), sum.decode_j.iter().flatten().sum());
    Some(EnergySummary {
        source,
        domain,
        kind,
        estimated,
        valid: invalid_reasons.is_empty(),
        invalid_reasons,
        fallbacks,
        window_j: sum.window_j,
        mean_power_w: sum.window_j / span,
        busy_j: sum.busy_j,
        gap_j: sum.gap_j,
        idle_w: if dyn_missing { None } else { idle_sum },
        dyn_j: (!dyn_missing).then(|| sum.dyn_j.iter().flatten().sum()),
        negative_dyn_j: (!dyn_missing).then_some(sum.negative_dyn_j),
        compressed_idle_j: if dyn_missing { None } else { compressed_j },
        compressed_s: w.compressed_s,
        dyn_j_per_request: if dyn_missing {
            None
        } else {
            stat(&|i| records[i].energy_dyn_j)
        },
        active_j_per_request: stat(&|i| records[i].energy_active_j),
        amortized_j_per_request: stat(&|i| records[i].energy_amortized_j),
        sensitivity: Sensitivity {
            token_work_j: mean(&|i| sum.active_j[i]),
            time_share_j: mean(&|i| sum.time_share_j[i]),
            equal_share_j: (n_served > 0).then(|| sum.busy_j / n_served as f64),
        },
        phases_j,
        band: (band_any && sum.window_j > 0.0).then(|| (band_lo / sum.window_j, band_hi / sum.window_j)),
        conservation_error_j: sum.conservation_error_j,
        setup_j,
    })
}

/// run.json `energy.validity`: what makes the run's energy trustworthy, or not.
fn validity(t: &Timeline, cells: &[CellSummary], drifts: &[(String, String, f64)]) -> Value {
    let counter_monotonic = !t
        .samples
        .iter()
        .any(|s| s.invalid && t.meters[s.meter].kind == EnergyKind::Measured);
    // Cross-checks: every secondary meter against its domain's primary over their common span.
    let mut cross = Vec::new();
    let mut counter_vs_power = None;
    for (m, info) in t.meters.iter().enumerate() {
        if info.primary {
            continue;
        }
        let Some(p) = t.meters.iter().position(|x| x.primary && x.domain == info.domain) else {
            continue;
        };
        let (a, b) = (t.of(p), t.of(m));
        let (Some(lo), Some(hi)) = (
            a.first().zip(b.first()).map(|(x, y)| x.t_s.max(y.t_s)),
            a.last().zip(b.last()).map(|(x, y)| x.t_s.min(y.t_s)),
        ) else {
            continue;
        };
        let ratio = t
            .energy_between(p, lo, hi)
            .zip(t.energy_between(m, lo, hi))
            .and_then(|(x, y)| (y > 0.0).then(|| x / y));
        let counter_power = t.meters[p].kind == EnergyKind::Measured && info.kind == EnergyKind::Integrated;
        let flagged = counter_power && ratio.is_some_and(|r| (r - 1.0).abs() > 0.10);
        if counter_power && counter_vs_power.is_none() {
            counter_vs_power = ratio;
        }
        cross.push(json!({
            "domain": info.domain, "primary": t.meters[p].name, "other": info.name,
            "ratio": ratio, "span_s": hi - lo, "flagged": flagged,
        }));
    }
    let drift = drifts.iter().map(|d| d.2).fold(None::<f64>, |acc, d| {
        Some(acc.map_or(d, |a: f64| if d.abs() > a.abs() { d } else { a }))
    });
    let invalid_cells: Vec<Value> = cells
        .iter()
        .filter_map(|c| {
            let e = c.energy.as_ref()?;
            (!e.valid).then(|| json!({ "method": c.method, "workload": c.workload, "reasons": e.invalid_reasons }))
        })
        .collect();
    let flagged_cross = cross.iter().any(|c| c["flagged"] == true);
    let drift_flagged = drift.is_some_and(|d| d.abs() > IDLE_DRIFT_FLAG_PCT);
    json!({
        "valid": invalid_cells.is_empty(),
        "invalid_cells": invalid_cells,
        "flagged": flagged_cross || drift_flagged || !t.failures.is_empty() || !counter_monotonic,
        "estimated": estimated(t),
        "sampler_max_gap_ms": t.max_gap_ms,
        "sampler_cpu_s": t.sampler_cpu_s,
        "read_errors": t.errors.len(),
        "meter_failures": t.failures.iter().map(|f| json!({
            "source": t.meters[f.meter].name, "domain": t.meters[f.meter].domain, "t_s": f.t_s, "reason": f.reason,
        })).collect::<Vec<_>>(),
        "counter_monotonic": counter_monotonic,
        "counter_vs_power_ratio": counter_vs_power,
        "cross_checks": cross,
        "idle_drift_pct": drift,
        "idle_drift_flagged": drift_flagged,
        "idle_drift_by_method": drifts.iter().map(|d| json!({ "method": d.0, "domain": d.1, "drift_pct": d.2 })).collect::<Vec<_>>(),
        "source_resolution_ms": t.meters.iter().map(|m| json!({ "source": m.name, "domain": m.domain, "resolution_ms": m.resolution_ms })).collect::<Vec<_>>(),
    })
}

/// The pieces of run.json that stay fixed during a run.
struct RunJson<'a> {
    suite: &'a Suite,
    schedules: &'a [Schedule],
    invocation: &'a Invocation,
    host: Value,
    started_utc: String,
    sources: Value,
    unavailable: Vec<Value>,
    methods: Vec<Value>,
    dispatcher_priority: Option<String>,
    validity: Value,
}

impl RunJson<'_> {
    fn render(
        &self,
        status: &str,
        abort_reason: Option<&str>,
        finished: Option<&str>,
        t: &Timeline,
        records: usize,
    ) -> Value {
        let run = &self.suite.run;
        let limit = match run.limit {
            Limit::Count(n) => json!({ "requests": n }),
            Limit::Duration(d) => json!({ "duration_s": d.as_secs_f64() }),
        };
        let workloads: Vec<Value> = self
            .schedules
            .iter()
            .zip(&self.suite.workloads)
            .map(|(s, w)| {
                json!({
                    "name": s.workload,
                    "process": s.process,
                    "schedule_hash": s.hash,
                    "requests": s.len(),
                    "source_failed": s.arrivals.iter().filter(|a| a.request.source_failed).count(),
                    "offered_rate_qps": s.replay_rate_qps(),
                    "mean_rate_qps_before_compression": w.mean_rate_qps(),
                    "config": w.describe(),
                    "compression": s.compression,
                })
            })
            .collect();
        json!({
            "oae_version": self.invocation.oae_version,
            "git_sha": self.invocation.git_sha,
            "command": self.invocation.command,
            "status": status,
            "abort_reason": abort_reason,
            "started_utc": self.started_utc,
            "finished_utc": finished,
            "suite": {
                "name": self.suite.name,
                "file": self.suite.source.label,
                "sha256": self.suite.sha256,
                "description": self.suite.description,
            },
            "seed": run.seed,
            "slo": self.suite.slo,
            "overrides": self.invocation.overrides,
            "runtime": self.invocation.runtime,
            "scoring": self.invocation.scoring,
            "dispatcher_priority": self.dispatcher_priority,
            "run": {
                "limit": limit,
                "warmup_s": run.warmup.as_secs_f64(),
                "cooldown_s": run.cooldown.as_secs_f64(),
                "idle_gap_cap_s": run.idle_gap_cap.map(|d| d.as_secs_f64()),
                "device": run.device.to_string(),
                "sample_interval_ms": run.sample_interval.as_secs_f64() * 1e3,
                "confidence": run.confidence,
                "timeout_s": run.controls.timeout.map(|d| d.as_secs_f64()),
                "queue_bound": run.controls.queue_bound,
                "min_requests": run.min_requests,
                "min_duration_s": run.min_duration_s,
            },
            "host": self.host,
            "workloads": workloads,
            "methods": self.methods,
            "energy": {
                "meters": t.meters,
                "unavailable": self.unavailable,
                "sources_checked": self.sources,
                "validity": if self.validity.is_null() {
                    json!({ "estimated": estimated(t), "sampler_max_gap_ms": t.max_gap_ms, "read_errors": t.errors.len() })
                } else {
                    self.validity.clone()
                },
            },
            "records": records,
        })
    }
}
