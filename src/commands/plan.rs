//! `oae plan`: the run length a percentile needs before its confidence interval is useful.

use std::process::ExitCode;

use anyhow::bail;
use oae_core::stats::plan_sample_size;

use crate::cli::PlanArgs;

fn duration(secs: f64) -> String {
    match secs {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.1} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} days", s / 86_400.0),
    }
}

pub fn plan(a: PlanArgs) -> anyhow::Result<ExitCode> {
    if !(a.rate.is_finite() && a.rate > 0.0) {
        bail!(
            "--rate must be a request rate > 0 (requests per second), got {}",
            a.rate
        );
    }
    if !(a.percentile > 0.0 && a.percentile < 100.0) {
        bail!(
            "--percentile must be between 0 and 100 exclusive (e.g. 99), got {}",
            a.percentile
        );
    }
    if !(a.ci_width > 0.0 && a.ci_width < 100.0) {
        bail!(
            "--ci-width must be in percentile points between 0 and 100 exclusive (e.g. 1), got {}",
            a.ci_width
        );
    }
    if !(a.confidence > 0.5 && a.confidence < 1.0) {
        bail!(
            "--confidence must be between 0.5 and 1 (e.g. 0.95), got {}",
            a.confidence
        );
    }
    if !(a.warmup_s.is_finite() && a.warmup_s >= 0.0) {
        bail!("--warmup-s must be >= 0, got {}", a.warmup_s);
    }
    let p = a.percentile / 100.0;
    let w = a.ci_width / 100.0;
    let plan = plan_sample_size(p, w, a.confidence);
    let conf = a.confidence * 100.0;
    println!(
        "p{} at {conf:.0}% confidence (distribution-free order-statistic interval):",
        a.percentile
    );
    println!(
        "  {:>9} requests before the interval has both bounds (fewer: reported as insufficient); {} at {} req/s",
        plan.min_bounded,
        duration(plan.min_bounded as f64 / a.rate + a.warmup_s),
        a.rate
    );
    println!(
        "  {:>9} requests for an interval within p{:.3}–p{:.3}; {} of traffic at {} req/s{}",
        plan.for_width,
        (a.percentile - a.ci_width / 2.0).max(0.0),
        (a.percentile + a.ci_width / 2.0).min(100.0),
        duration(plan.for_width as f64 / a.rate + a.warmup_s),
        a.rate,
        if a.warmup_s > 0.0 { " (including warm-up)" } else { "" }
    );
    println!(
        "  set `requests = {}` in [run]; idle_gap_cap_s shortens the replay, not the traffic it stands for",
        plan.for_width
    );
    Ok(ExitCode::SUCCESS)
}
