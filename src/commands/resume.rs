//! `oae run --resume DIR`: keep a stopped run's complete cells, run the others, merge.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;

use oae_harness::cells::{Selection, cells};
use oae_harness::merge::{Allow, merge_runs_with};
use oae_harness::resume::{self, PARTS};
use oae_harness::session::RunStatus;
use oae_harness::suite::Suite;
use oae_reports::flow::{AfterRun, ScoringInputs};

use super::run::{EMBEDDED, QUICK, SuiteOverrides, execute_suite};
use crate::cli::RunArgs;

/// The suite the run in `dir` ran, with its recorded overrides applied; refused when the
/// suite file is not where the run found it or has changed since.
fn recorded_suite(run: &oae_core::rundir::RunJson) -> anyhow::Result<Suite> {
    let file = &run.suite.file;
    let mut suite = if file == EMBEDDED {
        Suite::parse(EMBEDDED, QUICK, "quick")?
    } else {
        Suite::load(Path::new(file)).with_context(|| {
            format!("the run's suite file `{file}` (recorded in run.json) must be readable from here: resume the run from the directory it was started in")
        })?
    };
    if suite.sha256 != run.suite.sha256 {
        bail!(
            "the suite file `{file}` changed since the run (SHA-256 {} then, {} now): resuming would mix two suites; restore the file, or start a new run",
            run.suite.sha256,
            suite.sha256
        );
    }
    SuiteOverrides::recorded(&run.overrides).apply(&mut suite);
    Ok(suite)
}

pub fn resume(dir: &Path, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let original = resume::original_run(dir)?;
    let mut suite = recorded_suite(&original)?;
    if original.oae_version != env!("CARGO_PKG_VERSION") {
        bail!(
            "{}: the run was made by oae {}, this is {}; finish it with that version (cells of two versions are not one run)",
            dir.display(),
            original.oae_version,
            env!("CARGO_PKG_VERSION")
        );
    }
    let all = cells(&suite);
    let plan = resume::prepare(dir, &all)?;
    let missing = plan.missing(&all);
    println!(
        "resuming {}: {} of {} cell(s) complete, {} to run{}",
        dir.display(),
        plan.complete.len(),
        plan.complete.len() + missing.len(),
        missing.len(),
        if plan.dropped > 0 {
            format!(
                " ({} record(s) of an unfinished replay dropped; it runs again)",
                plan.dropped
            )
        } else {
            String::new()
        }
    );
    let inputs = ScoringInputs {
        site: args.site.clone(),
        manifests: args.manifests.clone(),
        shipped: super::score::shipped_manifests(),
        ..ScoringInputs::default()
    };
    let mut stopped = None;
    if !missing.is_empty() {
        let chosen: Vec<_> = missing.into_iter().cloned().collect();
        suite.selection = Selection::of(&suite, &chosen);
        let mut overrides = SuiteOverrides::recorded(&original.overrides).apply(&mut suite);
        overrides.insert("cells".to_string(), json!(chosen));
        overrides.insert("cells_total".to_string(), json!(all.len()));
        let (result, stop) = execute_suite(suite, overrides, Some(plan.next_part.clone()), &inputs, args.quiet)?;
        if result.status != RunStatus::Complete {
            stopped = Some(super::run::aborted(&result, &stop));
        }
    }
    // The parts make the run again: merged beside them, then moved up into DIR.
    let staging = dir.join(".merging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    let command: Vec<String> = std::env::args().collect();
    let merged = merge_runs_with(
        &plan.parts()?,
        &staging,
        original.run.confidence,
        Allow {
            partial: true,
            mismatch: false,
        },
        &command,
    )?;
    for e in std::fs::read_dir(&staging)? {
        let e = e?;
        std::fs::rename(e.path(), dir.join(e.file_name()))
            .with_context(|| format!("moving {} into {}", e.path().display(), dir.display()))?;
    }
    std::fs::remove_dir(&staging).ok();
    println!(
        "{}: {} records from {} part(s) (under {}/{PARTS})",
        dir.display(),
        merged.records,
        plan.parts()?.len(),
        dir.display()
    );
    if let Some(code) = stopped {
        eprintln!(
            "the resumed cells did not all finish: `oae run --resume {}` again continues from here",
            dir.display()
        );
        return Ok(code);
    }
    match merged.run_status {
        Some(RunStatus::Complete) => super::score::after_run(
            dir,
            &inputs,
            &AfterRun {
                report: !args.no_report,
                noise: args.noise.clone(),
                ..AfterRun::default()
            },
        ),
        status => {
            eprintln!(
                "the resumed run is `{}`; `oae run --resume {}` again continues it",
                status.map_or("unknown", RunStatus::as_str),
                dir.display()
            );
            Ok(ExitCode::from(2))
        }
    }
}
