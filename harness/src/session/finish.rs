//! Finishing a method: once its after-replay idle baseline is measured, each of its replays
//! gets its energy attributed, its summary and carbon, and run.json its method entry.

use std::collections::BTreeMap;

use serde_json::Value;

use oae_core::rundir::energy::IdleDrift;
use oae_core::rundir::{CellSummary, MethodInfo, TrialFigures};
use oae_workloads::Schedule;

use oae_quality::ModelScorer;

use super::Progress;
use crate::RequestRecord;
use crate::carbon::CarbonModel;
use crate::energy::cell::{CellWindow, Settings, attribute_cell};
use crate::energy::idle::{baseline_record, idle_model};
use crate::energy::validity::estimated;
use crate::meters::Timeline;
use crate::runner::Histograms;
use crate::suite::{DEFAULT_IDLE_BASELINE_S, Suite};
use crate::summary::{CellInfo, summarize};

/// A replay whose records wait for the method's after-baseline before attribution.
pub(super) struct Pending {
    /// Index of its schedule.
    pub workload: usize,
    /// Trial number.
    pub trial: u32,
    /// Replay start on the timeline, s.
    pub t0_s: f64,
    /// Replay end on the timeline, s.
    pub end_s: f64,
    /// Replay duration (time zero to last completion), s.
    pub replay_s: f64,
    /// CPU time stolen by the hypervisor during the replay, s.
    pub steal_s: Option<f64>,
    /// CPU time other processes used meanwhile, s (`None` without /proc).
    pub other_cpu_s: Option<f64>,
    /// Its records, by request id.
    pub records: Vec<RequestRecord>,
    /// Its latency histograms.
    pub hists: Histograms,
}

/// What run.json records about a method, filled in as it runs.
pub(super) struct MethodDone {
    pub label: String,
    pub id: String,
    pub instances: u32,
    pub setup_s: f64,
    /// Setup's start and end on the timeline, s.
    pub setup_window: (f64, f64),
    /// Setup energy, J (filled by `finish_method` from the final timeline).
    pub setup_j: Option<f64>,
    /// The part of setup that made the model ready to serve (load, conversion, warm-up), s.
    pub cold_start_s: Option<f64>,
    pub facts: BTreeMap<String, Value>,
    pub weight_bytes: Option<u64>,
    pub before: Option<(f64, f64)>,
    pub after: Option<(f64, f64)>,
}

impl MethodDone {
    /// run.json's entry for the method while it runs: what its setup established, no energy
    /// or idle baseline yet (they are measured when it finishes).
    pub fn provisional(&self) -> MethodInfo {
        MethodInfo {
            label: self.label.clone(),
            id: self.id.clone(),
            instances: self.instances,
            setup_s: self.setup_s,
            setup_energy_j: None,
            setup_energy_estimated: false,
            setup_energy_by_domain: BTreeMap::new(),
            cold_start_s: self.cold_start_s,
            weight_bytes: self.weight_bytes,
            facts: self.facts.clone(),
            idle_baseline: oae_core::rundir::energy::IdleBaseline {
                before: None,
                after: None,
                meters: Vec::new(),
                note: Some(
                    "the method had not finished: its idle baseline and setup energy are measured when it does".into(),
                ),
            },
        }
    }
}

/// A finished cell's latency histograms, for histograms.hlog.
pub struct CellHistograms {
    /// Method label.
    pub method: String,
    /// Workload.
    pub workload: String,
    /// Replay start on the timeline, s.
    pub start_s: f64,
    /// Replay duration, s.
    pub duration_s: f64,
    /// The histograms.
    pub hists: Histograms,
}

/// Accumulates finished cells.
pub(super) struct Finisher<'a> {
    pub suite: &'a Suite,
    pub schedules: &'a [Schedule],
    pub carbon: &'a CarbonModel,
    /// Unix time of the run epoch (for hourly grid series).
    pub start_unix: f64,
    pub summaries: Vec<CellSummary>,
    pub hists: Vec<CellHistograms>,
    pub all_records: Vec<RequestRecord>,
    /// Each idle baseline pair's drift, per primary domain.
    pub drifts: Vec<IdleDrift>,
    /// Model-backed scorers, run over each cell's answers once its replays are done.
    pub model_scorers: &'a mut [Box<dyn ModelScorer>],
}

impl Finisher<'_> {
    /// Attributes the cells of one method on `timeline` (after both idle baselines), reports
    /// each cell, and returns run.json's entry for the method.
    pub fn finish_method(
        &mut self,
        timeline: &Timeline,
        progress: &mut dyn Progress,
        mut done: MethodDone,
        pending: Vec<Pending>,
    ) -> MethodInfo {
        done.setup_j = timeline.primary_energy_between(done.setup_window.0, done.setup_window.1);
        let idle = idle_model(timeline, done.before, done.after);
        for (fit, info) in idle.iter().zip(&timeline.meters) {
            if let Some(d) = fit.and_then(|f| f.drift_pct())
                && info.primary
            {
                self.drifts.push(IdleDrift {
                    method: done.label.clone(),
                    domain: info.domain.clone(),
                    drift_pct: d,
                });
            }
        }
        let idle_w: Vec<Option<f64>> = idle.iter().map(|fit| fit.map(|x| x.both.median_w)).collect();
        // Each workload's replays (one per trial) make one cell.
        let mut cells: Vec<Vec<Pending>> = (0..self.schedules.len()).map(|_| Vec::new()).collect();
        for p in pending {
            cells[p.workload].push(p);
        }
        for trials in cells.into_iter().filter(|c| !c.is_empty()) {
            self.finish_cell(timeline, progress, &done, &idle_w, trials);
        }
        MethodInfo {
            label: done.label,
            id: done.id,
            instances: done.instances,
            setup_s: done.setup_s,
            setup_energy_j: done.setup_j,
            setup_energy_estimated: estimated(timeline),
            setup_energy_by_domain: timeline.primary_energy_by_domain(done.setup_window.0, done.setup_window.1),
            cold_start_s: done.cold_start_s,
            weight_bytes: done.weight_bytes,
            facts: done.facts,
            idle_baseline: baseline_record(
                &timeline.meters,
                &idle,
                done.before,
                done.after,
                DEFAULT_IDLE_BASELINE_S,
            ),
        }
    }

    /// Attributes, summarises and prices one cell: every trial's replay window on its own,
    /// then the trials pooled.
    fn finish_cell(
        &mut self,
        timeline: &Timeline,
        progress: &mut dyn Progress,
        done: &MethodDone,
        idle_w: &[Option<f64>],
        trials: Vec<Pending>,
    ) {
        let schedule = &self.schedules[trials[0].workload];
        let run = &self.suite.run;
        let info = |replay_s: f64| CellInfo {
            method: &done.label,
            method_id: &done.id,
            workload: &schedule.workload,
            replay_s,
            offered_rate_qps: schedule.replay_rate_qps(),
            setup_s: done.setup_s,
            confidence: run.confidence,
            warmup_s: run.warmup.as_secs_f64(),
            cooldown_s: run.cooldown.as_secs_f64(),
            slo: &self.suite.slo,
            min_requests: run.min_requests,
            min_duration_s: run.min_duration_s,
        };
        let compressed_s = schedule.compression.skipped_s;
        let settings = Settings {
            prefill_weight: self.suite.energy.prefill_weight,
            setup_j: done.setup_j,
            confidence: run.confidence,
        };
        let first_t0 = trials[0].t0_s;
        let (mut records, mut energies, mut carbon, mut figures) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut replay_s, mut steal_s, mut other_cpu_s) = (0.0, Some(0.0), Some(0.0));
        for p in trials {
            let mut recs = p.records;
            self.score_with_models(progress, schedule, &mut recs);
            let window = CellWindow {
                t0_s: p.t0_s,
                end_s: p.end_s,
                compressed_s,
            };
            let energy = attribute_cell(timeline, &mut recs, window, idle_w, settings);
            // Carbon only from energy that can be trusted; an invalid window gets none.
            if energy.as_ref().is_some_and(|e| e.valid) {
                let wall = (self.start_unix + p.t0_s, self.start_unix + p.end_s);
                carbon.push(crate::carbon::attach_to_cell(
                    self.carbon,
                    &mut recs,
                    wall,
                    p.replay_s + compressed_s,
                ));
            }
            figures.push(trial_figures(
                p.trial,
                p.t0_s,
                &summarize(&info(p.replay_s), &recs),
                &recs,
            ));
            self.hists.push(CellHistograms {
                method: done.label.clone(),
                workload: schedule.workload.clone(),
                start_s: p.t0_s,
                duration_s: p.replay_s,
                hists: p.hists,
            });
            replay_s += p.replay_s;
            steal_s = steal_s.zip(p.steal_s).map(|(a, b)| a + b);
            other_cpu_s = other_cpu_s.zip(p.other_cpu_s).map(|(a, b)| a + b);
            energies.push(energy);
            records.extend(recs);
        }
        let mut summary = summarize(&info(replay_s), &records);
        summary.energy = crate::energy::cell::pool(energies, &records, run.confidence);
        if let Some(e) = summary.energy.as_mut() {
            let setup = timeline.primary_energy_by_domain(done.setup_window.0, done.setup_window.1);
            for d in &mut e.domains {
                d.setup_j = setup.get(&d.domain).copied().flatten();
            }
        }
        summary.reasoning = crate::summary::reasoning(&records, &self.suite.slo, run.confidence);
        summary.carbon = (!carbon.is_empty() && carbon.len() == figures.len())
            .then(|| crate::carbon::pool(carbon))
            .flatten();
        summary.replay_start_s = first_t0;
        summary.host_steal_s = steal_s;
        summary.host_other_cpu_s = other_cpu_s;
        summary.trials = figures;
        progress.cell_finished(&summary);
        self.summaries.push(summary);
        self.all_records.extend(records);
    }
}

impl Finisher<'_> {
    /// Adds each model scorer's score to the records of answered task requests that name it
    /// (after the replays: never on a request's timed path or in its energy window). A
    /// failing scorer leaves those scores out and says why.
    fn score_with_models(&mut self, progress: &mut dyn Progress, schedule: &Schedule, recs: &mut [RequestRecord]) {
        for scorer in self.model_scorers.iter_mut() {
            let name = scorer.name();
            let named: Vec<usize> = recs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.output_text.is_some())
                .filter(|(_, r)| task_of(schedule, r).is_some_and(|t| t.scorers.iter().any(|s| s == name)))
                .map(|(i, _)| i)
                .collect();
            // A kept text cut short is not the answer: scoring it would call it wrong.
            let (picked, cut): (Vec<usize>, Vec<usize>) = named.into_iter().partition(|&i| !recs[i].output_truncated);
            if !cut.is_empty() {
                progress.message(&format!(
                    "warning: {} answer(s) were kept cut short (`[run] keep_output_chars`) and are not scored with {name}; raise keep_output_chars to score them",
                    cut.len()
                ));
            }
            if picked.is_empty() {
                continue;
            }
            let started = std::time::Instant::now();
            let result = {
                let answers: Vec<(&str, &oae_quality::TaskItem)> = picked
                    .iter()
                    .filter_map(|&i| {
                        let t = task_of(schedule, &recs[i])?;
                        let text = recs[i].output_text.as_deref()?;
                        Some((oae_quality::reasoning::scored_part(t.reasoning, text), &*t.item))
                    })
                    .collect();
                scorer.score_batch(&answers)
            };
            match result {
                Ok(scores) if scores.len() == picked.len() => {
                    for (&i, v) in picked.iter().zip(scores) {
                        recs[i].quality.insert(name.to_string(), v);
                    }
                    progress.message(&format!(
                        "scored {} answers with {name} in {:.1} s (after the replay, outside the measurements)",
                        picked.len(),
                        started.elapsed().as_secs_f64()
                    ));
                }
                Ok(scores) => progress.message(&format!(
                    "warning: scorer {name} returned {} scores for {} answers; its scores are left out",
                    scores.len(),
                    picked.len()
                )),
                Err(e) => progress.message(&format!("warning: scorer {name} failed ({e}); its scores are left out")),
            }
        }
    }
}

/// The task a record's request asked, from its schedule.
fn task_of<'s>(schedule: &'s Schedule, r: &RequestRecord) -> Option<&'s oae_workloads::TaskRef> {
    schedule
        .arrivals
        .get(usize::try_from(r.request_id).ok()?)
        .and_then(|a| a.request.task.as_ref())
}

/// The gate's figures of one trial, from its own summary and records.
pub(crate) fn trial_figures(trial: u32, start_s: f64, s: &CellSummary, records: &[RequestRecord]) -> TrialFigures {
    let stat = |k: &str| s.latency.get(k);
    let amortized: Vec<f64> = records
        .iter()
        .filter(|r| r.measured())
        .filter_map(|r| r.energy_amortized_j)
        .collect();
    TrialFigures {
        trial,
        replay_start_s: start_s,
        replay_s: s.replay_s,
        measured: s.measured,
        ok: s.ok,
        good: s.goodput.good,
        ttft_p50_ms: stat("ttft_ms").map(|x| x.p50.value),
        e2e_p50_ms: stat("e2e_ms").map(|x| x.p50.value),
        e2e_p95_ms: stat("e2e_ms").map(|x| x.p95.value),
        tpot_mean_ms: stat("tpot_ms").map(|x| x.mean.value),
        service_mean_ms: stat("service_ms").map(|x| x.mean.value),
        energy_amortized_j_mean: (!amortized.is_empty())
            .then(|| amortized.iter().sum::<f64>() / amortized.len() as f64),
    }
}
