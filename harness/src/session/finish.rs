//! Finishing a method: once its after-replay idle baseline is measured, each of its replays
//! gets its energy attributed, its summary and carbon, and run.json its method entry.

use std::collections::BTreeMap;

use serde_json::Value;

use oae_core::rundir::energy::IdleDrift;
use oae_core::rundir::{CellSummary, MethodInfo};
use oae_workloads::Schedule;

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
    /// Replay start on the timeline, s.
    pub t0_s: f64,
    /// Replay end on the timeline, s.
    pub end_s: f64,
    /// Replay duration (time zero to last completion), s.
    pub replay_s: f64,
    /// CPU time stolen by the hypervisor during the replay, s.
    pub steal_s: Option<f64>,
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
    pub setup_j: Option<f64>,
    pub facts: BTreeMap<String, Value>,
    pub weight_bytes: Option<u64>,
    pub before: Option<(f64, f64)>,
    pub after: Option<(f64, f64)>,
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
}

impl Finisher<'_> {
    /// Attributes the cells of one method on `timeline` (after both idle baselines), reports
    /// each cell, and returns run.json's entry for the method.
    pub fn finish_method(
        &mut self,
        timeline: &Timeline,
        progress: &mut dyn Progress,
        done: MethodDone,
        pending: Vec<Pending>,
    ) -> MethodInfo {
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
        for p in pending {
            self.finish_cell(timeline, progress, &done, &idle_w, p);
        }
        MethodInfo {
            label: done.label,
            id: done.id,
            instances: done.instances,
            setup_s: done.setup_s,
            setup_energy_j: done.setup_j,
            setup_energy_estimated: estimated(timeline),
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

    fn finish_cell(
        &mut self,
        timeline: &Timeline,
        progress: &mut dyn Progress,
        done: &MethodDone,
        idle_w: &[Option<f64>],
        p: Pending,
    ) {
        let schedule = &self.schedules[p.workload];
        let run = &self.suite.run;
        let mut records = p.records;
        let info = CellInfo {
            method: &done.label,
            method_id: &done.id,
            workload: &schedule.workload,
            replay_s: p.replay_s,
            offered_rate_qps: schedule.replay_rate_qps(),
            setup_s: done.setup_s,
            confidence: run.confidence,
            warmup_s: run.warmup.as_secs_f64(),
            cooldown_s: run.cooldown.as_secs_f64(),
            slo: self.suite.slo,
            min_requests: run.min_requests,
            min_duration_s: run.min_duration_s,
        };
        let compressed_s = schedule.compression.skipped_s;
        let window = CellWindow {
            t0_s: p.t0_s,
            end_s: p.end_s,
            compressed_s,
        };
        let settings = Settings {
            prefill_weight: self.suite.energy.prefill_weight,
            setup_j: done.setup_j,
            confidence: run.confidence,
        };
        let energy = attribute_cell(timeline, &mut records, window, idle_w, settings);
        let mut summary = summarize(&info, &records);
        // Carbon only from energy that can be trusted; an invalid window gets none.
        if energy.as_ref().is_some_and(|e| e.valid) {
            let wall = (self.start_unix + p.t0_s, self.start_unix + p.end_s);
            summary.carbon = Some(crate::carbon::attach_to_cell(
                self.carbon,
                &mut records,
                wall,
                p.replay_s + compressed_s,
            ));
        }
        summary.energy = energy;
        summary.replay_start_s = p.t0_s;
        summary.host_steal_s = p.steal_s;
        progress.cell_finished(&summary);
        self.hists.push(CellHistograms {
            method: done.label.clone(),
            workload: schedule.workload.clone(),
            start_s: p.t0_s,
            duration_s: p.replay_s,
            hists: p.hists,
        });
        self.summaries.push(summary);
        self.all_records.extend(records);
    }
}
