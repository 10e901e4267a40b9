//! `oae score`, `oae report`, `oae gate`, and what `oae run` does with them at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use oae_reports::fmt_figure;
use oae_scorecards::gate::{self, Metric};
use oae_scorecards::score::{self, Options, Scorecards};
use oae_scorecards::{Manifest, RunData, ScoreError, Scoring, Site};

use crate::cli::{GateArgs, ReportArgs, ScoreArgs, ScoringArgs};

/// Every registered method's manifest: id → (label for errors, TOML text).
pub fn manifests() -> BTreeMap<String, (String, String)> {
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

/// Scoring options from the flags: the site file (or defaults), manifest overrides and the
/// baseline.
pub fn options(
    site: Option<&Path>,
    overrides: &[PathBuf],
    against: Option<String>,
    draws: Option<u64>,
) -> Result<Options, ScoreError> {
    let (site, site_source) = match site {
        None => (Site::default(), "defaults".to_string()),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| ScoreError::io(path, e))?;
            (
                Site::parse(&path.display().to_string(), &text)?,
                path.display().to_string(),
            )
        }
    };
    let mut manifest_overrides = BTreeMap::new();
    for path in overrides {
        let text = std::fs::read_to_string(path).map_err(|e| ScoreError::io(path, e))?;
        let m = Manifest::parse(&path.display().to_string(), &text)?;
        manifest_overrides.insert(m.method.clone(), m);
    }
    Ok(Options {
        site,
        site_source,
        manifests: manifests(),
        manifest_overrides,
        baseline: against,
        draws: draws.map(|d| d as usize),
        ..Options::default()
    })
}

fn load(dir: &Path, args: &ScoringArgs) -> Result<(RunData, Scorecards), ScoreError> {
    let opts = options(args.site.as_deref(), &args.manifests, args.against.clone(), args.draws)?;
    let data = RunData::load(dir, args.allow_partial)?;
    let cards = score::score(&data, &opts)?;
    Ok((data, cards))
}

/// Writes scorecards.json into `dir`.
fn write_scorecards(cards: &Scorecards, dir: &Path) -> Result<PathBuf, ScoreError> {
    let path = dir.join("scorecards.json");
    let bytes = serde_json::to_vec_pretty(cards).map_err(|e| ScoreError::Usage(format!("scorecards.json: {e}")))?;
    oae_reports::write_atomic(&path, &bytes)?;
    Ok(path)
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
    for s in oae_reports::headline_sentences(cards) {
        println!("  {s}");
    }
    for w in &cards.warnings {
        eprintln!("warning: {w}");
    }
}

pub fn score(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    let (_, cards) = load(&args.run_dir, &args.scoring)?;
    let path = write_scorecards(&cards, &args.run_dir)?;
    print_cards(&cards);
    println!("scorecards: {}", path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let (_, cards) = load(&args.run_dir, &args.scoring)?;
    let out = args.out.clone().unwrap_or_else(|| args.run_dir.clone());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    write_scorecards(&cards, &out)?;
    let files = oae_reports::write_all(&cards, &out)?;
    print_cards(&cards);
    println!("reports: {}", list(&files));
    Ok(ExitCode::SUCCESS)
}

fn list(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Metrics to gate: the flag's list, or the suite's.
fn metrics(names: &[String], suite: &[Metric]) -> Result<Vec<Metric>, ScoreError> {
    if names.is_empty() {
        return Ok(suite.to_vec());
    }
    names
        .iter()
        .map(|n| Metric::parse(n.trim()).map_err(|m| ScoreError::Usage(format!("--metrics: {m}"))))
        .collect()
}

/// Gate draws: enough for stable 95 % intervals, few enough to gate large runs quickly.
const GATE_DRAWS: usize = 400;

/// Compares two run directories; returns the report and the files written.
fn run_gate(
    baseline: &Path,
    current: &Path,
    scoring: &ScoringArgs,
    thresholds_flags: &[String],
    threshold_pct: Option<f64>,
    metric_names: &[String],
    out: &Path,
) -> Result<(gate::GateReport, Vec<PathBuf>), ScoreError> {
    let (bdata, bcards) = load(baseline, scoring)?;
    let (cdata, ccards) = load(current, scoring)?;
    let mut thresholds = Scoring::from_run(&cdata)?.thresholds;
    let metrics = metrics(metric_names, &thresholds.metrics)?;
    if let Some(p) = threshold_pct {
        if !(p.is_finite() && p >= 0.0) {
            return Err(ScoreError::Usage(format!(
                "--threshold-pct {p}: give a percentage >= 0"
            )));
        }
        thresholds.default_pct = p;
    }
    thresholds.apply_flags(thresholds_flags)?;
    let report = gate::compare(
        (&bdata, &bcards),
        (&cdata, &ccards),
        &thresholds,
        &metrics,
        GATE_DRAWS,
        0x0AE,
    );
    let files = oae_reports::gate::write(&report, out)?;
    Ok((report, files))
}

pub fn gate(args: GateArgs) -> anyhow::Result<ExitCode> {
    let out = args.out.clone().unwrap_or_else(|| args.current.clone());
    let (report, files) = run_gate(
        &args.baseline,
        &args.current,
        &args.scoring,
        &args.thresholds,
        args.threshold_pct,
        &args.metrics,
        &out,
    )?;
    print!("{}", oae_reports::gate::text(&report));
    println!("gate files: {}", list(&files));
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Where named baselines live: `$OAE_BASELINES_DIR`, else `oae-results/baselines`.
pub fn baselines_dir() -> PathBuf {
    std::env::var_os("OAE_BASELINES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("oae-results").join("baselines"))
}

/// Copies a finished run directory to baselines/NAME, replacing an older one whole.
fn save_baseline(run_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let root = baselines_dir();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let dest = root.join(name);
    let tmp = root.join(format!(".{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp)?;
    for entry in std::fs::read_dir(run_dir).with_context(|| format!("reading {}", run_dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), tmp.join(entry.file_name()))
                .with_context(|| format!("copying {} to {}", entry.path().display(), tmp.display()))?;
        }
    }
    if dest.exists() {
        std::fs::remove_dir_all(&dest).with_context(|| format!("replacing {}", dest.display()))?;
    }
    std::fs::rename(&tmp, &dest).with_context(|| format!("moving the baseline into {}", dest.display()))?;
    Ok(dest)
}

/// What `oae run` does after a complete run: reports, baseline saving, gating.
pub struct AfterRun<'a> {
    pub site: Option<&'a Path>,
    pub manifests: &'a [PathBuf],
    pub report: bool,
    pub save_baseline: Option<&'a str>,
    pub baseline: Option<&'a str>,
}

/// Returns the exit code the gate decides (success when there is no gate).
pub fn after_run(dir: &Path, after: &AfterRun) -> anyhow::Result<ExitCode> {
    let scoring = ScoringArgs {
        site: after.site.map(Path::to_path_buf),
        manifests: after.manifests.to_vec(),
        allow_partial: false,
        against: None,
        draws: None,
    };
    if after.report {
        let (_, cards) = load(dir, &scoring)?;
        write_scorecards(&cards, dir)?;
        oae_reports::write_all(&cards, dir)?;
        for s in oae_reports::headline_sentences(&cards) {
            println!("  {s}");
        }
        for w in &cards.warnings {
            eprintln!("warning: {w}");
        }
        println!(
            "reports: {} (leaderboard.html, summary.md, leaderboard.csv/.parquet/.json, scorecards.json)",
            dir.display()
        );
    }
    let mut code = ExitCode::SUCCESS;
    if let Some(name) = after.baseline {
        let base = baselines_dir().join(name);
        if !base.join("run.json").is_file() {
            anyhow::bail!(
                "no baseline named `{name}` in {}; save one first with `oae run … --save-baseline {name}`",
                baselines_dir().display()
            );
        }
        let (report, files) = run_gate(&base, dir, &scoring, &[], None, &[], dir)?;
        print!("{}", oae_reports::gate::text(&report));
        println!("gate files: {}", list(&files));
        if !report.passed {
            code = ExitCode::from(1);
        }
    }
    if let Some(name) = after.save_baseline {
        if code == ExitCode::SUCCESS {
            let dest = save_baseline(dir, name)?;
            println!("baseline `{name}` saved: {}", dest.display());
        } else {
            // A run that regressed must not become the reference the next run is held to.
            eprintln!("baseline `{name}` NOT saved: this run failed its gate");
        }
    }
    Ok(code)
}

/// Checks the suite's [score] and [gate] and builds run.json's `scoring` value.
pub fn scoring_for_run(suite: &oae_harness::suite::Suite) -> anyhow::Result<serde_json::Value> {
    let scoring = Scoring::from_suite(suite.score.as_ref(), suite.gate.as_ref())?;
    if let (Some(b), Some(table)) = (&scoring.baseline, &suite.score)
        && !suite.methods.iter().any(|m| &m.label == b)
    {
        let labels: Vec<&str> = suite.methods.iter().map(|m| m.label.as_str()).collect();
        return Err(table
            .error(
                "baseline",
                format!("no method labelled `{b}`; labels: {}", labels.join(", ")),
            )
            .into());
    }
    let all = manifests();
    let used: BTreeMap<String, String> = suite
        .methods
        .iter()
        .filter_map(|m| all.get(&m.id).map(|(_, text)| (m.id.clone(), text.clone())))
        .collect();
    Ok(scoring.to_json(&used))
}
