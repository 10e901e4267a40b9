//! A peer's request as an oae record: latencies from the intended arrival (as oae measures
//! its own), the peer's send delay as dispatch lag, TPOT = (end − first token) / (tokens − 1),
//! failures with the peer's error, no energy (filled in later when a timeline is given).

use std::collections::BTreeMap;

use super::{PeerCell, PeerRequest};
use crate::{Outcome, RequestRecord};

/// The records of one cell — times from its first intended arrival, ids in intended order —
/// and that arrival on the peer's clock.
pub(crate) fn to_records(label: &str, cell: &PeerCell) -> (Vec<RequestRecord>, f64) {
    let mut reqs: Vec<&PeerRequest> = cell.requests.iter().collect();
    reqs.sort_by(|a, b| {
        a.intended_s
            .total_cmp(&b.intended_s)
            .then(a.sent_s.total_cmp(&b.sent_s))
    });
    let t0 = reqs.first().map_or(0.0, |r| r.intended_s);
    let recs = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| record(label, &cell.workload, cell.max_tokens, i as u64, t0, r))
        .collect();
    (recs, t0)
}

/// Characters of generated text kept per record (as `[run] keep_output_chars` defaults).
const KEEP_CHARS: usize = 2000;

fn record(label: &str, workload: &str, max_tokens: Option<u32>, id: u64, t0: f64, r: &PeerRequest) -> RequestRecord {
    let rel = |t: f64| t - t0;
    let intended = rel(r.intended_s);
    let sent = rel(r.sent_s);
    let first = r.first_token_s.map(rel);
    let end = r.end_s.map(rel);
    let ms = |t: f64| (t - intended) * 1e3;
    let ok = r.outcome == Outcome::Ok;
    let out_tokens = if ok { r.output_tokens.unwrap_or(0) } else { 0 };
    let tpot = match (first, end) {
        (Some(f), Some(e)) if ok && out_tokens > 1 => Some((e - f) * 1e3 / f64::from(out_tokens - 1)),
        _ => None,
    };
    let (text, truncated) = match &r.output_text {
        Some(t) if t.chars().count() > KEEP_CHARS => (Some(t.chars().take(KEEP_CHARS).collect()), true),
        Some(t) => (Some(t.clone()), false),
        None => (None, false),
    };
    RequestRecord {
        method: label.to_string(),
        workload: workload.to_string(),
        request_id: id,
        trial: 0,
        instance: None,
        warmup: r.warmup,
        cooldown: false,
        intended_s: intended,
        dispatched_s: sent,
        started_s: Some(sent),
        first_token_s: first,
        finished_s: end,
        ttft_ms: first.map(ms),
        e2e_ms: end.map(ms),
        queue_ms: None,
        dispatch_lag_ms: (sent - intended) * 1e3,
        service_ms: end.map(|e| (e - sent) * 1e3),
        tpot_ms: tpot,
        itl_ms: if ok {
            r.itl_ms.clone().unwrap_or_default()
        } else {
            Vec::new()
        },
        input_tokens: r.input_tokens,
        output_tokens: out_tokens,
        max_new_tokens: max_tokens.unwrap_or(out_tokens),
        stop_reason: None,
        idle_skipped_s: 0.0,
        idle_before_s: None,
        source_failed: false,
        outcome: r.outcome,
        error: if ok {
            None
        } else {
            Some(
                r.error
                    .clone()
                    .filter(|e| !e.trim().is_empty())
                    .unwrap_or_else(|| "the peer recorded a failure without a message".to_string()),
            )
        },
        phases_ms: BTreeMap::new(),
        counters: BTreeMap::new(),
        energy_dyn_j: None,
        energy_active_j: None,
        energy_amortized_j: None,
        energy_prefill_j: None,
        energy_decode_j: None,
        co2e_g: None,
        energy_source: None,
        energy_estimated: false,
        energy_by_domain: BTreeMap::new(),
        energy_process_cpu: None,
        task_id: None,
        output_text: text,
        output_truncated: truncated,
        quality: BTreeMap::new(),
        reasoning_tokens: None,
        answer_tokens: None,
    }
}
