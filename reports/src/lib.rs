//! oae-reports: leaderboards from scorecards — `leaderboard.csv`, `.parquet`, `.json`,
//! `summary.md` and a self-contained `leaderboard.html` with SVG charts drawn by plotters —
//! and the gate's `gate.json` / `gate.md` — and the workflows that produce them ([`flow`]:
//! score, report, gate, what follows a run; [`baselines`]: named baselines on disk).
//!
//! Every file is written to a temporary name and renamed into place, so a report directory
//! never holds a half-written file under a final name.

pub mod baselines;
pub mod charts;
pub mod exporters;
pub mod flow;
pub mod gate;
pub mod site;
pub mod table;

use std::path::{Path, PathBuf};

use oae_scorecards::score::{Figure, Scorecards, Verdict};
use oae_scorecards::{BreakEven, ScoreError};

pub use exporters::{EXPORTERS, ExportError, Exporter};

/// What every exporter reads.
pub struct Report<'a> {
    /// The scorecards.
    pub cards: &'a Scorecards,
    /// The leaderboard columns.
    pub columns: Vec<table::Column>,
}

impl<'a> Report<'a> {
    /// Builds the leaderboard of `cards`.
    pub fn new(cards: &'a Scorecards) -> Self {
        Report {
            cards,
            columns: table::columns(cards),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ScoreError> {
    let tmp = path.with_extension(format!(
        "{}.partial",
        path.extension().and_then(|e| e.to_str()).unwrap_or("tmp")
    ));
    std::fs::write(&tmp, bytes).map_err(|e| ScoreError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ScoreError::io(path, e))
}

/// Writes every report of `cards` into `dir`; returns the files written.
pub fn write_all(cards: &Scorecards, dir: &Path) -> Result<Vec<PathBuf>, ScoreError> {
    std::fs::create_dir_all(dir).map_err(|e| ScoreError::io(dir, e))?;
    let report = Report::new(cards);
    let mut written = Vec::new();
    for e in EXPORTERS {
        let bytes = e
            .render(&report)
            .map_err(|m| ScoreError::Usage(format!("writing {}: {m}", dir.join(e.file_name()).display())))?;
        let path = dir.join(e.file_name());
        write_atomic(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}

pub use oae_core::fmt::num as fmt_num;

/// `value [ci_lo, ci_hi]` (or the value alone).
pub fn fmt_figure(f: &Figure) -> String {
    match (f.ci_lo, f.ci_hi) {
        (Some(lo), Some(hi)) => format!("{} [{}, {}]", fmt_num(f.value), fmt_num(lo), fmt_num(hi)),
        _ => fmt_num(f.value),
    }
}

/// One plain-language sentence per non-baseline scorecard: the answer the tool exists for.
pub fn headline_sentences(c: &Scorecards) -> Vec<String> {
    let mut out = Vec::new();
    for r in c.rows.iter().filter(|r| !r.baseline) {
        let Some(ratio) = &r.oae_ratio else {
            out.push(format!(
                "{} on {}: {} USD per 1k good requests; no baseline run on this workload to compare with.",
                r.method,
                r.workload,
                fmt_num(r.cost_per_1k_good_usd.value)
            ));
            continue;
        };
        let verdict = match r.verdict {
            Verdict::Better => "beats",
            Verdict::Worse => "loses to",
            _ => "is not distinguishable from",
        };
        let be = match r.break_even.as_ref().map(|b| b.point) {
            Some(BreakEven::At(q)) => format!("it breaks even from {} req/s", fmt_num(q)),
            Some(BreakEven::Always) => "it is cheaper at every rate from 0.001 to 1000 req/s".into(),
            Some(BreakEven::Never) => "it never breaks even between 0.001 and 1000 req/s".into(),
            None => String::new(),
        };
        out.push(format!(
            "At {} req/s on {}, {} {} {} once overhead is counted: {} vs {} USD per 1k good requests (OAE ratio {}){}; {}.",
            fmt_num(r.rate_qps),
            r.workload,
            r.method,
            verdict,
            c.baseline,
            fmt_num(r.cost_per_1k_good_usd.value),
            c.rows
                .iter()
                .find(|b| b.baseline && b.workload == r.workload)
                .map(|b| fmt_num(b.cost_per_1k_good_usd.value))
                .unwrap_or_else(|| "—".into()),
            fmt_figure(ratio),
            if r.talent_dependent { ", a gain that disappears at specialist (L4) labour rates" } else { "" },
            be
        ));
    }
    out
}
