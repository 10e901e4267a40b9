//! The run directory: every file a run writes, written so nothing is lost.
//!
//! - `run.json` — provenance and status; written at start (`running`) and rewritten
//!   atomically at the end (`complete` or `aborted`).
//! - `requests.jsonl` — one [`RequestRecord`] per line, appended with one `write` as each
//!   request completes (a crash keeps every finished record); rewritten atomically at the
//!   end with the per-request energy filled in.
//! - `summary.json` — per (method, workload) statistics with confidence intervals.
//! - `timeline.csv` — every meter sample.
//! - `histograms.hlog` — HDR latency histograms (µs) in the standard interval-log format,
//!   one tagged interval per (method, workload, metric), mergeable across runs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use oae_core::rundir::{
    CellSummary, HISTOGRAMS_HLOG, REQUESTS_JSONL, RunStatus, SCHEMA_VERSION, SUMMARY_JSON, SummaryJson, TIMELINE_CSV,
};

use crate::meters::Timeline;
use crate::session::CellHistograms;
use crate::{HarnessError, RequestRecord};

/// An open run directory.
pub struct RunDir {
    path: PathBuf,
    requests: File,
    written: usize,
}

impl RunDir {
    /// `ROOT/<suite>/<UTC stamp>`, the default location of a run.
    pub fn default_path(root: &Path, suite: &str, stamp: &str) -> PathBuf {
        root.join(suite).join(stamp)
    }

    /// Creates the directory (it must not exist or be empty) and opens requests.jsonl.
    pub fn create(path: &Path) -> Result<RunDir, HarnessError> {
        create_empty_dir(path)?;
        let file = path.join(REQUESTS_JSONL);
        let requests = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(|e| HarnessError::io(&file, e, "choose an --out directory you can write to"))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            requests,
            written: 0,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as a single line with a single write.
    pub fn append_record(&mut self, record: &RequestRecord) -> Result<(), HarnessError> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| HarnessError::Invalid(format!("serializing a record: {e}")))?;
        line.push(b'\n');
        self.requests
            .write_all(&line)
            .map_err(|e| HarnessError::io(self.path.join(REQUESTS_JSONL), e, "check free disk space"))?;
        self.written += 1;
        Ok(())
    }

    /// Records in requests.jsonl now.
    pub fn records_written(&self) -> usize {
        self.written
    }

    /// Writes `name` atomically (temporary file, then rename).
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), HarnessError> {
        write_atomic_in(&self.path, name, bytes)
    }

    /// Writes `name` as pretty JSON, atomically.
    pub fn write_json(&self, name: &str, value: &impl serde::Serialize) -> Result<(), HarnessError> {
        let mut bytes =
            serde_json::to_vec_pretty(value).map_err(|e| HarnessError::Invalid(format!("serializing {name}: {e}")))?;
        bytes.push(b'\n');
        self.write_atomic(name, &bytes)
    }

    /// Writes `name` as pretty JSON atomically, or — when that fails (no room for the
    /// temporary copy) — by overwriting the file in place.
    pub fn write_json_or_in_place(&self, name: &str, value: &impl serde::Serialize) -> Result<(), HarnessError> {
        let Err(atomic) = self.write_json(name, value) else {
            return Ok(());
        };
        let mut bytes =
            serde_json::to_vec_pretty(value).map_err(|e| HarnessError::Invalid(format!("serializing {name}: {e}")))?;
        bytes.push(b'\n');
        let target = self.path.join(name);
        std::fs::write(&target, &bytes).map_err(|_| atomic)
    }

    /// Writes summary.json.
    pub fn write_summary(&self, status: RunStatus, cells: &[CellSummary]) -> Result<(), HarnessError> {
        let summary = SummaryJson {
            schema_version: SCHEMA_VERSION,
            status,
            cells: cells.to_vec(),
        };
        self.write_json(SUMMARY_JSON, &summary)
    }

    /// Replaces requests.jsonl with `records` (same records, energy filled in), atomically.
    pub fn rewrite_records(&mut self, records: &[RequestRecord]) -> Result<(), HarnessError> {
        let mut out = Vec::with_capacity(records.len() * 512);
        for r in records {
            serde_json::to_writer(&mut out, r)
                .map_err(|e| HarnessError::Invalid(format!("serializing a record: {e}")))?;
            out.push(b'\n');
        }
        self.write_atomic(REQUESTS_JSONL, &out)?;
        self.written = records.len();
        let file = self.path.join(REQUESTS_JSONL);
        self.requests = OpenOptions::new()
            .append(true)
            .open(&file)
            .map_err(|e| HarnessError::io(&file, e, "check permissions"))?;
        Ok(())
    }

    /// Writes timeline.csv: `t_s,domain,source,kind,energy_j,power_w`.
    pub fn write_timeline(&self, timeline: &Timeline) -> Result<(), HarnessError> {
        self.write_atomic(TIMELINE_CSV, timeline_csv(timeline).as_bytes())
    }

    /// Writes histograms.hlog: one interval per (method, workload, metric), tagged
    /// `method|workload|metric` (see [`crate::histograms`]).
    pub fn write_histograms(&self, cells: &[CellHistograms]) -> Result<(), HarnessError> {
        self.write_atomic(HISTOGRAMS_HLOG, &histograms_log(cells)?)
    }
}

/// histograms.hlog's bytes rebuilt from `records` (a run killed before it wrote its
/// histograms, or a part trimmed to its complete cells): one interval per (method, workload),
/// starting where its first replay in `replays` started, lasting to its last record's end.
pub fn histograms_from_records(
    records: &[RequestRecord],
    replays: &[oae_core::rundir::ReplayInfo],
) -> Result<Vec<u8>, HarnessError> {
    let mut cells: Vec<CellHistograms> = Vec::new();
    for r in records {
        let i = match cells
            .iter()
            .position(|h| h.method == r.method && h.workload == r.workload)
        {
            Some(i) => i,
            None => {
                let start_s = replays
                    .iter()
                    .find(|p| p.method == r.method && p.workload == r.workload)
                    .map_or(0.0, |p| p.start_s);
                cells.push(CellHistograms {
                    method: r.method.clone(),
                    workload: r.workload.clone(),
                    start_s,
                    duration_s: 0.0,
                    hists: crate::runner::Histograms::default(),
                });
                cells.len() - 1
            }
        };
        cells[i].hists.record(r);
        cells[i].duration_s = cells[i].duration_s.max(r.finished_s.unwrap_or(r.dispatched_s));
    }
    histograms_log(&cells)
}

/// histograms.hlog's bytes: one interval per (method, workload, metric), tagged.
pub fn histograms_log(cells: &[CellHistograms]) -> Result<Vec<u8>, HarnessError> {
    let mut entries = Vec::new();
    for c in cells {
        for (metric, h) in &c.hists.by_metric {
            entries.push((
                crate::histograms::tag(&c.method, &c.workload, metric),
                c.start_s,
                c.duration_s,
                h.clone(),
            ));
        }
    }
    crate::histograms::to_log(&entries).map_err(|e| HarnessError::Invalid(format!("writing histograms.hlog: {e}")))
}

/// Creates `path` for a new output: it must not exist, or be an empty directory (runs are
/// never mixed).
pub fn create_empty_dir(path: &Path) -> Result<(), HarnessError> {
    if path.exists() {
        let mut entries = std::fs::read_dir(path).map_err(|e| {
            HarnessError::io(
                path,
                e,
                "--out must be a directory oae can read, or a path that does not exist yet",
            )
        })?;
        if entries.next().is_some() {
            return Err(HarnessError::Invalid(format!(
                "{}: output directory is not empty; choose a new --out directory (runs are never mixed)",
                path.display()
            )));
        }
    }
    std::fs::create_dir_all(path).map_err(|e| HarnessError::io(path, e, "choose an --out directory you can write to"))
}

/// timeline.csv's text: `t_s,domain,source,kind,energy_j,power_w,invalid,energy_lo_j,energy_hi_j`.
pub fn timeline_csv(timeline: &Timeline) -> String {
    let mut out = String::from("t_s,domain,source,kind,energy_j,power_w,invalid,energy_lo_j,energy_hi_j\n");
    for s in &timeline.samples {
        let m = &timeline.meters[s.meter];
        let kind = m.kind.as_str();
        let power = s.power_w.map(|p| format!("{p:.6}")).unwrap_or_default();
        let (lo, hi) = s
            .band_j
            .map(|(l, h)| (format!("{l:.6}"), format!("{h:.6}")))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:.6},{},{},{},{:.6},{},{},{},{}\n",
            s.t_s,
            m.domain,
            m.name,
            kind,
            s.energy_j,
            power,
            u8::from(s.invalid),
            lo,
            hi
        ));
    }
    out
}

/// Writes `dir/name` atomically (temporary file, then rename); a failed write leaves no
/// temporary file behind.
pub fn write_atomic_in(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), HarnessError> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let hint = "check free disk space and permissions";
    let written = File::create(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(HarnessError::io(&tmp, e, hint));
    }
    std::fs::rename(&tmp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        HarnessError::io(&target, e, hint)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_empty_directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x"), "1").unwrap();
        let e = RunDir::create(d.path()).err().unwrap().to_string();
        assert!(e.contains("not empty"), "{e}");
    }

    #[test]
    fn unwritable_path_is_an_io_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        std::fs::write(&file, "").unwrap();
        // A directory below a regular file can never be created.
        let e = RunDir::create(&file.join("run")).err().unwrap().to_string();
        assert!(e.contains("/f/run"), "{e}");
    }
}
