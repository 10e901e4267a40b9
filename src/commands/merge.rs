//! `oae merge`: combine run directories exactly.

use std::process::ExitCode;

use anyhow::bail;
use oae_harness::merge::{Allow, merge_runs_with};
use oae_harness::session::RunStatus;
use oae_reports::flow::{AfterRun, ScoringInputs};

use crate::cli::MergeArgs;
use crate::render::num;

pub fn merge(a: MergeArgs) -> anyhow::Result<ExitCode> {
    if !(a.confidence > 0.5 && a.confidence < 1.0) {
        bail!(
            "--confidence must be between 0.5 and 1 (e.g. 0.95), got {}",
            a.confidence
        );
    }
    let allow = Allow {
        partial: a.allow_partial,
        mismatch: a.allow_mismatch,
    };
    let command: Vec<String> = std::env::args().collect();
    let m = merge_runs_with(&a.runs, &a.out, a.confidence, allow, &command)?;
    println!(
        "{:<48} {:>8}  {:<22} {:<22} {:<22}",
        "method|workload|metric (ms)", "n", "p50 [CI]", "p95 [CI]", "p99 [CI]"
    );
    let ms = |v: f64| num(v / 1e3);
    for (tag, s) in &m.stats {
        let e = |x: &oae_core::stats::Estimate| {
            let b = |v: Option<f64>| v.map(ms).unwrap_or_else(|| "—".into());
            format!(
                "{} [{}, {}]{}",
                ms(x.value),
                b(x.ci_lo),
                b(x.ci_hi),
                if x.insufficient { "*" } else { "" }
            )
        };
        println!(
            "{:<48} {:>8}  {:<22} {:<22} {:<22}",
            tag.trim_end_matches("_us"),
            s.n,
            e(&s.p50),
            e(&s.p95),
            e(&s.p99)
        );
    }
    println!(
        "{} records from {} runs; merged directory: {}",
        m.records,
        a.runs.len(),
        m.dir.display()
    );
    for h in &m.mixed_hardware {
        eprintln!("warning: the cells ran on different hardware — {h}");
    }
    let Some(status) = m.run_status else {
        println!("(not cells of one suite run: merged.json summarises them; nothing to score)");
        return Ok(ExitCode::SUCCESS);
    };
    // Cells of one suite run make up its run directory: scored and reported like `oae run`'s.
    let partial = status != RunStatus::Complete;
    if partial {
        println!(
            "PARTIAL RUN: the merged suite run is `{}`; its scorecards cover only the cells merged",
            status.as_str()
        );
    }
    let inputs = ScoringInputs {
        allow_partial: partial,
        shipped: super::score::shipped_manifests(),
        ..ScoringInputs::default()
    };
    super::score::after_run(
        &m.dir,
        &inputs,
        &AfterRun {
            report: true,
            ..AfterRun::default()
        },
    )
}
