//! Per (method, workload) summaries: what summary.json and the terminal table show.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stats::Stat;
use crate::{EnergyKind, Outcome, RequestRecord};

/// Energy figures of one cell. Every field inherits `kind`; `estimated` repeats it plainly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergySummary {
    /// Meter the figures come from.
    pub source: String,
    /// Domain metered (`cpu`, `gpu:0`).
    pub domain: String,
    /// Measured, integrated or estimated.
    pub kind: EnergyKind,
    /// True unless a hardware counter measured it.
    pub estimated: bool,
    /// Energy over the whole replay window, J.
    pub window_j: f64,
    /// Mean power over the replay window, W.
    pub mean_power_w: f64,
    /// Energy of the window's pieces with no request in service, J.
    pub gap_j: f64,
    /// Per measured request: its time-share while in service, J.
    pub active_j_per_request: Option<Stat>,
    /// Per measured request: active plus equal share of gap energy, J.
    pub amortized_j_per_request: Option<Stat>,
    /// Σ active + gap − window: should be ~0.
    pub conservation_error_j: f64,
    /// Energy of the method's setup (`prepare`), J.
    pub setup_j: Option<f64>,
}

/// Everything reported about one (method, workload) cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellSummary {
    /// Method label.
    pub method: String,
    /// Registry id of the method.
    pub method_id: String,
    /// Workload name.
    pub workload: String,
    /// Records written (= arrivals released), warm-up included.
    pub requests: usize,
    /// Records outside warm-up: the sample every statistic is over.
    pub measured: usize,
    /// Records inside warm-up (recorded, not counted).
    pub warmup: usize,
    /// Outcome counts over measured records.
    pub outcomes: BTreeMap<Outcome, usize>,
    /// Measured records with outcome ok.
    pub ok: usize,
    /// Measured records with any other outcome.
    pub failed: usize,
    /// When this replay's time zero fell, seconds from the run start — the epoch of
    /// timeline.csv. Add it to a record's `*_s` times to place them on the timeline.
    pub replay_start_s: f64,
    /// Replay duration: time zero to the last completion, s.
    pub replay_s: f64,
    /// Offered rate of the schedule as replayed, req/s.
    pub offered_rate_qps: f64,
    /// Completed requests per second of replay.
    pub achieved_rate_qps: f64,
    /// Latency statistics of ok measured requests (dispatch lag and queue: all measured),
    /// keyed by metric: `ttft_ms`, `e2e_ms`, `tpot_ms`, `itl_ms_pooled`,
    /// `itl_ms_per_request_mean`, `service_ms`, `queue_ms`, `dispatch_lag_ms`,
    /// `dispatch_lag_busy_ms` (releases while a worker was serving).
    pub latency: BTreeMap<String, Stat>,
    /// Output tokens per second of service time over ok requests: Σ tokens / Σ service.
    pub output_tokens_per_s: Option<f64>,
    /// Output tokens of ok measured requests.
    pub output_tokens: u64,
    /// Input tokens of ok measured requests.
    pub input_tokens: u64,
    /// Time per phase per ok measured request.
    pub phases_ms: BTreeMap<String, Stat>,
    /// Counters summed over measured requests.
    pub counters: BTreeMap<String, f64>,
    /// Setup time of the method (prepare), s.
    pub setup_s: f64,
    /// Energy, when a meter was available.
    pub energy: Option<EnergySummary>,
    /// CPU time the hypervisor stole from this VM during the replay, s (summed over vCPUs).
    /// Non-zero steal can explain latency or dispatch-lag outliers the method did not cause.
    pub host_steal_s: Option<f64>,
}

/// What a cell summary needs besides its records.
#[derive(Debug, Clone)]
pub struct CellInfo<'a> {
    /// Method label.
    pub method: &'a str,
    /// Registry id of the method.
    pub method_id: &'a str,
    /// Workload name.
    pub workload: &'a str,
    /// Replay duration, s.
    pub replay_s: f64,
    /// Offered rate of the schedule as replayed, req/s.
    pub offered_rate_qps: f64,
    /// Setup time of the method, s.
    pub setup_s: f64,
    /// Two-sided confidence level.
    pub confidence: f64,
}

/// Summarises `records` of one cell (energy is filled in by the caller).
pub fn summarize(info: &CellInfo<'_>, records: &[RequestRecord]) -> CellSummary {
    let CellInfo {
        method,
        method_id,
        workload,
        replay_s,
        offered_rate_qps,
        setup_s,
        confidence,
    } = *info;
    let measured: Vec<&RequestRecord> = records.iter().filter(|r| !r.warmup).collect();
    let ok: Vec<&RequestRecord> = measured.iter().copied().filter(|r| r.outcome == Outcome::Ok).collect();
    let mut outcomes = BTreeMap::new();
    for r in &measured {
        *outcomes.entry(r.outcome).or_insert(0) += 1;
    }
    let stat = |v: Vec<f64>| Stat::from_samples(v, confidence);
    let mut latency = BTreeMap::new();
    let mut put = |name: &str, s: Option<Stat>| {
        if let Some(s) = s {
            latency.insert(name.to_string(), s);
        }
    };
    put("ttft_ms", stat(ok.iter().filter_map(|r| r.ttft_ms).collect()));
    put("e2e_ms", stat(ok.iter().filter_map(|r| r.e2e_ms).collect()));
    put("tpot_ms", stat(ok.iter().filter_map(|r| r.tpot_ms).collect()));
    put(
        "itl_ms_pooled",
        stat(ok.iter().flat_map(|r| r.itl_ms.iter().copied()).collect()),
    );
    put(
        "itl_ms_per_request_mean",
        stat(
            ok.iter()
                .filter(|r| !r.itl_ms.is_empty())
                .map(|r| r.itl_ms.iter().sum::<f64>() / r.itl_ms.len() as f64)
                .collect(),
        ),
    );
    put("service_ms", stat(ok.iter().filter_map(|r| r.service_ms).collect()));
    put("queue_ms", stat(measured.iter().filter_map(|r| r.queue_ms).collect()));
    put(
        "dispatch_lag_ms",
        stat(measured.iter().map(|r| r.dispatch_lag_ms).collect()),
    );
    put("dispatch_lag_busy_ms", stat(busy_lags(records, &measured)));

    let service_s: f64 = ok.iter().filter_map(|r| r.service_ms).sum::<f64>() / 1e3;
    let output_tokens: u64 = ok.iter().map(|r| u64::from(r.output_tokens)).sum();
    let mut phase_samples: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in &ok {
        for (k, v) in &r.phases_ms {
            phase_samples.entry(k).or_default().push(*v);
        }
    }
    let mut counters = BTreeMap::new();
    for r in &measured {
        for (k, v) in &r.counters {
            *counters.entry(k.clone()).or_insert(0.0) += v;
        }
    }
    let completed = measured.iter().filter(|r| r.finished_s.is_some()).count();
    CellSummary {
        method: method.to_string(),
        method_id: method_id.to_string(),
        workload: workload.to_string(),
        requests: records.len(),
        measured: measured.len(),
        warmup: records.len() - measured.len(),
        outcomes,
        ok: ok.len(),
        failed: measured.len() - ok.len(),
        replay_start_s: 0.0,
        replay_s,
        offered_rate_qps,
        achieved_rate_qps: if replay_s > 0.0 {
            completed as f64 / replay_s
        } else {
            0.0
        },
        latency,
        output_tokens_per_s: (service_s > 0.0).then(|| output_tokens as f64 / service_s),
        output_tokens,
        input_tokens: ok.iter().filter_map(|r| r.input_tokens).map(u64::from).sum(),
        phases_ms: phase_samples
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), stat(v)?)))
            .collect(),
        counters,
        setup_s,
        energy: None,
        host_steal_s: None,
    }
}

/// Dispatch lag of measured requests whose intended arrival fell while some request was
/// being served: the condition under which the dispatcher competes with the method for CPU.
fn busy_lags(all: &[RequestRecord], measured: &[&RequestRecord]) -> Vec<f64> {
    let mut spans: Vec<(f64, f64)> = all.iter().filter_map(|r| r.started_s.zip(r.finished_s)).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Merge into disjoint busy periods.
    let mut busy: Vec<(f64, f64)> = Vec::new();
    for (s, e) in spans {
        match busy.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => busy.push((s, e)),
        }
    }
    measured
        .iter()
        .filter(|r| {
            let t = r.intended_s;
            let i = busy.partition_point(|b| b.0 <= t);
            i > 0 && t < busy[i - 1].1
        })
        .map(|r| r.dispatch_lag_ms)
        .collect()
}
