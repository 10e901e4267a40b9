//! Computing the per (method, workload) summaries of summary.json (the types are
//! `oae_core::rundir`'s) from a cell's records.

use std::collections::BTreeMap;

use oae_core::rundir::{CellSummary, Goodput, ReasoningSummary, Slo, Validity, WakeupBucket};

use crate::stats::{Estimate, Stat};
use crate::{Outcome, RequestRecord};

/// The idle-gap buckets of the wake-up report: (label, from s, to s).
pub const WAKEUP_BUCKETS: [(&str, f64, Option<f64>); 4] = [
    ("<1s", 0.0, Some(1.0)),
    ("1-10s", 1.0, Some(10.0)),
    ("10-60s", 10.0, Some(60.0)),
    (">60s", 60.0, None),
];

/// Fills `idle_before_s` on every record: the time since the last moment any request was in
/// service (0 if one was in service at the intended arrival; from the replay start for the
/// first request).
pub fn fill_idle_before(records: &mut [RequestRecord]) {
    let busy = busy_periods(records.iter());
    for r in records.iter_mut() {
        let t = r.intended_s;
        let i = busy.partition_point(|b| b.0 < t);
        r.idle_before_s = Some(match i.checked_sub(1).map(|j| busy[j]) {
            Some((_, end)) if t < end => 0.0,
            Some((_, end)) => t - end,
            None => t.max(0.0),
        });
    }
}

/// Disjoint periods during which at least one request was in service, sorted.
fn busy_periods<'a>(records: impl IntoIterator<Item = &'a RequestRecord>) -> Vec<(f64, f64)> {
    let mut spans: Vec<(f64, f64)> = records
        .into_iter()
        .filter_map(|r| r.started_s.zip(r.finished_s))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut busy: Vec<(f64, f64)> = Vec::new();
    for (s, e) in spans {
        match busy.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => busy.push((s, e)),
        }
    }
    busy
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
    /// Warm-up window, s.
    pub warmup_s: f64,
    /// Cool-down window, s.
    pub cooldown_s: f64,
    /// Objectives for goodput.
    pub slo: &'a Slo,
    /// Fewest measured requests for validity.
    pub min_requests: Option<u64>,
    /// Shortest measured duration for validity, s.
    pub min_duration_s: Option<f64>,
}

/// Wilson score interval for k successes in n trials.
pub fn wilson(k: usize, n: usize, confidence: f64) -> Estimate {
    if n == 0 {
        return Estimate {
            value: f64::NAN,
            ci_lo: None,
            ci_hi: None,
            insufficient: true,
        };
    }
    let (k, n) = (k as f64, n as f64);
    let z = crate::stats::normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    let p = k / n;
    let d = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / d;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    Estimate {
        value: p,
        ci_lo: Some((centre - half).max(0.0)),
        ci_hi: Some((centre + half).min(1.0)),
        insufficient: false,
    }
}

/// Latency statistics of a cell: TTFT, E2E, TPOT, ITL, service time of ok requests; queue
/// and dispatch lag of all measured ones.
/// Quality by scorer over ok requests that were scored, grouped by trial.
fn quality(ok: &[&RequestRecord], confidence: f64) -> BTreeMap<String, Stat> {
    let mut names: Vec<&String> = ok.iter().flat_map(|r| r.quality.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let groups = by_trial(ok)
                .values()
                .map(|g| g.iter().filter_map(|r| r.quality.get(name).copied()).collect())
                .collect();
            Some((name.clone(), Stat::from_groups(groups, confidence)?))
        })
        .collect()
}

/// Scorers that tell a correct answer without a quality bar, in order of preference
/// (the exact ones first), each at ≥ 0.5.
const CORRECT_BY: &[&str] = &["numeric", "choice", "em", "contains", "f1"];

/// The cost of reasoning and of each correct answer over the measured requests (call after
/// energy attribution: it reads `energy_amortized_j`); `None` when no record splits its
/// reasoning from its answer.
pub fn reasoning(records: &[RequestRecord], slo: &Slo, confidence: f64) -> Option<ReasoningSummary> {
    let measured: Vec<&RequestRecord> = records.iter().filter(|r| r.measured()).collect();
    if !measured.iter().any(|r| r.reasoning_tokens.is_some()) {
        return None;
    }
    let ok: Vec<&RequestRecord> = measured.iter().copied().filter(|r| r.outcome == Outcome::Ok).collect();
    let bar = slo.quality.as_ref();
    let correct = |r: &RequestRecord| match bar {
        Some(b) => b.met(&r.quality),
        None => CORRECT_BY
            .iter()
            .find_map(|n| r.quality.get(*n))
            .is_some_and(|&v| v >= 0.5),
    };
    let correct_by = match bar {
        Some(b) => format!("quality bar {} ≥ {}", b.scorer, b.min),
        None => format!("first of {} each answer was scored by, ≥ 0.5", CORRECT_BY.join(", ")),
    };
    let n_correct = measured
        .iter()
        .filter(|r| r.outcome == Outcome::Ok && correct(r))
        .count();
    let stat = |f: fn(&RequestRecord) -> Option<u32>| {
        let groups = by_trial(&ok)
            .values()
            .map(|g| g.iter().filter_map(|r| f(r).map(f64::from)).collect())
            .collect();
        Stat::from_groups(groups, confidence)
    };
    let sum = |f: fn(&RequestRecord) -> Option<u32>| ok.iter().filter_map(|r| f(r)).map(u64::from).sum::<u64>();
    let (reasoning, answer) = (sum(|r| r.reasoning_tokens), sum(|r| r.answer_tokens));
    let per_correct = |x: f64| (n_correct > 0).then(|| x / n_correct as f64);
    let energy: Option<f64> = measured.iter().map(|r| r.energy_amortized_j).sum();
    Some(ReasoningSummary {
        reasoning_tokens: stat(|r| r.reasoning_tokens),
        answer_tokens: stat(|r| r.answer_tokens),
        overhead: (answer > 0).then(|| reasoning as f64 / answer as f64),
        no_answer: ok.iter().filter(|r| r.answer_tokens == Some(0)).count(),
        correct_by,
        correct: n_correct,
        measured: measured.len(),
        tokens_per_correct: per_correct(measured.iter().map(|r| f64::from(r.output_tokens)).sum()),
        reasoning_tokens_per_correct: per_correct(reasoning as f64),
        energy_j_per_correct: energy.and_then(per_correct),
    })
}

fn latency(
    records: &[RequestRecord],
    measured: &[&RequestRecord],
    ok: &[&RequestRecord],
    confidence: f64,
) -> BTreeMap<String, Stat> {
    // Values grouped by trial: with two or more trials the intervals are hierarchical.
    let stat = |set: &[&RequestRecord], values: &dyn Fn(&[&RequestRecord]) -> Vec<f64>| {
        Stat::from_groups(by_trial(set).values().map(|g| values(g)).collect(), confidence)
    };
    let of = |f: fn(&RequestRecord) -> Option<f64>| move |g: &[&RequestRecord]| g.iter().filter_map(|r| f(r)).collect();
    let mut latency = BTreeMap::new();
    let mut put = |name: &str, s: Option<Stat>| {
        if let Some(s) = s {
            latency.insert(name.to_string(), s);
        }
    };
    put("ttft_ms", stat(ok, &of(|r| r.ttft_ms)));
    put("e2e_ms", stat(ok, &of(|r| r.e2e_ms)));
    put("tpot_ms", stat(ok, &of(|r| r.tpot_ms)));
    put(
        "itl_ms_pooled",
        stat(ok, &|g| g.iter().flat_map(|r| r.itl_ms.iter().copied()).collect()),
    );
    put(
        "itl_ms_per_request_mean",
        stat(
            ok,
            &of(|r| (!r.itl_ms.is_empty()).then(|| r.itl_ms.iter().sum::<f64>() / r.itl_ms.len() as f64)),
        ),
    );
    put("service_ms", stat(ok, &of(|r| r.service_ms)));
    // First token from the start of service: TTFT without queueing, what a sporadic request
    // sees when the method is idle.
    put(
        "service_ttft_ms",
        stat(ok, &of(|r| Some((r.first_token_s? - r.started_s?) * 1e3))),
    );
    put("queue_ms", stat(measured, &of(|r| r.queue_ms)));
    put("dispatch_lag_ms", stat(measured, &of(|r| Some(r.dispatch_lag_ms))));
    // Busy periods are per replay: each trial's times start at its own zero.
    let all: Vec<&RequestRecord> = records.iter().collect();
    let all_by_trial = by_trial(&all);
    let lags: Vec<(Vec<f64>, Vec<f64>)> = by_trial(measured)
        .iter()
        .map(|(t, m)| lags_by_worker_state(&all_by_trial[t], m))
        .collect();
    put(
        "dispatch_lag_busy_ms",
        Stat::from_groups(lags.iter().map(|l| l.0.clone()).collect(), confidence),
    );
    put(
        "dispatch_lag_idle_ms",
        Stat::from_groups(lags.iter().map(|l| l.1.clone()).collect(), confidence),
    );
    latency
}

/// Records by trial, in trial order.
fn by_trial<'a>(records: &[&'a RequestRecord]) -> BTreeMap<u32, Vec<&'a RequestRecord>> {
    let mut out: BTreeMap<u32, Vec<&RequestRecord>> = BTreeMap::new();
    for r in records {
        out.entry(r.trial).or_default().push(r);
    }
    out
}

/// TTFT and E2E of ok requests by the idle time before them.
fn wakeup(ok: &[&RequestRecord], confidence: f64) -> Vec<WakeupBucket> {
    let stat = |v: Vec<f64>| Stat::from_samples(v, confidence);
    WAKEUP_BUCKETS
        .iter()
        .map(|&(label, from, to)| {
            let inside: Vec<&&RequestRecord> = ok
                .iter()
                .filter(|r| r.idle_before_s.is_some_and(|g| g >= from && to.is_none_or(|t| g < t)))
                .collect();
            WakeupBucket {
                bucket: label.to_string(),
                idle_from_s: from,
                idle_to_s: to,
                n: inside.len(),
                ttft_ms: stat(inside.iter().filter_map(|r| r.ttft_ms).collect()),
                e2e_ms: stat(inside.iter().filter_map(|r| r.e2e_ms).collect()),
            }
        })
        .collect()
}

/// Measured replay time: every trial's replay less its warm-up and cool-down windows, s.
fn measured_span(info: &CellInfo<'_>, records: &[RequestRecord], replay_s: f64) -> f64 {
    let mut trials: Vec<u32> = records.iter().map(|r| r.trial).collect();
    trials.sort_unstable();
    trials.dedup();
    let n = trials.len().max(1) as f64;
    (replay_s - n * (info.warmup_s + info.cooldown_s)).max(0.0)
}

/// Goodput against the suite's objectives over `span` s of measured replay.
fn goodput(info: &CellInfo<'_>, measured: &[&RequestRecord], span: f64) -> Goodput {
    let confidence = info.confidence;
    let good = measured.iter().filter(|r| r.good(info.slo)).count();
    Goodput {
        slo: info.slo.clone(),
        good,
        measured: measured.len(),
        fraction: wilson(good, measured.len(), confidence),
        goodput_qps: if span > 0.0 { good as f64 / span } else { 0.0 },
    }
}

/// Whether the cell meets the suite's minimum count and duration.
fn validity(info: &CellInfo<'_>, measured: usize, span: f64) -> Validity {
    let mut reasons = Vec::new();
    if let Some(m) = info.min_requests.filter(|&m| (measured as u64) < m) {
        reasons.push(format!("{} measured requests < min_requests {m}", measured));
    }
    if let Some(m) = info.min_duration_s.filter(|&m| span < m) {
        reasons.push(format!("{span:.1} s measured replay < min_duration_s {m}"));
    }
    Validity {
        valid: reasons.is_empty(),
        measured_duration_s: span,
        reasons,
    }
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
        ..
    } = *info;
    let measured: Vec<&RequestRecord> = records.iter().filter(|r| r.measured()).collect();
    let ok: Vec<&RequestRecord> = measured.iter().copied().filter(|r| r.outcome == Outcome::Ok).collect();
    let mut outcomes = BTreeMap::new();
    for r in &measured {
        *outcomes.entry(r.outcome).or_insert(0) += 1;
    }
    let stat = |v: Vec<f64>| Stat::from_samples(v, confidence);
    let latency = latency(records, &measured, &ok, confidence);

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
    let wakeup = wakeup(&ok, confidence);
    let span = measured_span(info, records, replay_s);
    CellSummary {
        method: method.to_string(),
        method_id: method_id.to_string(),
        workload: workload.to_string(),
        requests: records.len(),
        measured: measured.len(),
        warmup: records.iter().filter(|r| r.warmup).count(),
        cooldown: records.iter().filter(|r| r.cooldown && !r.warmup).count(),
        outcomes,
        ok: ok.len(),
        failed: measured.len() - ok.len(),
        source_failed: measured.iter().filter(|r| r.source_failed).count(),
        replay_start_s: 0.0,
        replay_s,
        offered_rate_qps,
        achieved_rate_qps: if replay_s > 0.0 {
            completed as f64 / replay_s
        } else {
            0.0
        },
        latency,
        quality: quality(&ok, confidence),
        reasoning: None,
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
        carbon: None,
        wakeup,
        goodput: goodput(info, &measured, span),
        validity: validity(info, measured.len(), span),
        trials: Vec::new(),
        host_steal_s: None,
        host_other_cpu_s: None,
    }
}

/// Dispatch lag of measured requests split by whether their intended arrival fell while
/// some request was being served (busy: the dispatcher competes with the method for CPU) or
/// not (idle).
fn lags_by_worker_state(all: &[&RequestRecord], measured: &[&RequestRecord]) -> (Vec<f64>, Vec<f64>) {
    let busy = busy_periods(all.iter().copied());
    let (mut b, mut i) = (Vec::new(), Vec::new());
    for r in measured {
        let t = r.intended_s;
        let k = busy.partition_point(|p| p.0 < t);
        if k > 0 && t < busy[k - 1].1 {
            b.push(r.dispatch_lag_ms);
        } else {
            i.push(r.dispatch_lag_ms);
        }
    }
    (b, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_lag_splits_by_worker_state() {
        let mut a = rec(0, 0.0, Some((0.0, 1.0)));
        let mut b = rec(1, 0.5, Some((1.0, 1.5))); // arrives while 0 is served
        let mut c = rec(2, 3.0, Some((3.0, 3.1))); // arrives to an idle worker
        (a.dispatch_lag_ms, b.dispatch_lag_ms, c.dispatch_lag_ms) = (0.1, 0.7, 0.2);
        let all = [a, b, c];
        let measured: Vec<&RequestRecord> = all.iter().collect();
        let (busy, idle) = lags_by_worker_state(&measured, &measured);
        assert_eq!(busy, vec![0.7]);
        assert_eq!(idle, vec![0.1, 0.2]);
    }

    fn rec(id: u64, intended: f64, service: Option<(f64, f64)>) -> RequestRecord {
        RequestRecord {
            method: "m".into(),
            workload: "w".into(),
            request_id: id,
            trial: 0,
            instance: Some(0),
            warmup: false,
            cooldown: false,
            intended_s: intended,
            dispatched_s: intended,
            started_s: service.map(|s| s.0),
            first_token_s: service.map(|s| s.0 + 0.01),
            finished_s: service.map(|s| s.1),
            ttft_ms: service.map(|s| (s.0 + 0.01 - intended) * 1e3),
            e2e_ms: service.map(|s| (s.1 - intended) * 1e3),
            queue_ms: service.map(|s| (s.0 - intended) * 1e3),
            dispatch_lag_ms: 0.0,
            service_ms: service.map(|s| (s.1 - s.0) * 1e3),
            tpot_ms: None,
            itl_ms: vec![],
            input_tokens: Some(1),
            output_tokens: 1,
            max_new_tokens: 1,
            stop_reason: Some("length".into()),
            idle_skipped_s: 0.0,
            idle_before_s: None,
            source_failed: false,
            outcome: if service.is_some() {
                Outcome::Ok
            } else {
                Outcome::Rejected
            },
            error: None,
            phases_ms: BTreeMap::new(),
            counters: BTreeMap::new(),
            energy_dyn_j: None,
            energy_active_j: None,
            energy_amortized_j: None,
            energy_prefill_j: None,
            energy_decode_j: None,
            co2e_g: None,
            energy_source: None,
            energy_estimated: true,
            energy_by_domain: Default::default(),
            energy_process_cpu: None,
            task_id: None,
            output_text: None,
            output_truncated: false,
            quality: BTreeMap::new(),
            reasoning_tokens: None,
            answer_tokens: None,
        }
    }

    #[test]
    fn idle_before_counts_from_the_last_busy_moment() {
        let mut r = vec![
            rec(0, 0.5, Some((0.5, 1.0))),
            rec(1, 3.0, Some((3.0, 3.5))),
            rec(2, 3.2, Some((3.5, 4.0))), // arrived while 1 was in service
            rec(3, 20.0, Some((20.0, 20.1))),
            rec(4, 21.0, None), // never served: still has an idle gap before it
        ];
        fill_idle_before(&mut r);
        let gaps: Vec<f64> = r
            .iter()
            .map(|x| (x.idle_before_s.unwrap() * 1e6).round() / 1e6)
            .collect();
        assert_eq!(gaps, vec![0.5, 2.0, 0.0, 16.0, 0.9]);
        let info = CellInfo {
            method: "m",
            method_id: "m",
            workload: "w",
            replay_s: 21.0,
            offered_rate_qps: 0.2,
            setup_s: 0.0,
            confidence: 0.95,
            warmup_s: 0.0,
            cooldown_s: 0.0,
            slo: &Slo::default(),
            min_requests: None,
            min_duration_s: None,
        };
        let s = summarize(&info, &r);
        let n: Vec<usize> = s.wakeup.iter().map(|b| b.n).collect();
        assert_eq!(n, vec![2, 1, 1, 0], "ok requests per bucket <1s, 1-10s, 10-60s, >60s");
        assert!(s.wakeup[3].ttft_ms.is_none());
    }

    #[test]
    fn goodput_counts_failures_as_not_good_and_validity_flags_short_runs() {
        let r = vec![
            rec(0, 0.0, Some((0.0, 0.1))),  // e2e 100 ms
            rec(1, 1.0, Some((1.0, 1.5))),  // e2e 500 ms
            rec(2, 2.0, None),              // rejected
            rec(3, 3.0, Some((3.0, 3.05))), // e2e 50 ms
        ];
        let slo = Slo {
            e2e_ms: Some(crate::suite::PositiveF64(200.0)),
            ..Slo::default()
        };
        let info = CellInfo {
            method: "m",
            method_id: "m",
            workload: "w",
            replay_s: 4.0,
            offered_rate_qps: 1.0,
            setup_s: 0.0,
            confidence: 0.95,
            warmup_s: 0.0,
            cooldown_s: 0.0,
            slo: &slo,
            min_requests: Some(10),
            min_duration_s: Some(2.0),
        };
        let s = summarize(&info, &r);
        assert_eq!((s.goodput.good, s.goodput.measured), (2, 4));
        assert!((s.goodput.goodput_qps - 0.5).abs() < 1e-12);
        let f = &s.goodput.fraction;
        assert!(f.ci_lo.unwrap() < 0.5 && 0.5 < f.ci_hi.unwrap());
        assert!(!s.validity.valid && s.validity.reasons.len() == 1, "{:?}", s.validity);
    }

    #[test]
    fn wilson_known_value() {
        // 8 of 10 at 95%: (0.490, 0.943).
        let e = wilson(8, 10, 0.95);
        assert!(
            (e.ci_lo.unwrap() - 0.4902).abs() < 1e-3 && (e.ci_hi.unwrap() - 0.9433).abs() < 1e-3,
            "{e:?}"
        );
    }
}
