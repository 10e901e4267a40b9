//! `oae score`, `oae report`, `oae gate`, and what `oae run` does at the end: arguments in,
//! `oae_reports::flow` does the work, text out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use oae_reports::flow::{self, AfterRun, GateRequest, ScoringInputs};
use oae_reports::{EXPORTERS, fmt_figure, fmt_num};
use oae_scorecards::score::Scorecards;

use oae_harness::session::RunStatus;
use oae_harness::suite::Suite;

use crate::cli::{CalibrateArgs, GateArgs, GateCommand, ReportArgs, ScoreArgs, ScoringArgs};

/// Every registered method's manifest: id → (label for errors, TOML text).
pub fn shipped_manifests() -> BTreeMap<String, (String, String)> {
    oae_methods::registry()
        .iter()
        .filter_map(|s| {
            let text = s.manifest()?;
            Some((
                s.id().to_string(),
                (format!("methods/src/{}/manifest.toml", s.id()), text.to_string()),
            ))
        })
        .collect()
}

/// The scoring inputs of the flags.
pub fn inputs(args: &ScoringArgs) -> ScoringInputs {
    ScoringInputs {
        site: args.site.clone(),
        manifests: args.manifests.clone(),
        allow_partial: args.allow_partial,
        against: args.against.clone(),
        draws: args.draws.map(|d| d as usize),
        rate_qps: args.rate,
        quality: args.quality.clone(),
        shipped: shipped_manifests(),
    }
}

/// The terminal summary of a scorecard set.
fn print_cards(cards: &Scorecards) {
    if cards.run.partial {
        println!(
            "PARTIAL RUN ({}): figures cover only what was recorded",
            cards.run.status
        );
    }
    println!(
        "{:<20} {:<20} {:<13} {:<26} {:<26} {:>12}",
        "method", "workload", "verdict", "OAE ratio [CI]", "USD/1k good [CI]", "break-even"
    );
    for r in &cards.rows {
        println!(
            "{:<20} {:<20} {:<13} {:<26} {:<26} {:>12}",
            r.method,
            r.workload,
            r.verdict.name(),
            r.oae_ratio.as_ref().map(fmt_figure).unwrap_or_else(|| "—".into()),
            fmt_figure(&r.cost_per_1k_good_usd),
            r.break_even
                .as_ref()
                .map(|b| oae_reports::table::break_even_display(b.point))
                .unwrap_or_else(|| "—".into()),
        );
    }
    print_verdicts(cards);
}

/// The verdict sentences and the warnings.
fn print_verdicts(cards: &Scorecards) {
    for n in &cards.not_applicable {
        println!("  {} is not applicable to this suite: {}", n.label, n.reason);
    }
    for s in oae_reports::headline_sentences(cards) {
        println!("  {s}");
    }
    for w in &cards.warnings {
        eprintln!("warning: {w}");
    }
}

fn list(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn score(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    let (_, cards) = flow::score_dir(&args.run_dir, &inputs(&args.scoring))?;
    let path = flow::write_scorecards(&cards, &args.run_dir)?;
    print_cards(&cards);
    println!("scorecards: {}", path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let out = args.out.clone().unwrap_or_else(|| args.run_dir.clone());
    let (cards, files) = flow::report_dir(&args.run_dir, &out, &inputs(&args.scoring))?;
    print_cards(&cards);
    println!("reports: {}", list(&files));
    Ok(ExitCode::SUCCESS)
}

fn gate_exit(report: &oae_scorecards::GateReport, files: &[PathBuf]) -> ExitCode {
    print!("{}", oae_reports::gate::text(report));
    println!("gate files: {}", list(files));
    if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub fn gate(args: GateArgs) -> anyhow::Result<ExitCode> {
    if let Some(GateCommand::Calibrate(c)) = args.command {
        return calibrate(c);
    }
    let (Some(baseline), Some(current)) = (args.baseline, args.current) else {
        anyhow::bail!("give --baseline and --current (or `oae gate calibrate DIR...`)");
    };
    let mut req = GateRequest {
        out: args.out.clone().unwrap_or_else(|| current.clone()),
        baseline,
        current,
        thresholds: args.thresholds,
        threshold_pct: args.threshold_pct,
        metrics: args.metrics,
        noise: args.noise,
        strict_energy: args.strict_energy,
        no_noise_floor: args.no_noise_floor,
    };
    let inputs = inputs(&args.scoring);
    if !args.paired {
        let (report, files) = flow::gate_dirs(&req, &inputs)?;
        return Ok(gate_exit(&report, &files));
    }
    let base = Suite::load(&req.baseline)?;
    let current = Suite::load(&req.current)?;
    let mut suite = Suite::paired(base, current, (flow::PAIRED_BASELINE, flow::PAIRED_CURRENT))?;
    suite.run.trials = args.trials;
    let overrides = [("trials".to_string(), serde_json::json!(args.trials))].into();
    let (result, stop) = super::run::execute_suite(suite, overrides, args.out.clone(), &inputs, args.quiet)?;
    if result.status != RunStatus::Complete {
        return Ok(super::run::aborted(&result, &stop));
    }
    req.out = result.dir.clone();
    let (report, files) = flow::gate_paired(&result.dir, &req, &inputs)?;
    Ok(gate_exit(&report, &files))
}

fn calibrate(c: CalibrateArgs) -> anyhow::Result<ExitCode> {
    let noise = flow::calibrate_dirs(&c.runs, &inputs(&c.scoring), c.k, &c.out)?;
    println!(
        "run-to-run spread over {} A/A runs (standard deviation; % of the mean, points for shares) and the floor under each threshold (k = {}):",
        noise.runs.len(),
        noise.k
    );
    println!("  {:<24} {:>10} {:>10}", "metric", "spread", "floor");
    for (metric, sd) in &noise.metrics {
        println!(
            "  {metric:<24} {:>10} {:>10}",
            fmt_num(*sd),
            fmt_num(noise.k * std::f64::consts::SQRT_2 * sd)
        );
    }
    if noise.runs.len() < 5 {
        println!(
            "note: a spread from {} runs is rough (from 3 runs the true one lies within 0.52–6.3 × the estimate, 95 %); 5 or more A/A runs are recommended",
            noise.runs.len()
        );
    }
    println!(
        "noise file: {} (use: oae gate --noise {} …)",
        c.out.display(),
        c.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// After a complete run: reports, the gate against `--baseline`, `--save-baseline`. Returns
/// the exit code the gate decides (success when there is none).
pub fn after_run(dir: &Path, scoring: &ScoringInputs, after: &AfterRun) -> anyhow::Result<ExitCode> {
    let outcome = flow::after_run(dir, scoring, after)?;
    if let Some(cards) = &outcome.cards {
        print_verdicts(cards);
        let names: Vec<&str> = EXPORTERS.iter().map(|e| e.file_name()).collect();
        println!("reports: {} ({}, scorecards.json)", dir.display(), names.join(", "));
    }
    let mut code = ExitCode::SUCCESS;
    if let Some((report, files)) = &outcome.gate {
        code = gate_exit(report, files);
    }
    if let Some(path) = &outcome.saved {
        println!(
            "baseline `{}` saved: {}",
            after.save_baseline.as_deref().unwrap_or_default(),
            path.display()
        );
    }
    if let Some(name) = &outcome.not_saved {
        // A run that regressed must not become the reference the next run is held to.
        eprintln!("baseline `{name}` NOT saved: this run failed its gate");
    }
    Ok(code)
}
