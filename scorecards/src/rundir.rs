//! Reading a run directory for scoring: `run.json`, `summary.json` and `requests.jsonl`.
//!
//! Records are streamed line by line and kept only as the few numbers scoring needs (about
//! 70 bytes per request), so a run of a million requests scores in little memory. Every
//! malformed line is reported with its file, line and field; nothing is skipped silently.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::ScoreError;

/// What one measured request contributes to scoring.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Service time (started → finished), s; NaN when the request never started.
    pub service_s: f64,
    /// 1 when the request succeeded within every SLO, else 0.
    pub good: f64,
    /// Dynamic energy, J (NaN when not attributed).
    pub dyn_j: f64,
    /// Active energy (dynamic + idle while busy), J.
    pub active_j: f64,
    /// Amortized energy (active + share of idle gaps), J.
    pub amortized_j: f64,
    /// End-to-end latency from intended arrival, ms (NaN when not ok).
    pub e2e_ms: f64,
    /// Time to first token, ms (NaN when none).
    pub ttft_ms: f64,
    /// Mean time per output token, ms (NaN when fewer than two tokens).
    pub tpot_ms: f64,
    /// 1 when the request failed (error, timeout, rejected, cancelled).
    pub failed: f64,
}

/// The measured requests of one (method, workload) cell.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// Method label.
    pub method: String,
    /// Workload name.
    pub workload: String,
    /// Measured requests (warm-up and cool-down left out), in record order.
    pub samples: Vec<Sample>,
    /// Requests recorded in all (including warm-up and cool-down).
    pub recorded: u64,
    /// Largest per-request KV-cache peak, bytes.
    pub kv_bytes_peak: f64,
    /// Whether any measured record's energy was estimated rather than measured.
    pub energy_estimated: bool,
    /// Sum of measured records' `co2e_g` (the run's own grid assumptions).
    pub run_co2e_g: f64,
}

/// A run directory, read.
#[derive(Debug)]
pub struct RunData {
    /// The directory.
    pub dir: PathBuf,
    /// `run.json`.
    pub run: Value,
    /// `summary.json` (absent for a run that stopped before writing it).
    pub summary: Option<Value>,
    /// Cells in first-seen order.
    pub cells: Vec<Cell>,
    /// `complete`, `aborted` or `running` (a run that died without finishing its run.json).
    pub status: String,
    /// Why an aborted run stopped.
    pub abort_reason: Option<String>,
    /// What reading left out, and why (a record cut short by a crash).
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
struct Record {
    method: String,
    workload: String,
    #[serde(default)]
    warmup: bool,
    #[serde(default)]
    cooldown: bool,
    outcome: String,
    ttft_ms: Option<f64>,
    e2e_ms: Option<f64>,
    tpot_ms: Option<f64>,
    service_ms: Option<f64>,
    energy_dyn_j: Option<f64>,
    energy_active_j: Option<f64>,
    energy_amortized_j: Option<f64>,
    co2e_g: Option<f64>,
    #[serde(default)]
    energy_estimated: bool,
    #[serde(default)]
    counters: Counters,
}

#[derive(Deserialize, Default)]
struct Counters {
    kv_bytes_peak: Option<f64>,
}

/// Service-level objectives as run.json records them.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Slo {
    /// Time to first token, ms.
    pub ttft_ms: Option<f64>,
    /// Mean time per output token, ms.
    pub tpot_ms: Option<f64>,
    /// End to end, ms.
    pub e2e_ms: Option<f64>,
}

impl Slo {
    /// The harness's rule (`oae_harness::summary::meets`): ok, and within every SLO set; a
    /// one-token answer has no TPOT and cannot violate a per-token objective.
    fn good(&self, r: &Record) -> bool {
        let within = |limit: Option<f64>, v: Option<f64>| limit.is_none_or(|l| v.is_some_and(|v| v <= l));
        r.outcome == "ok"
            && within(self.ttft_ms, r.ttft_ms)
            && within(self.e2e_ms, r.e2e_ms)
            && (r.tpot_ms.is_none() || within(self.tpot_ms, r.tpot_ms))
    }
}

fn read_json(path: &Path) -> Result<Value, ScoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScoreError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ScoreError::Data {
        file: path.display().to_string(),
        line: e.line(),
        field: String::new(),
        message: format!("not valid JSON ({e}); is this an oae run directory?"),
    })
}

impl RunData {
    /// Reads `dir`. A run whose status is not `complete` is refused unless `allow_partial`.
    pub fn load(dir: &Path, allow_partial: bool) -> Result<RunData, ScoreError> {
        let run_path = dir.join("run.json");
        if !run_path.is_file() {
            return Err(ScoreError::Usage(format!(
                "{} has no run.json; pass a run directory written by `oae run`",
                dir.display()
            )));
        }
        let run = read_json(&run_path)?;
        let status = run["status"].as_str().unwrap_or("unknown").to_string();
        let abort_reason = run["abort_reason"].as_str().map(str::to_string);
        if status != "complete" && !allow_partial {
            return Err(ScoreError::Usage(format!(
                "{}: the run is `{status}`{}; its figures cover only part of the suite. Score it anyway with --allow-partial (every report will say it is partial)",
                run_path.display(),
                abort_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
            )));
        }
        let summary_path = dir.join("summary.json");
        let summary = if summary_path.is_file() {
            Some(read_json(&summary_path)?)
        } else if status == "complete" {
            return Err(ScoreError::Usage(format!(
                "{} is missing although run.json says complete; the directory is damaged",
                summary_path.display()
            )));
        } else {
            None
        };
        let slo: Slo = serde_json::from_value(run["slo"].clone()).unwrap_or_default();
        let mut warnings = Vec::new();
        let cells = read_records(&dir.join("requests.jsonl"), &slo, status != "complete", &mut warnings)?;
        if cells.is_empty() {
            return Err(ScoreError::Usage(format!(
                "{} holds no request records; nothing to score",
                dir.join("requests.jsonl").display()
            )));
        }
        Ok(RunData {
            dir: dir.to_path_buf(),
            run,
            summary,
            cells,
            status,
            abort_reason,
            warnings,
        })
    }

    /// Whether the run is complete.
    pub fn complete(&self) -> bool {
        self.status == "complete"
    }

    /// The summary cell of (method, workload), if summary.json has it.
    pub fn summary_cell(&self, method: &str, workload: &str) -> Option<&Value> {
        self.summary.as_ref()?["cells"]
            .as_array()?
            .iter()
            .find(|c| c["method"] == method && c["workload"] == workload)
    }

    /// run.json's entry for a method label.
    pub fn method_entry(&self, label: &str) -> Option<&Value> {
        self.run["methods"].as_array()?.iter().find(|m| m["label"] == label)
    }

    /// run.json's entry for a workload.
    pub fn workload_entry(&self, name: &str) -> Option<&Value> {
        self.run["workloads"].as_array()?.iter().find(|w| w["name"] == name)
    }
}

/// Reads every record. In a run that did not complete, a last line cut short by the crash is
/// left out with a warning; anywhere else a malformed line is an error naming it.
fn read_records(path: &Path, slo: &Slo, partial: bool, warnings: &mut Vec<String>) -> Result<Vec<Cell>, ScoreError> {
    let file = std::fs::File::open(path).map_err(|e| ScoreError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut cells: Vec<Cell> = Vec::new();
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut line = String::new();
    let mut n = 0usize;
    loop {
        line.clear();
        let read = reader.read_line(&mut line).map_err(|e| ScoreError::io(path, e))?;
        if read == 0 {
            break;
        }
        n += 1;
        let text = line.trim_end();
        if text.is_empty() {
            continue;
        }
        if !line.ends_with('\n') && serde_json::from_str::<Record>(text).is_err() {
            // A crash can cut the last line short: it is not a record.
            if partial {
                warnings.push(format!(
                    "{}:{n}: the last record is cut short (the run was killed while writing it) and is left out",
                    path.display()
                ));
                break;
            }
            return Err(ScoreError::Data {
                file: path.display().to_string(),
                line: n,
                field: String::new(),
                message:
                    "the last line is cut short although run.json says the run completed; the directory is damaged"
                        .into(),
            });
        }
        let r: Record = serde_json::from_str(text).map_err(|e| {
            let msg = e.to_string();
            let field = msg.split('`').nth(1).unwrap_or("").to_string();
            ScoreError::Data {
                file: path.display().to_string(),
                line: n,
                field,
                message: format!("not a request record: {msg}"),
            }
        })?;
        let key = (r.method.clone(), r.workload.clone());
        let i = *index.entry(key).or_insert_with(|| {
            cells.push(Cell {
                method: r.method.clone(),
                workload: r.workload.clone(),
                ..Cell::default()
            });
            cells.len() - 1
        });
        let cell = &mut cells[i];
        cell.recorded += 1;
        if r.warmup || r.cooldown {
            continue;
        }
        let ok = r.outcome == "ok";
        let nan = f64::NAN;
        cell.samples.push(Sample {
            service_s: r.service_ms.map_or(nan, |v| v / 1e3),
            good: if slo.good(&r) { 1.0 } else { 0.0 },
            dyn_j: r.energy_dyn_j.unwrap_or(nan),
            active_j: r.energy_active_j.unwrap_or(nan),
            amortized_j: r.energy_amortized_j.unwrap_or(nan),
            e2e_ms: if ok { r.e2e_ms.unwrap_or(nan) } else { nan },
            ttft_ms: r.ttft_ms.unwrap_or(nan),
            tpot_ms: r.tpot_ms.unwrap_or(nan),
            failed: if ok { 0.0 } else { 1.0 },
        });
        if let Some(kv) = r.counters.kv_bytes_peak {
            cell.kv_bytes_peak = cell.kv_bytes_peak.max(kv);
        }
        cell.energy_estimated |= r.energy_estimated;
        cell.run_co2e_g += r.co2e_g.unwrap_or(0.0);
    }
    Ok(cells)
}
