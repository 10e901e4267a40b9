//! `oae suite plan`: a suite's cells and their stable ids, for job arrays; `oae suite
//! slurm`: the job scripts that run them on a cluster.

use std::process::ExitCode;

use oae_harness::suite::Suite;
use oae_harness::{cells, slurm};
use oae_workloads::Limit;

use crate::cli::{CellRunArgs, SuiteCommand, SuiteSlurmArgs};

pub fn suite(cmd: SuiteCommand) -> anyhow::Result<ExitCode> {
    let a = match cmd {
        SuiteCommand::Plan(a) => a,
        SuiteCommand::Slurm(a) => return slurm(a),
    };
    let mut suite = match &a.suite {
        Some(path) => Suite::load(path)?,
        None => Suite::parse("suites/quick.toml (embedded)", super::run::QUICK, "quick")?,
    };
    apply(&a.run, &mut suite);
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

/// Applies the options to `suite`; returns them as `oae run` arguments.
fn apply(a: &CellRunArgs, suite: &mut Suite) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(seed) = a.seed {
        suite.run.seed = seed;
        args.extend(["--seed".to_string(), seed.to_string()]);
    }
    if let Some(n) = a.requests {
        suite.run.limit = Limit::Count(n);
        args.extend(["--requests".to_string(), n.to_string()]);
    }
    if let Some(n) = a.trials {
        suite.run.trials = n;
        args.extend(["--trials".to_string(), n.to_string()]);
    }
    args
}

/// `oae suite slurm`: writes the job scripts.
fn slurm(a: SuiteSlurmArgs) -> anyhow::Result<ExitCode> {
    let mut suite = Suite::load(&a.suite)?;
    let run_args = apply(&a.run, &mut suite);
    let n = cells::cells(&suite).len();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| std::path::Path::new("oae-slurm").join(&suite.name));
    std::fs::create_dir_all(out.join("logs"))
        .map_err(|e| anyhow::anyhow!("{}: cannot create the directory: {e}", out.display()))?;
    let abs = |p: &std::path::Path| -> anyhow::Result<std::path::PathBuf> {
        p.canonicalize().map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
    };
    let (out_abs, suite_abs) = (abs(&out)?, abs(&a.suite)?);
    let oae = match &a.oae {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let spec = slurm::ClusterSpec {
        partition: a.partition.clone(),
        gpus_per_cell: a.gpus_per_cell,
        time: a.time.clone(),
        retries: a.retries,
        image: a.image.clone(),
    };
    for (name, text) in slurm::scripts(&oae, &suite_abs, &run_args, &out_abs, &suite.name, n, &spec) {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", p.display()))?;
        if name.ends_with(".sh") || name.ends_with(".sbatch") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    println!(
        "{n} cells of {}: scripts in {} — `{}/submit.sh` submits the job array and the merge (afterok); k8s-indexed-job.yaml is the Kubernetes equivalent",
        suite.source.label,
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
