//! The gate's outputs: `gate.json`, `gate.md` and the table printed on the terminal.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use oae_scorecards::Metric;
use oae_scorecards::ScoreError;
use oae_scorecards::gate::{Comparison, GateReport, Status};

use crate::{fmt_num, write_atomic};

fn change(c: &Comparison) -> String {
    match (c.change, c.ci_lo, c.ci_hi) {
        (Some(v), Some(lo), Some(hi)) => format!("{v:+.1}{} [{lo:+.1}, {hi:+.1}]", c.unit),
        (Some(v), _, _) => format!("{v:+.1}{}", c.unit),
        _ => "—".into(),
    }
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Regression => "REGRESSION",
        Status::Improvement => "improved",
        Status::Skipped => "skipped",
        Status::Missing => "MISSING",
        Status::Advisory => "advisory",
    }
}

/// How the intervals were drawn.
fn intervals(g: &GateReport) -> &'static str {
    if g.trials.iter().all(|&t| t >= 2) {
        "hierarchical (trials, then requests)"
    } else {
        "requests"
    }
}

/// Where the noise floors came from.
fn floors(g: &GateReport) -> &str {
    g.noise.as_deref().unwrap_or("none")
}

/// The threshold column: the threshold, marked when a noise floor set it.
fn threshold(c: &Comparison) -> String {
    let floor = c.noise_floor.is_some_and(|f| f >= c.threshold);
    format!("{}{}{}", fmt_num(c.threshold), c.unit, if floor { "ⁿ" } else { "" })
}

/// The terminal table: failures first, then the rest.
pub fn text(g: &GateReport) -> String {
    let mut rows: Vec<&Comparison> = g.comparisons.iter().collect();
    rows.sort_by_key(|c| !matches!(c.status, Status::Regression | Status::Missing));
    let w_m = rows.iter().map(|c| c.method.chars().count()).max().unwrap_or(6).max(6);
    let w_w = rows
        .iter()
        .map(|c| c.workload.chars().count())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<w_m$}  {:<w_w$}  {:<22}  {:>11}  {:>11}  {:<28}  {:>9}  status",
        "method", "workload", "metric", "baseline", "current", "change (positive = worse)", "threshold"
    );
    for c in rows {
        let _ = writeln!(
            s,
            "{:<w_m$}  {:<w_w$}  {:<22}  {:>11}  {:>11}  {:<28}  {:>9}  {}",
            c.method,
            c.workload,
            c.metric.map_or("(whole cell)", Metric::name),
            c.baseline.map(fmt_num).unwrap_or_else(|| "—".into()),
            c.current.map(fmt_num).unwrap_or_else(|| "—".into()),
            change(c),
            threshold(c),
            status(c.status)
        );
    }
    for w in &g.warnings {
        let _ = writeln!(s, "note: {w}");
    }
    if g.comparisons
        .iter()
        .any(|c| c.noise_floor.is_some_and(|f| f >= c.threshold))
    {
        let _ = writeln!(s, "ⁿ threshold raised to the run-to-run noise floor ({})", floors(g));
    }
    let _ = writeln!(
        s,
        "gate: {} ({} failing of {} comparisons; {:.0} % {} bootstrap, {} resamples; trials {} vs {})",
        if g.passed { "PASS" } else { "FAIL" },
        g.failures,
        g.comparisons.len(),
        g.confidence * 100.0,
        intervals(g),
        g.draws,
        g.trials[0],
        g.trials[1]
    );
    s
}

fn md_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

/// gate.md: a verdict line and the table, for a CI job summary.
pub fn markdown(g: &GateReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## oae gate: {}\n", if g.passed { "✅ pass" } else { "❌ FAIL" });
    if g.partial {
        let _ = writeln!(
            s,
            "> **PARTIAL RUN** — the baseline or the current run did not complete.\n"
        );
    }
    let _ = writeln!(
        s,
        "Baseline `{}` vs current `{}`. A metric fails when it is worse by more than its threshold **and** the {:.0} % bootstrap interval of the change lies above zero.\n",
        md_escape(&g.baseline_dir),
        md_escape(&g.current_dir),
        g.confidence * 100.0
    );
    let _ = writeln!(
        s,
        "Intervals: {}; trials {} vs {}{}; noise floors: {} (ⁿ: a floor set the threshold).\n",
        intervals(g),
        g.trials[0],
        g.trials[1],
        if g.paired { ", one interleaved run (paired)" } else { "" },
        md_escape(floors(g))
    );
    let _ = writeln!(
        s,
        "| method | workload | metric | baseline | current | change [CI] | threshold | status |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    let mut rows: Vec<&Comparison> = g.comparisons.iter().collect();
    rows.sort_by_key(|c| !matches!(c.status, Status::Regression | Status::Missing));
    for c in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            md_escape(&c.method),
            md_escape(&c.workload),
            c.metric.map_or("(whole cell)", Metric::name),
            c.baseline.map(fmt_num).unwrap_or_else(|| "—".into()),
            c.current.map(fmt_num).unwrap_or_else(|| "—".into()),
            change(c),
            threshold(c),
            if matches!(c.status, Status::Regression | Status::Missing) {
                format!("**{}**", status(c.status))
            } else {
                status(c.status).to_string()
            }
        );
    }
    for w in &g.warnings {
        let _ = writeln!(s, "\n> {}", md_escape(w));
    }
    s
}

/// Writes gate.json and gate.md into `dir`.
pub fn write(g: &GateReport, dir: &Path) -> Result<Vec<PathBuf>, ScoreError> {
    std::fs::create_dir_all(dir).map_err(|e| ScoreError::io(dir, e))?;
    let json = dir.join("gate.json");
    let bytes = serde_json::to_vec_pretty(g).map_err(|e| ScoreError::Usage(format!("gate.json: {e}")))?;
    write_atomic(&json, &bytes)?;
    let md = dir.join("gate.md");
    write_atomic(&md, markdown(g).as_bytes())?;
    Ok(vec![json, md])
}
