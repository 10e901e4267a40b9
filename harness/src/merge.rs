//! Merging run directories: the same suite sharded across machines, or repeated runs.
//!
//! Histograms merge exactly (counts add, per tag); records are concatenated with the index
//! of the run they came from. Every input is read through the typed run-directory schema
//! (`oae_core::rundir`). Aborted runs are refused unless the caller allows partial inputs,
//! and then the merged provenance says which ones were partial.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

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
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, HarnessError> {
    std::fs::read(path).map_err(|e| HarnessError::io(path, e, format!("{what}; pass directories written by `oae run`")))
}

/// Merges `runs` into `out` (created; must not exist or be empty).
pub fn merge_runs(runs: &[PathBuf], out: &Path, confidence: f64, allow_partial: bool) -> Result<Merged, HarnessError> {
    if runs.is_empty() {
        return Err(HarnessError::Invalid("give at least one run directory to merge".into()));
    }
    let mut sources = Vec::new();
    let mut logs = Vec::new();
    let mut lines = Vec::new();
    for (i, dir) in runs.iter().enumerate() {
        let run = read_run(dir).map_err(typed)?;
        if run.status != RunStatus::Complete && !allow_partial {
            return Err(HarnessError::Invalid(format!(
                "{}: run status is `{}`, not `complete`; pass --allow-partial to merge it anyway",
                dir.display(),
                run.status.as_str()
            )));
        }
        logs.push(read(&dir.join(HISTOGRAMS_HLOG), "no histograms.hlog here")?);
        for r in RecordReader::open(dir).map_err(typed)? {
            lines.push((i, r.map_err(typed)?.1));
        }
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
    let merged = merge_logs(&logs).map_err(|e| HarnessError::Invalid(format!("merging histograms.hlog: {e}")))?;
    let outdir = RunDir::create(out)?;
    let entries: Vec<_> = merged.iter().map(|(t, h)| (t.clone(), 0.0, 0.0, h.clone())).collect();
    let bytes = to_log(&entries).map_err(HarnessError::Invalid)?;
    outdir.write_atomic(HISTOGRAMS_HLOG, &bytes)?;
    let mut jsonl = Vec::new();
    for (run_index, record) in &lines {
        let row = MergedRecord {
            run_index: *run_index,
            record,
        };
        serde_json::to_writer(&mut jsonl, &row).map_err(|e| HarnessError::Invalid(e.to_string()))?;
        jsonl.push(b'\n');
    }
    outdir.write_atomic(REQUESTS_JSONL, &jsonl)?;
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
            "partial": sources.iter().any(|s| s["status"] != json!(RunStatus::Complete)),
            "records": lines.len(),
            "histograms": cells,
        }),
    )?;
    Ok(Merged {
        dir: out.to_path_buf(),
        stats,
        records: lines.len(),
    })
}
