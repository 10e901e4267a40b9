//! The terminal table printed at the end of a run.

use std::fmt::Write;

use oae_core::rundir::CellSummary;
use oae_core::stats::{Estimate, Stat};

pub use oae_core::fmt::num;

fn est(e: &Estimate) -> String {
    let b = |x: Option<f64>| x.map(num).unwrap_or_else(|| "—".into());
    format!(
        "{} [{}, {}]{}",
        num(e.value),
        b(e.ci_lo),
        b(e.ci_hi),
        if e.insufficient { "*" } else { "" }
    )
}

fn row(out: &mut String, name: &str, s: Option<&Stat>) {
    match s {
        Some(s) => {
            let _ = writeln!(
                out,
                "  {name:<9} {:<24} {:<24} {:<24} n={}",
                est(&s.p50),
                est(&s.p95),
                est(&s.p99),
                s.n
            );
        }
        None => {
            let _ = writeln!(out, "  {name:<9} (no successful requests)");
        }
    }
}

/// What the energy line says of a cell without energy, when a run measures some.
pub const NO_ENERGY_SOURCE: &str = "no energy source available (see `oae doctor`)";

/// One block per (method, workload); `no_energy` is the energy line of a cell without any.
pub fn cells(cells: &[CellSummary], no_energy: &str) -> String {
    let mut out = String::new();
    let mut insufficient = false;
    let mut confidence = 0.95;
    for c in cells {
        let _ = writeln!(
            out,
            "\n{} × {} — {} requests ({} warm-up, {} cool-down, {} measured): {} ok, {} failed",
            c.method, c.workload, c.requests, c.warmup, c.cooldown, c.measured, c.ok, c.failed
        );
        let _ = writeln!(
            out,
            "  {:<9} {:<24} {:<24} {:<24}",
            "", "p50 [95% CI]", "p95 [95% CI]", "p99 [95% CI]"
        );
        for (label, key) in [("TTFT ms", "ttft_ms"), ("E2E ms", "e2e_ms"), ("TPOT ms", "tpot_ms")] {
            let s = c.latency.get(key);
            if let Some(s) = s {
                insufficient |= [&s.p50, &s.p95, &s.p99].iter().any(|e| e.insufficient);
                confidence = s.confidence;
            }
            row(&mut out, label, s);
        }
        let tok = c
            .output_tokens_per_s
            .map(|t| format!("{} tok/s while serving", num(t)))
            .unwrap_or_else(|| "n/a".into());
        let _ = writeln!(out, "  output    {tok} ({} tokens)", c.output_tokens);
        quality(&mut out, c);
        energy(&mut out, c.energy.as_ref(), no_energy);
        carbon(&mut out, c.carbon.as_ref());
        goodput(&mut out, c);
        harness(&mut out, c);
    }
    if insufficient {
        let _ = writeln!(
            out,
            "\n* too few requests to bound this percentile at {:.0}% confidence; run more requests (`--requests N`)",
            confidence * 100.0
        );
    }
    out
}

/// The energy lines of a cell.
fn energy(out: &mut String, e: Option<&oae_core::rundir::EnergySummary>, no_energy: &str) {
    match e {
        Some(e) => {
            let flag = if e.estimated {
                format!("ESTIMATED by {}", e.source)
            } else {
                format!("measured by {}", e.source)
            };
            let band = e
                .band
                .map(|(lo, hi)| format!(", band ×{:.2}–×{:.2}", lo, hi))
                .unwrap_or_default();
            let per = |s: &Option<Stat>| s.as_ref().map(|s| est(&s.mean)).unwrap_or_else(|| "n/a".into());
            let _ = writeln!(
                out,
                "  energy    {} J/request dynamic, {} active, {} amortized (mean [CI]); {} W mean — {flag}{band}",
                per(&e.dyn_j_per_request),
                per(&e.active_j_per_request),
                per(&e.amortized_j_per_request),
                num(e.mean_power_w)
            );
            let idle = e
                .idle_w
                .map(|w| format!("idle {} W", num(w)))
                .unwrap_or_else(|| "no idle baseline".into());
            let s = &e.sensitivity;
            let o = |x: Option<f64>| x.map(num).unwrap_or_else(|| "—".into());
            let _ = writeln!(
                out,
                "            {idle}; gap bucket {} J{}; active J/request by token work {} · time share {} · equal share {}",
                num(e.gap_j),
                e.compressed_idle_j
                    .filter(|_| e.compressed_s > 0.0)
                    .map(|j| format!(
                        " + {} J idle of {} s skipped by compression (analytic)",
                        num(j),
                        num(e.compressed_s)
                    ))
                    .unwrap_or_default(),
                o(s.token_work_j),
                o(s.time_share_j),
                o(s.equal_share_j)
            );
            if e.domains.len() > 1 {
                for d in &e.domains {
                    let _ = writeln!(
                        out,
                        "            {}: {} J/request amortized, {} active — {} by {}",
                        d.domain,
                        per(&d.amortized_j_per_request),
                        per(&d.active_j_per_request),
                        d.kind.as_str(),
                        d.source
                    );
                }
            }
            if let Some(p) = &e.process_view {
                let share = p
                    .share_of_machine
                    .map(|s| format!("{:.0}% of the machine's", s * 100.0))
                    .unwrap_or_else(|| "share unknown".into());
                let d = &p.energy;
                let _ = writeln!(
                    out,
                    "  process   {} (oae's own share, {share}): {} J/request dynamic, {} active — {} by {}{}",
                    d.domain,
                    per(&d.dyn_j_per_request),
                    per(&d.active_j_per_request),
                    d.kind.as_str(),
                    d.source,
                    if p.co_tenant_flagged {
                        "; FLAGGED: the machine was busy with other work, read this view"
                    } else {
                        ""
                    }
                );
            }
            for f in &e.fallbacks {
                let _ = writeln!(out, "  FALLBACK  {f}");
            }
            if !e.valid {
                let _ = writeln!(out, "  INVALID   energy: {}", e.invalid_reasons.join("; "));
            }
        }
        None => {
            let _ = writeln!(out, "  energy    {no_energy}");
        }
    }
}

/// The carbon line of a cell.
fn carbon(out: &mut String, k: Option<&oae_core::rundir::CarbonSummary>) {
    if let Some(k) = k {
        let f = &k.per_request_facility;
        let o = |x: Option<f64>| x.map(|v| format!("{:.3}", v * 1000.0)).unwrap_or_else(|| "—".into());
        let _ = writeln!(
            out,
            "  carbon    {:.3} mg CO2e/request at PUE {} (dynamic {} · idle {} · embodied {:.3} mg); {:.2} g per 1k requests; {} g/kWh{} — ESTIMATED",
            f.total_g * 1000.0,
            k.pue_facility,
            o(f.dynamic_g),
            o(f.idle_g),
            f.embodied_g * 1000.0,
            k.per_1k_requests_facility_g,
            num(k.intensity_g_per_kwh),
            k.intensity_note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
        );
    }
}

/// The quality line of a cell with a task: each scorer's mean [CI] and n.
fn quality(out: &mut String, c: &CellSummary) {
    if c.quality.is_empty() {
        return;
    }
    let parts: Vec<String> = c
        .quality
        .iter()
        .map(|(name, s)| format!("{name} {} n={}", est(&s.mean), s.n))
        .collect();
    let _ = writeln!(out, "  quality   {}", parts.join("; "));
    if let Some(r) = &c.reasoning {
        let mean = |s: &Option<Stat>| s.as_ref().map(|s| est(&s.mean)).unwrap_or_else(|| "—".into());
        let o = |x: Option<f64>| x.map(num).unwrap_or_else(|| "—".into());
        let _ = writeln!(
            out,
            "  reasoning {} reasoning + {} answer tokens/request (overhead {}×, {} without an answer); {}/{} correct ({}): {} tokens, {} reasoning tokens, {} J per correct answer",
            mean(&r.reasoning_tokens),
            mean(&r.answer_tokens),
            o(r.overhead),
            r.no_answer,
            r.correct,
            r.measured,
            r.correct_by,
            o(r.tokens_per_correct),
            o(r.reasoning_tokens_per_correct),
            o(r.energy_j_per_correct)
        );
    }
}

/// The goodput line (and validity) of a cell.
fn goodput(out: &mut String, c: &CellSummary) {
    let g = &c.goodput;
    let mut slo = Vec::new();
    for (name, v) in [("TTFT", g.slo.ttft_ms), ("TPOT", g.slo.tpot_ms), ("E2E", g.slo.e2e_ms)] {
        if let Some(v) = v {
            slo.push(format!("{name} ≤ {} ms", num(v.get())));
        }
    }
    if let Some(q) = &g.slo.quality {
        slo.push(format!("{} ≥ {} (right answers only)", q.scorer, num(q.min)));
    }
    let against = if slo.is_empty() {
        "no [slo] set: good = ok".to_string()
    } else {
        slo.join(", ")
    };
    let pct = |x: Option<f64>| x.map(|v| format!("{:.1}", v * 100.0)).unwrap_or_else(|| "—".into());
    let _ = writeln!(
        out,
        "  goodput   {}/{} good ({}% [{}, {}]) = {} req/s; {against}",
        g.good,
        g.measured,
        pct(Some(g.fraction.value).filter(|v| v.is_finite())),
        pct(g.fraction.ci_lo),
        pct(g.fraction.ci_hi),
        num(g.goodput_qps)
    );
    if !c.validity.valid {
        let _ = writeln!(out, "  INVALID   {}", c.validity.reasons.join("; "));
    }
}

/// The wake-up and harness lines of a cell.
fn harness(out: &mut String, c: &CellSummary) {
    let wake: Vec<String> = c
        .wakeup
        .iter()
        .map(|b| match &b.ttft_ms {
            Some(s) => format!("{} {} ms (n={})", b.bucket, num(s.p50.value), b.n),
            None => format!("{} —", b.bucket),
        })
        .collect();
    let _ = writeln!(
        out,
        "  wake-up   TTFT p50 by idle time before arrival: {}",
        wake.join(" · ")
    );
    let lag = c
        .latency
        .get("dispatch_lag_ms")
        .map(|s| format!("{} ms", num(s.p99.value)))
        .unwrap_or_else(|| "n/a".into());
    let busy = c
        .latency
        .get("dispatch_lag_busy_ms")
        .map(|s| format!("{} ms over {} releases while busy", num(s.p99.value), s.n))
        .unwrap_or_else(|| "no releases while busy".into());
    let idle = c
        .latency
        .get("dispatch_lag_idle_ms")
        .map(|s| format!("{} ms over {} while idle", num(s.p99.value), s.n))
        .unwrap_or_else(|| "none while idle".into());
    let _ = writeln!(
        out,
        "  harness   dispatch lag p99 {lag} ({busy}; {idle}); setup {:.2} s",
        c.setup_s
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_compact() {
        assert_eq!(num(1234.4), "1234");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(1.2345), "1.23");
        // The one formatter of oae_core::fmt: three significant digits below 1 too.
        assert_eq!(num(0.01234), "0.0123");
    }

    #[test]
    fn missing_bound_is_marked() {
        let e = Estimate {
            value: 5.0,
            ci_lo: Some(4.0),
            ci_hi: None,
            insufficient: true,
        };
        assert_eq!(est(&e), "5.00 [4.00, —]*");
    }
}
