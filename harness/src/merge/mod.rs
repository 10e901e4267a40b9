//! Merging run directories: the same suite sharded across machines, or repeated runs.
//!
//! Histograms merge exactly (counts add, per tag). Cells of one suite run (`oae run --cell`)
//! merge into that suite's run directory — run.json, summary.json recomputed over the union,
//! requests.jsonl — which scores like a one-machine run ([`run`]); other runs' records are
//! concatenated with the index of the run they came from, with merged.json as the only
//! summary. Every input is read through the typed run-directory schema (`oae_core::rundir`).
//! Aborted runs are refused unless the caller allows partial inputs, and then the merged
//! provenance says which ones were partial.

mod run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use oae_core::rundir::{HISTOGRAMS_HLOG, REQUESTS_JSONL, RecordReader, RunDirError, RunStatus, read_run};

use crate::{HarnessError, RequestRecord};

/// A record of a merged directory: the run it came from, then the record's own fields.
#[derive(Serialize)]
struct MergedRecord<'a> {
    run_index: usize,
    #[serde(flatten)]
    record: &'a RequestRecord,
}

fn typed(e: RunDirError) -> HarnessError {
    HarnessError::Invalid(e.to_string())
}
use crate::histograms::{HistogramStat, describe, merge_logs, to_log};
use crate::rundir::RunDir;

/// What a merge produced.
#[derive(Debug)]
pub struct Merged {
    /// The output directory.
    pub dir: PathBuf,
    /// (tag, statistics in µs) per merged histogram.
    pub stats: Vec<(String, HistogramStat)>,
    /// Records written.
    pub records: usize,
    /// The status of the suite run the cells made up, when the inputs were cells of one suite
    /// run (the directory then holds run.json and summary.json and can be scored).
    pub run_status: Option<RunStatus>,
    /// The cells' hardware, when it differs between cells (one line per kind).
    pub mixed_hardware: Vec<String>,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, HarnessError> {
    std::fs::read(path).map_err(|e| HarnessError::io(path, e, format!("{what}; pass directories written by `oae run`")))
}

/// What may differ between merged runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allow {
    /// Runs that did not complete, and missing cells of a suite run cell by cell.
    pub partial: bool,
    /// Cells of different suites, seeds, request counts or oae versions.
    pub mismatch: bool,
}

/// The cells of a suite that a set of cell runs (`oae run --cell`) covers: checked to come
/// from one suite run alike (same suite file, oae version and overrides), each cell once;
/// `None` when no input is a cell run.
fn check_cells(
    runs: &[PathBuf],
    jsons: &[oae_core::rundir::RunJson],
    allow: Allow,
) -> Result<Option<serde_json::Value>, HarnessError> {
    let is_cell = |r: &oae_core::rundir::RunJson| r.overrides.contains_key("cells");
    if !jsons.iter().any(is_cell) {
        return Ok(None);
    }
    let mismatch = |what: String| {
        HarnessError::Invalid(format!(
            "{what}; these are not cells of one run of one suite (pass --allow-mismatch to merge them anyway)"
        ))
    };
    let first = &jsons[0];
    let mut seen: BTreeMap<u64, (String, usize)> = BTreeMap::new();
    let mut total = None;
    for (i, r) in jsons.iter().enumerate() {
        let dir = runs[i].display();
        if !is_cell(r) {
            if !allow.mismatch {
                return Err(mismatch(format!("{dir} is a whole run, the others cells")));
            }
            continue;
        }
        if !allow.mismatch {
            for (what, a, b) in [
                ("suite file (SHA-256)", &first.suite.sha256, &r.suite.sha256),
                ("oae version", &first.oae_version, &r.oae_version),
            ] {
                if a != b {
                    return Err(mismatch(format!(
                        "{dir}: {what} {b} differs from {}'s {a}",
                        runs[0].display()
                    )));
                }
            }
            if settings(first) != settings(r) || first.seed != r.seed {
                return Err(mismatch(format!(
                    "{dir}: seed or command-line overrides differ from {}'s",
                    runs[0].display()
                )));
            }
        }
        total = total.or(r.overrides.get("cells_total").and_then(|v| v.as_u64()));
        for c in r.overrides["cells"].as_array().into_iter().flatten() {
            let (Some(index), Some(id)) = (c["index"].as_u64(), c["id"].as_str()) else {
                return Err(HarnessError::Invalid(format!(
                    "{dir}/run.json: overrides.cells has an entry without index and id"
                )));
            };
            if let Some((_, j)) = seen.insert(index, (id.to_string(), i)) {
                return Err(HarnessError::Invalid(format!(
                    "cell {index} ({id}) is in both {} and {dir}: merge each cell once",
                    runs[j].display()
                )));
            }
        }
    }
    let missing: Vec<u64> = match total {
        Some(n) => (0..n).filter(|i| !seen.contains_key(i)).collect(),
        None => Vec::new(),
    };
    if !missing.is_empty() && !allow.partial {
        let list: Vec<String> = missing.iter().map(u64::to_string).collect();
        return Err(HarnessError::Invalid(format!(
            "cells {} of {} are missing (`oae suite plan` lists them; run them with `oae run --cell I`), or pass --allow-partial",
            list.join(", "),
            total.unwrap_or(0)
        )));
    }
    Ok(Some(json!({
        "total": total,
        "merged": seen.iter().map(|(i, (id, _))| json!({"index": i, "id": id})).collect::<Vec<_>>(),
        "missing": missing,
    })))
}

/// Merges `runs` into `out` (created; must not exist or be empty).
pub fn merge_runs(runs: &[PathBuf], out: &Path, confidence: f64, allow_partial: bool) -> Result<Merged, HarnessError> {
    merge_runs_with(
        runs,
        out,
        confidence,
        Allow {
            partial: allow_partial,
            mismatch: false,
        },
        &["oae".into(), "merge".into()],
    )
}

/// Whether every run is a cell run of one suite run alike (suite file, oae version, seed and
/// overrides other than the cells).
fn one_suite_run(jsons: &[oae_core::rundir::RunJson]) -> bool {
    let first = &jsons[0];
    jsons.iter().all(|r| {
        r.overrides.contains_key("cells")
            && r.suite.sha256 == first.suite.sha256
            && r.oae_version == first.oae_version
            && r.seed == first.seed
            && settings(r) == settings(first)
    })
}

/// A run's command-line overrides other than the cells it ran.
fn settings(r: &oae_core::rundir::RunJson) -> BTreeMap<String, Value> {
    let mut o = r.overrides.clone();
    o.remove("cells");
    o
}

/// [`merge_runs`] with what may differ; `command` is recorded as the merged run's command.
pub fn merge_runs_with(
    runs: &[PathBuf],
    out: &Path,
    confidence: f64,
    allow: Allow,
    command: &[String],
) -> Result<Merged, HarnessError> {
    let allow_partial = allow.partial;
    if runs.is_empty() {
        return Err(HarnessError::Invalid("give at least one run directory to merge".into()));
    }
    let jsons = runs
        .iter()
        .map(|d| read_run(d).map_err(typed))
        .collect::<Result<Vec<_>, _>>()?;
    let covered = check_cells(runs, &jsons, allow)?;
    if let Some((dir, run)) = runs
        .iter()
        .zip(&jsons)
        .find(|(_, r)| r.status != RunStatus::Complete && !allow_partial)
    {
        return Err(HarnessError::Invalid(format!(
            "{}: run status is `{}`, not `complete`; pass --allow-partial to merge it anyway",
            dir.display(),
            run.status.as_str()
        )));
    }
    // Every input's histograms first: a merge that cannot be finished writes nothing.
    let mut logs = Vec::new();
    for (dir, run) in runs.iter().zip(&jsons) {
        logs.push(histograms_of(dir, run, allow_partial)?);
    }
    let merged = merge_logs(&logs).map_err(|e| HarnessError::Invalid(format!("merging histograms.hlog: {e}")))?;
    let outdir = RunDir::create(out)?;
    let entries: Vec<_> = merged.iter().map(|(t, h)| (t.clone(), 0.0, 0.0, h.clone())).collect();
    let bytes = to_log(&entries).map_err(HarnessError::Invalid)?;
    outdir.write_atomic(HISTOGRAMS_HLOG, &bytes)?;
    let suite_run = covered.is_some() && one_suite_run(&jsons);
    let (records, built, mixed_hardware) = if suite_run {
        let mut cells = runs
            .iter()
            .zip(&jsons)
            .map(|(d, r)| run::CellRun::read(d, r))
            .collect::<Result<Vec<_>, _>>()?;
        cells.sort_by_key(|c| c.first_cell());
        let c = covered.as_ref().expect("cells checked");
        let coverage = run::Coverage {
            total: c["total"].as_u64(),
            missing: c["missing"]
                .as_array()
                .map(|m| m.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default(),
        };
        let b = run::build(&cells, &coverage, &outdir, command)?;
        (b.records, Some(b), run::distinct_hardware(&cells))
    } else {
        (concatenate(runs, out)?, None, Vec::new())
    };
    let mut sources = Vec::new();
    for (i, (dir, run)) in runs.iter().zip(jsons).enumerate() {
        sources.push(json!({
            "run_index": i,
            "dir": dir.display().to_string(),
            "status": run.status,
            "suite": run.suite,
            "seed": run.seed,
            "git_sha": run.git_sha,
            "schedule_hashes": run.workloads.iter().map(|w| json!({"workload": w.name, "hash": w.schedule_hash})).collect::<Vec<_>>(),
        }));
    }
    let stats: Vec<(String, HistogramStat)> = merged
        .iter()
        .filter_map(|(t, h)| describe(h, confidence).map(|s| (t.clone(), s)))
        .collect();
    let cells: BTreeMap<&str, &HistogramStat> = stats.iter().map(|(t, s)| (t.as_str(), s)).collect();
    outdir.write_json(
        "merged.json",
        &json!({
            "oae_version": crate::VERSION,
            "unit": "microseconds",
            "confidence": confidence,
            "sources": sources,
            "partial": sources.iter().any(|s| s["status"] != json!(RunStatus::Complete))
                || covered.as_ref().is_some_and(|c| c["missing"].as_array().is_some_and(|m| !m.is_empty())),
            "cells": covered,
            "scored_run": suite_run,
            "mixed_hardware": mixed_hardware,
            "records": records,
            "histograms": cells,
        }),
    )?;
    // run.json last: a directory with one is whole.
    let run_status = match built {
        Some(b) => {
            outdir.write_summary(b.run.status, &b.summaries)?;
            outdir.write_json(oae_core::rundir::RUN_JSON, &b.run)?;
            Some(b.run.status)
        }
        None => None,
    };
    Ok(Merged {
        dir: out.to_path_buf(),
        stats,
        records,
        run_status,
        mixed_hardware,
    })
}

/// A run's histograms.hlog; rebuilt from its records when a run that did not complete (killed
/// before writing it) is merged with `allow_partial`.
fn histograms_of(dir: &Path, run: &oae_core::rundir::RunJson, allow_partial: bool) -> Result<Vec<u8>, HarnessError> {
    let path = dir.join(HISTOGRAMS_HLOG);
    if path.exists() || run.status == RunStatus::Complete || !allow_partial {
        return read(&path, "no histograms.hlog here");
    }
    let records = RecordReader::open(dir)
        .map_err(typed)?
        .map(|r| r.map(|(_, r)| r).map_err(typed))
        .collect::<Result<Vec<RequestRecord>, _>>()?;
    crate::rundir::histograms_from_records(&records, &run.replays)
}

/// Concatenates the runs' records into `out`'s requests.jsonl, each with its run's index.
fn concatenate(runs: &[PathBuf], out: &Path) -> Result<usize, HarnessError> {
    // Records stream through: read one, write one (64 runs of 10k records took 2.1 GB when
    // they were all held); the file gets its name only when every record is in it.
    let tmp = out.join(format!("{REQUESTS_JSONL}.tmp"));
    let streamed = (|| -> Result<usize, HarnessError> {
        use std::io::Write;
        let file = std::fs::File::create(&tmp).map_err(|e| HarnessError::io(&tmp, e, "cannot create"))?;
        let mut w = std::io::BufWriter::new(file);
        let mut n = 0;
        for (i, dir) in runs.iter().enumerate() {
            for r in RecordReader::open(dir).map_err(typed)? {
                let row = MergedRecord {
                    run_index: i,
                    record: &r.map_err(typed)?.1,
                };
                serde_json::to_writer(&mut w, &row).map_err(|e| HarnessError::Invalid(e.to_string()))?;
                w.write_all(b"\n")
                    .map_err(|e| HarnessError::io(&tmp, e, "cannot write"))?;
                n += 1;
            }
        }
        w.into_inner()
            .map_err(|e| HarnessError::io(&tmp, e.into_error(), "cannot write"))?
            .sync_all()
            .map_err(|e| HarnessError::io(&tmp, e, "cannot write"))?;
        std::fs::rename(&tmp, out.join(REQUESTS_JSONL)).map_err(|e| HarnessError::io(&tmp, e, "cannot rename"))?;
        Ok(n)
    })();
    if streamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    streamed
}
