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
use crate::energy::attribute;
use crate::meters::{self, Sampler, Timeline};
use crate::rundir::RunDir;
use crate::runner::{CellPlan, Histograms, run_cell};
use crate::suite::{MethodEntry, Suite};
use crate::summary::{CellInfo, CellSummary, EnergySummary, summarize};
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
    } = plan;
    let mut dir = RunDir::create(out)?;
    let started_utc = utc_now_rfc3339();
    let epoch = Instant::now();

    let opened = meters::open_all();
    let sources = [host::nvml_status(), host::rapl_status()];
    let sampler = Sampler::start(opened.meters, suite.run.sample_interval, epoch);
    for (name, reason) in &opened.unavailable {
        progress.message(&format!("energy source {name} unavailable: {reason}"));
    }

    let mut ctx = RunJson {
        suite: &suite,
        schedules: &schedules,
        invocation,
        host: serde_json::to_value(host::facts()).unwrap_or(Value::Null),
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

    let mut all_records: Vec<RequestRecord> = Vec::new();
    let mut summaries = Vec::new();
    let mut hists: Vec<(String, String, f64, f64, Histograms)> = Vec::new();
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
        ctx.methods.push(json!({
            "label": entry.label,
            "id": entry.id,
            "instances": entry.instances,
            "setup_s": setup_s,
            "setup_energy_j": setup_j,
            "setup_energy_estimated": estimated(&snapshot),
            "facts": instances.first().map(|m| m.facts()).unwrap_or_default(),
        }));

        for schedule in &schedules {
            if stop.load(Ordering::Relaxed) {
                abort.get_or_insert_with(|| "interrupted".into());
                break 'methods;
            }
            progress.cell_started(&entry.label, &schedule.workload, schedule.len());
            let cell = CellPlan {
                method: &entry.label,
                schedule,
                warmup: suite.run.warmup,
                cooldown: suite.run.cooldown,
                trial: 0,
                controls: suite.run.controls,
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
                    break 'methods;
                }
            };
            let end_s = sampler.read_now();
            let t0_s = secs_since(epoch, run.t0);
            let mut records = run.records;
            records.sort_by_key(|r| r.request_id);
            crate::summary::fill_idle_before(&mut records);
            let timeline = sampler.snapshot();
            let energy = attribute_cell(&timeline, &mut records, t0_s, end_s, setup_j);
            let replay_s = secs_since(run.t0, run.end).max(0.0);
            let info = CellInfo {
                method: &entry.label,
                method_id: &entry.id,
                workload: &schedule.workload,
                replay_s,
                offered_rate_qps: schedule.replay_rate_qps(),
                setup_s,
                confidence: suite.run.confidence,
                warmup_s: suite.run.warmup.as_secs_f64(),
                cooldown_s: suite.run.cooldown.as_secs_f64(),
                slo: suite.slo,
                min_requests: suite.run.min_requests,
                min_duration_s: suite.run.min_duration_s,
            };
            let mut summary = summarize(&info, &records);
            summary.energy = energy.map(|mut e| {
                let measured: Vec<&RequestRecord> = records.iter().filter(|r| r.measured()).collect();
                e.active_j_per_request = crate::stats::Stat::from_samples(
                    measured.iter().filter_map(|r| r.energy_active_j),
                    suite.run.confidence,
                );
                e.amortized_j_per_request = crate::stats::Stat::from_samples(
                    measured.iter().filter_map(|r| r.energy_amortized_j),
                    suite.run.confidence,
                );
                e
            });
            summary.replay_start_s = t0_s;
            summary.host_steal_s = steal_before.zip(host::cpu_steal_s()).map(|(a, b)| b - a);
            progress.cell_finished(&summary);
            summaries.push(summary);
            hists.push((entry.label.clone(), schedule.workload.clone(), t0_s, replay_s, h));
            ctx.dispatcher_priority = Some(run.dispatcher_priority.clone());
            all_records.extend(records);
            instances = run.instances;
            if let Some(e) = run.error {
                abort = Some(e);
                break 'methods;
            }
            if run.aborted {
                abort.get_or_insert_with(|| "interrupted".into());
                break 'methods;
            }
        }
    }
    if stop.load(Ordering::Relaxed) {
        abort.get_or_insert_with(|| "interrupted".into());
    }

    let timeline = sampler.stop();
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

/// Attributes each meter's energy over the replay window to the cell's records (in place)
/// and returns the cell's energy summary (per-request statistics are added by the caller).
fn attribute_cell(
    t: &Timeline,
    records: &mut [RequestRecord],
    t0_s: f64,
    end_s: f64,
    setup_j: Option<f64>,
) -> Option<EnergySummary> {
    if t.meters.is_empty() {
        return None;
    }
    let intervals: Vec<Option<(f64, f64)>> = records
        .iter()
        .map(|r| r.started_s.zip(r.finished_s).map(|(s, e)| (t0_s + s, t0_s + e)))
        .collect();
    let (mut window_j, mut gap_j, mut err_j) = (0.0, 0.0, 0.0);
    let mut active = vec![None::<f64>; records.len()];
    let mut amortized = vec![None::<f64>; records.len()];
    let primary = primary(t);
    for &m in &primary {
        let samples: Vec<(f64, f64)> = t
            .samples
            .iter()
            .filter(|s| s.meter == m)
            .map(|s| (s.t_s, s.energy_j))
            .collect();
        let a = attribute(&samples, &intervals, t0_s, end_s)?;
        window_j += a.window_j;
        gap_j += a.gap_j;
        err_j += a.conservation_error_j;
        for (i, (x, y)) in a.active_j.iter().zip(a.amortized_j()).enumerate() {
            if let Some(x) = x {
                *active[i].get_or_insert(0.0) += x;
            }
            if let Some(y) = y {
                *amortized[i].get_or_insert(0.0) += y;
            }
        }
    }
    let used = primary.iter().map(|&m| &t.meters[m]);
    let kind = used.clone().map(|m| m.kind).max().unwrap_or(EnergyKind::Estimated);
    let source = used.clone().map(|m| m.name.as_str()).collect::<Vec<_>>().join("+");
    let domain = used.map(|m| m.domain.as_str()).collect::<Vec<_>>().join("+");
    for (i, r) in records.iter_mut().enumerate() {
        r.energy_active_j = active[i];
        r.energy_amortized_j = amortized[i];
        r.energy_source = Some(source.clone());
        r.energy_estimated = kind != EnergyKind::Measured;
    }
    let span = (end_s - t0_s).max(f64::MIN_POSITIVE);
    Some(EnergySummary {
        source,
        domain,
        kind,
        estimated: kind != EnergyKind::Measured,
        window_j,
        mean_power_w: window_j / span,
        gap_j,
        active_j_per_request: None,
        amortized_j_per_request: None,
        conservation_error_j: err_j,
        setup_j,
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
                "validity": {
                    "estimated": estimated(t),
                    "sampler_max_gap_ms": t.max_gap_ms,
                    "read_errors": t.errors.len(),
                    "idle_baseline": "not measured (energy_dyn_j is null)",
                    "compressed_idle_energy": "not added back (see workloads[].compression.skipped_s)",
                },
            },
            "records": records,
        })
    }
}
