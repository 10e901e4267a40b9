//! `oae suite plan`: a suite's cells and their stable ids, for job arrays.

use std::process::ExitCode;

use oae_harness::cells;
use oae_harness::suite::Suite;
use oae_workloads::Limit;

use crate::cli::SuiteCommand;

pub fn suite(cmd: SuiteCommand) -> anyhow::Result<ExitCode> {
    let SuiteCommand::Plan(a) = cmd;
    let mut suite = match &a.suite {
        Some(path) => Suite::load(path)?,
        None => Suite::parse("suites/quick.toml (embedded)", super::run::QUICK, "quick")?,
    };
    if let Some(seed) = a.seed {
        suite.run.seed = seed;
    }
    if let Some(n) = a.requests {
        suite.run.limit = Limit::Count(n);
    }
    if let Some(n) = a.trials {
        suite.run.trials = n;
    }
    let all = cells::cells(&suite);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"suite": suite.source.label, "sha256": suite.sha256, "cells": all})
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>5}  {:<12}  {:<28} {:<24} {:>5}",
        "index", "id", "method", "workload", "trial"
    );
    for c in &all {
        println!(
            "{:>5}  {:<12}  {:<28} {:<24} {:>5}",
            c.index, c.id, c.method, c.workload, c.trial
        );
    }
    println!(
        "{} cells in {}; run one with `oae run{} --cell I` (or --cell auto in a job array of indices 0-{})",
        all.len(),
        suite.source.label,
        a.suite
            .as_ref()
            .map(|p| format!(" {}", p.display()))
            .unwrap_or_default(),
        all.len().saturating_sub(1)
    );
    Ok(ExitCode::SUCCESS)
}
