//! `oae leaderboard`: a static site from many run directories — runs on other machines,
//! sites and dates side by side, ranked only against rows of the same benchmark definition,
//! every row with its provenance and flags, each run's own report one click away.
//!
//! The site directory holds `index.html` ([`page`]), `leaderboard.csv`, `.parquet` and
//! `.json` (every row, every column: [`board`]), and `runs/<id>/index.html` (each run's
//! single-run report). It is built in a temporary directory beside the target and renamed
//! into place, so a failed build never leaves a half-written site; the same inputs give the
//! same bytes (sorted rows, ids from content, no clock).

pub mod board;
pub mod page;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use oae_scorecards::ScoreError;

use crate::flow::ScoringInputs;
use crate::{EXPORTERS, Report};
use board::LoadedRun;

/// The schema tag of the site's leaderboard.json.
pub const SCHEMA: &str = "oae-site/1";

/// What to build.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// The page title.
    pub title: String,
    /// Scoring inputs (a site file re-prices every run under one set of assumptions).
    pub inputs: ScoringInputs,
    /// Allow runs of different benchmark definitions (each gets its own table).
    pub allow_mixed: bool,
}

/// What was built.
#[derive(Debug)]
pub struct Built {
    /// The site directory.
    pub dir: PathBuf,
    /// Runs read.
    pub runs: usize,
    /// Rows.
    pub rows: usize,
    /// Distinct benchmark definitions.
    pub definitions: usize,
    /// Files written, relative to the site directory.
    pub files: Vec<String>,
}

fn usage(msg: String) -> ScoreError {
    ScoreError::Usage(msg)
}

/// Reads and scores every run, on as many threads as the machine has (order kept).
fn load_all(dirs: &[PathBuf], inputs: &ScoringInputs) -> Result<Vec<LoadedRun>, ScoreError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(dirs.len().max(1));
    let chunk = dirs.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<LoadedRun>, ScoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = dirs
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|d| board::load(d, inputs)).collect::<Result<Vec<_>, _>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(usage("a thread scoring runs panicked".into())))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(dirs.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// Refuses the same run given twice, and runs of different definitions unless allowed.
fn check(runs: &[LoadedRun], allow_mixed: bool) -> Result<(), ScoreError> {
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for r in runs {
        if let Some(other) = seen.insert(&r.id, &r.dir) {
            return Err(usage(format!(
                "{} and {} are the same run (identical run.json, id {}); give each run once",
                other.display(),
                r.dir.display(),
                r.id
            )));
        }
    }
    let mut defs: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in runs {
        defs.entry(&r.definition)
            .or_default()
            .push(format!("{} (suite “{}”)", r.dir.display(), r.run.suite.name));
    }
    if defs.len() > 1 && !allow_mixed {
        let list: Vec<String> = defs
            .iter()
            .map(|(d, dirs)| format!("definition {d}: {}", dirs.join(", ")))
            .collect();
        return Err(usage(format!(
            "these runs measure {} different benchmark definitions (suite file, workloads' schedules and datasets, or schemas differ), which must not be ranked together — {}; pass --allow-mixed to publish them side by side, each definition in its own table",
            defs.len(),
            list.join("; ")
        )));
    }
    Ok(())
}

/// Where the new site is built, and where an old one is set aside, beside `out`.
fn beside(out: &Path, what: &str) -> PathBuf {
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("site");
    out.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

/// Whether `dir` holds a site this command built (it may be replaced).
fn is_site(dir: &Path) -> bool {
    std::fs::read(dir.join("leaderboard.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["schema"] == SCHEMA)
}

/// Builds the site of `dirs` into `out`.
pub fn build(dirs: &[PathBuf], out: &Path, opts: &SiteOptions) -> Result<Built, ScoreError> {
    if dirs.is_empty() {
        return Err(usage("give at least one run directory".into()));
    }
    if out.exists()
        && !is_site(out)
        && std::fs::read_dir(out)
            .map_err(|e| ScoreError::io(out, e))?
            .next()
            .is_some()
    {
        return Err(usage(format!(
            "{}: exists and is not a site `oae leaderboard` built; choose an empty or new --out directory",
            out.display()
        )));
    }
    let mut runs = load_all(dirs, &opts.inputs)?;
    check(&runs, opts.allow_mixed)?;
    // Whatever order the directories were given in.
    runs.sort_by(|a, b| (&a.definition, &a.id).cmp(&(&b.definition, &b.id)));
    let at = board::order(&runs);
    let cols = board::columns(&runs, &at);
    let site_source = runs
        .first()
        .map(|r| r.cards.site_source.clone())
        .unwrap_or_else(|| "defaults".into());

    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let html = page::render(&opts.title, &runs, &at, &cols, &site_source)
        .map_err(|e| usage(format!("rendering index.html: {e}")))?;
    files.push(("index.html".into(), html.into_bytes()));
    let csv = crate::exporters::csv::bytes(&cols, at.len()).map_err(|e| usage(format!("leaderboard.csv: {e}")))?;
    files.push(("leaderboard.csv".into(), csv));
    let parquet =
        crate::exporters::parquet::bytes(&cols, at.len()).map_err(|e| usage(format!("leaderboard.parquet: {e}")))?;
    files.push(("leaderboard.parquet".into(), parquet));
    let mut definitions: Vec<&str> = runs.iter().map(|r| r.definition.as_str()).collect();
    definitions.sort();
    definitions.dedup();
    let doc = json!({
        "schema": SCHEMA,
        "title": opts.title,
        "site_source": site_source,
        "definitions": definitions,
        "runs": runs.iter().map(|r| json!({
            "id": r.id,
            "dir": r.dir.display().to_string(),
            "definition": r.definition,
            "suite": r.run.suite.name,
            "status": r.run.status,
            "started_utc": r.run.started_utc,
            "oae_version": r.run.oae_version,
            "git_sha": r.run.git_sha,
            "page": format!("runs/{}/index.html", r.id),
        })).collect::<Vec<_>>(),
        "provenance": crate::exporters::json::provenance(&cols),
        "rows": crate::exporters::json::rows(&cols, at.len()),
    });
    let mut json = serde_json::to_vec_pretty(&doc).map_err(|e| usage(format!("leaderboard.json: {e}")))?;
    json.push(b'\n');
    files.push(("leaderboard.json".into(), json));
    let html_exporter = EXPORTERS
        .iter()
        .find(|e| e.name() == "html")
        .expect("the html exporter is registered");
    for r in &runs {
        let page = html_exporter
            .render(&Report::new(&r.cards))
            .map_err(|e| usage(format!("the page of {}: {e}", r.dir.display())))?;
        files.push((format!("runs/{}/index.html", r.id), page));
    }

    // Written beside the target, then renamed into place.
    let tmp = beside(out, "building");
    let _ = std::fs::remove_dir_all(&tmp);
    let written = (|| -> Result<(), ScoreError> {
        for (name, bytes) in &files {
            let path = tmp.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| ScoreError::io(parent, e))?;
            }
            std::fs::write(&path, bytes).map_err(|e| ScoreError::io(&path, e))?;
        }
        let old = beside(out, "old");
        if out.exists() {
            std::fs::rename(out, &old).map_err(|e| ScoreError::io(out, e))?;
        }
        std::fs::rename(&tmp, out).map_err(|e| ScoreError::io(out, e))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(Built {
        dir: out.to_path_buf(),
        runs: runs.len(),
        rows: at.len(),
        definitions: definitions.len(),
        files: files.into_iter().map(|(n, _)| n).collect(),
    })
}

#[cfg(test)]
mod tests;
