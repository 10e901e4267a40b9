//! Merging run directories: the same suite sharded across machines, or repeated runs.
//!
//! Histograms merge exactly (counts add, per tag); records are concatenated with the index
//! of the run they came from. Aborted runs are refused unless the caller allows partial
//! inputs, and then the merged provenance says which ones were partial.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::HarnessError;
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
        let run_path = dir.join("run.json");
        let run: Value = serde_json::from_slice(&read(&run_path, "no run.json here")?)
            .map_err(|e| HarnessError::Invalid(format!("{}: not valid JSON: {e}", run_path.display())))?;
        let status = run["status"].as_str().unwrap_or("unknown").to_string();
        if status != "complete" && !allow_partial {
            return Err(HarnessError::Invalid(format!(
                "{}: run status is `{status}`, not `complete`; pass --allow-partial to merge it anyway",
                dir.display()
            )));
        }
        logs.push(read(&dir.join("histograms.hlog"), "no histograms.hlog here")?);
        let jsonl_path = dir.join("requests.jsonl");
        let text = String::from_utf8(read(&jsonl_path, "no requests.jsonl here")?)
            .map_err(|_| HarnessError::Invalid(format!("{}: not UTF-8", jsonl_path.display())))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let mut v: Value = serde_json::from_str(line).map_err(|e| {
                HarnessError::Invalid(format!("{}:{}: not a JSON record: {e}", jsonl_path.display(), n + 1))
            })?;
            if let Value::Object(m) = &mut v {
                m.insert("run_index".into(), json!(i));
            }
            lines.push(v);
        }
        sources.push(json!({
            "run_index": i,
            "dir": dir.display().to_string(),
            "status": status,
            "suite": run["suite"],
            "seed": run["seed"],
            "git_sha": run["git_sha"],
            "schedule_hashes": run["workloads"].as_array().map(|w| w.iter().map(|x| json!({"workload": x["name"], "hash": x["schedule_hash"]})).collect::<Vec<_>>()),
        }));
    }
    let merged = merge_logs(&logs).map_err(|e| HarnessError::Invalid(format!("merging histograms.hlog: {e}")))?;
    let outdir = RunDir::create(out)?;
    let entries: Vec<_> = merged.iter().map(|(t, h)| (t.clone(), 0.0, 0.0, h.clone())).collect();
    let bytes = to_log(&entries).map_err(HarnessError::Invalid)?;
    outdir.write_atomic("histograms.hlog", &bytes)?;
    let mut jsonl = Vec::new();
    for v in &lines {
        serde_json::to_writer(&mut jsonl, v).map_err(|e| HarnessError::Invalid(e.to_string()))?;
        jsonl.push(b'\n');
    }
    outdir.write_atomic("requests.jsonl", &jsonl)?;
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
            "partial": sources.iter().any(|s| s["status"] != "complete"),
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
