//! Reading a run directory for scoring, through the typed schema of `oae_core::rundir`.
//!
//! Records are streamed line by line and kept only as the few numbers scoring needs (a
//! [`Sample`], about 70 bytes per request), so a run of a million requests scores in little
//! memory. Every malformed line is reported with its file, line and field; nothing is skipped
//! silently, except a last record cut short by a crash in a run that did not complete (left
//! out with a warning).

use std::path::{Path, PathBuf};

use oae_core::rundir::{
    CellSummary, Outcome, RecordReader, RecordWithoutItl, RequestRecord, RunDirError, RunJson, RunStatus, Slo,
    SummaryJson, read_run, read_summary,
};

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
    /// The trial (replay) it belongs to.
    pub trial: u32,
    /// The answer's score by the quality scorer ([`quality_scorer`]), for ok requests with
    /// a reference; NaN otherwise.
    pub quality: f64,
}

/// Scorers whose score is a right/wrong verdict, preferred in this order for `q`: `contains`
/// before `em` because generated answers are sentences, which exact match never accepts (the
/// usual accuracy of LLM QA evaluations); F1 and embedding similarity (partial credit) last.
pub const QUALITY_PREFERENCE: [&str; 6] = ["numeric", "choice", "contains", "em", "f1", "minilm"];

/// The scorer that gives `q`: the SLO's quality bar when set, else `preferred` (`oae score
/// --quality`) when the record was scored by it, else the first of [`QUALITY_PREFERENCE`]
/// the record was scored by, else any it was scored by.
pub fn quality_scorer<'a, V>(
    slo: &'a Slo,
    preferred: Option<&'a str>,
    scores: &'a std::collections::BTreeMap<String, V>,
) -> Option<&'a str> {
    if let Some(bar) = &slo.quality {
        return Some(bar.scorer.as_str());
    }
    if let Some(p) = preferred
        && scores.contains_key(p)
    {
        return Some(p);
    }
    QUALITY_PREFERENCE
        .iter()
        .copied()
        .find(|n| scores.contains_key(*n))
        .or_else(|| scores.keys().next().map(String::as_str))
}

impl Sample {
    /// The scoring view of a measured record under `slo`, its quality by `preferred` when
    /// given (see [`quality_scorer`]).
    pub fn of<Itl>(r: &RequestRecord<Itl>, slo: &Slo, preferred: Option<&str>) -> Sample {
        let nan = f64::NAN;
        let ok = r.outcome == Outcome::Ok;
        Sample {
            service_s: r.service_ms.map_or(nan, |v| v / 1e3),
            good: if r.good(slo) { 1.0 } else { 0.0 },
            dyn_j: r.energy_dyn_j.unwrap_or(nan),
            active_j: r.energy_active_j.unwrap_or(nan),
            amortized_j: r.energy_amortized_j.unwrap_or(nan),
            e2e_ms: if ok { r.e2e_ms.unwrap_or(nan) } else { nan },
            ttft_ms: r.ttft_ms.unwrap_or(nan),
            tpot_ms: r.tpot_ms.unwrap_or(nan),
            failed: if ok { 0.0 } else { 1.0 },
            trial: r.trial,
            quality: match quality_scorer(slo, preferred, &r.quality) {
                Some(name) if ok => r.quality.get(name).copied().unwrap_or(nan),
                _ => nan,
            },
        }
    }
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
    pub run: RunJson,
    /// `summary.json` (absent for a run that stopped before writing it).
    pub summary: Option<SummaryJson>,
    /// Cells in first-seen order.
    pub cells: Vec<Cell>,
    /// What reading left out, and why (a record cut short by a crash).
    pub warnings: Vec<String>,
    /// The scorer asked to define `q` (`oae score --quality`), if any.
    pub quality_preference: Option<String>,
}

impl From<RunDirError> for ScoreError {
    fn from(e: RunDirError) -> Self {
        match e {
            RunDirError::Data {
                file,
                line,
                field,
                message,
            } => ScoreError::Data {
                file,
                line,
                field,
                message,
            },
            RunDirError::Io { path, source } => ScoreError::Io { path, source },
            other => ScoreError::Usage(other.to_string()),
        }
    }
}

impl RunData {
    /// Reads `dir`. A run whose status is not `complete` is refused unless `allow_partial`.
    pub fn load(dir: &Path, allow_partial: bool) -> Result<RunData, ScoreError> {
        Self::load_with(dir, allow_partial, None)
    }

    /// Reads `dir`, taking each answer's quality from scorer `quality` where it was scored
    /// by it (a run's `[slo] quality` bar, when set, decides instead: asking for another
    /// scorer is refused).
    pub fn load_with(dir: &Path, allow_partial: bool, quality: Option<&str>) -> Result<RunData, ScoreError> {
        let run = read_run(dir)?;
        let complete = run.status == RunStatus::Complete;
        if !complete && !allow_partial {
            return Err(ScoreError::Usage(format!(
                "{}: the run is `{}`{}; its figures cover only part of the suite. Score it anyway with --allow-partial (every report will say it is partial)",
                dir.join("run.json").display(),
                run.status.as_str(),
                run.abort_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )));
        }
        let summary = read_summary(dir, &run)?;
        if summary.is_none() && complete {
            return Err(ScoreError::Usage(format!(
                "{} is missing although run.json says complete; the directory is damaged",
                dir.join("summary.json").display()
            )));
        }
        let mut warnings = Vec::new();
        if let (Some(q), Some(bar)) = (quality, &run.slo.quality)
            && bar.scorer != q
        {
            return Err(ScoreError::Usage(format!(
                "{}: the run's [slo] quality bar defines a right answer by `{}`; --quality {q} cannot change that (leave --quality out)",
                dir.join("run.json").display(),
                bar.scorer
            )));
        }
        let cells = read_records(dir, &run.slo, quality, complete, &mut warnings)?;
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
            warnings,
            quality_preference: quality.map(str::to_string),
        })
    }

    /// Whether the run is complete.
    pub fn complete(&self) -> bool {
        self.run.status == RunStatus::Complete
    }

    /// One side of a paired run (`oae gate --paired`): the methods labelled `prefix…`, with
    /// the prefix taken off every label (the recorded baseline label too, whichever side's
    /// prefix it carries — `prefixes` are both sides').
    pub fn side(&self, prefix: &str, prefixes: &[&str]) -> RunData {
        let strip = |label: &str| label.strip_prefix(prefix).map(str::to_string);
        let any = |label: &str| {
            prefixes
                .iter()
                .find_map(|p| label.strip_prefix(p))
                .unwrap_or(label)
                .to_string()
        };
        let mut run = self.run.clone();
        run.methods = run
            .methods
            .into_iter()
            .filter_map(|mut m| {
                m.label = strip(&m.label)?;
                Some(m)
            })
            .collect();
        if let Some(s) = run.scoring.as_mut() {
            s.baseline = s.baseline.as_deref().map(any);
        }
        let summary = self.summary.clone().map(|mut s| {
            s.cells = s
                .cells
                .into_iter()
                .filter_map(|mut c| {
                    c.method = strip(&c.method)?;
                    Some(c)
                })
                .collect();
            s
        });
        let cells = self
            .cells
            .iter()
            .filter_map(|c| {
                Some(Cell {
                    method: strip(&c.method)?,
                    ..c.clone()
                })
            })
            .collect();
        RunData {
            dir: self.dir.clone(),
            run,
            summary,
            cells,
            warnings: self.warnings.clone(),
            quality_preference: self.quality_preference.clone(),
        }
    }

    /// The summary cell of (method, workload), if summary.json has it.
    pub fn summary_cell(&self, method: &str, workload: &str) -> Option<&CellSummary> {
        self.summary.as_ref()?.cell(method, workload)
    }
}

/// What scoring keeps of one record (made on the parsing threads).
struct Seen {
    method: String,
    workload: String,
    /// `None` for a warm-up or cool-down record.
    sample: Option<Sample>,
    kv_bytes_peak: Option<f64>,
    energy_estimated: bool,
    co2e_g: f64,
}

/// Reads every record, parsing on every core. In a run that did not complete, a last line
/// cut short by the crash is left out with a warning; anywhere else a malformed line is an
/// error naming it.
fn read_records(
    dir: &Path,
    slo: &Slo,
    quality: Option<&str>,
    complete: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<Cell>, ScoreError> {
    let mut cells: Vec<Cell> = Vec::new();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Scoring needs every field but the inter-token latencies: skipped, not parsed.
    let seen = |r: RecordWithoutItl| Seen {
        sample: r.measured().then(|| Sample::of(&r, slo, quality)),
        kv_bytes_peak: r.counters.get("kv_bytes_peak").copied(),
        energy_estimated: r.energy_estimated,
        co2e_g: r.co2e_g.unwrap_or(0.0),
        method: r.method,
        workload: r.workload,
    };
    let result = RecordReader::open(dir)?.map_parallel(threads, seen, |_, s| {
        // Few cells, and records of one cell mostly in a row: a scan beats a keyed map here.
        let i = match cells
            .iter()
            .rposition(|c| c.method == s.method && c.workload == s.workload)
        {
            Some(i) => i,
            None => {
                cells.push(Cell {
                    method: s.method,
                    workload: s.workload,
                    ..Cell::default()
                });
                cells.len() - 1
            }
        };
        let cell = &mut cells[i];
        cell.recorded += 1;
        let Some(sample) = s.sample else { return };
        cell.samples.push(sample);
        if let Some(kv) = s.kv_bytes_peak {
            cell.kv_bytes_peak = cell.kv_bytes_peak.max(kv);
        }
        cell.energy_estimated |= s.energy_estimated;
        cell.run_co2e_g += s.co2e_g;
    });
    match result {
        Ok(()) => {}
        Err(RunDirError::CutShort { file, line }) if !complete => warnings.push(format!(
            "{file}:{line}: the last record is cut short (the run was killed while writing it) and is left out"
        )),
        Err(RunDirError::CutShort { file, line }) => {
            return Err(ScoreError::Data {
                file,
                line,
                field: String::new(),
                message:
                    "the last line is cut short although run.json says the run completed; the directory is damaged"
                        .into(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    Ok(cells)
}
