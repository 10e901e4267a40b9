//! `oae import`: per-request results of peer harnesses (AIPerf, GuideLLM, …) become an oae run
//! directory — records, summary, histograms, run.json — that scoring, reports and the gate
//! read like any other run.
//!
//! Each peer format is one file here and one line in [`FORMATS`]: it recognises its files and
//! reads them into [`PeerRun`] — per request the intended arrival, when the request was sent,
//! its first token and end, its chunk gaps when the peer kept them, token counts, outcome and
//! error. [`import`] does the rest the same way for every peer: latencies from the *intended*
//! arrival (as oae measures its own), the peer's own send delay as dispatch lag, every failed
//! request kept as a record with its error. A peer measures no energy: without a timeline the
//! run says so in run.json (`energy.unavailable`) instead of leaving a silent gap; with one
//! (`oae meter -- <peer command>`, [`crate::metered`]) the requests get the machine's energy
//! by their wall-clock times, attributed as a run's are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use oae_core::rundir::{CellSummary, HostFacts, ScoringSettings, Slo};

use crate::rundir::RunDir;
use crate::{HarnessError, Outcome};

mod aiperf;
mod build;
mod energy;
mod guidellm;
mod records;
mod vllm;

/// Every peer format oae reads, in detection order.
pub const FORMATS: &[&dyn PeerFormat] = &[&aiperf::AiPerf, &guidellm::GuideLlm, &vllm::VllmBench];

/// A peer harness's result format.
pub trait PeerFormat: Sync {
    /// The name `--format` takes (`aiperf`).
    fn name(&self) -> &'static str;
    /// Which files it reads, in a line.
    fn about(&self) -> &'static str;
    /// Whether `path` (whose first bytes are `head`) is one of its files.
    fn detect(&self, path: &Path, head: &[u8]) -> bool;
    /// Its result file in a directory the peer wrote (`None`: the peer names no file).
    fn file_in_dir(&self, _dir: &Path) -> Option<PathBuf> {
        None
    }
    /// Reads `path`; errors name the file, the line or field and how to fix it.
    fn read(&self, path: &Path) -> Result<PeerRun, HarnessError>;
}

/// One request as a peer recorded it. Times are seconds on the peer's clock, any origin
/// (shared by the cell's requests).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRequest {
    /// When the peer meant to send it (its schedule).
    pub intended_s: f64,
    /// When it was sent.
    pub sent_s: f64,
    /// When the first token arrived (`None` when none did).
    pub first_token_s: Option<f64>,
    /// When the response ended or failed (`None` when the peer did not say).
    pub end_s: Option<f64>,
    /// Gaps between streamed chunks, ms (`None` when the peer kept only a mean).
    pub itl_ms: Option<Vec<f64>>,
    /// Prompt tokens, as the peer counted them.
    pub input_tokens: Option<u32>,
    /// Generated tokens, as the peer counted them (`None` for failures).
    pub output_tokens: Option<u32>,
    /// How it ended.
    pub outcome: Outcome,
    /// The peer's error text, for failures.
    pub error: Option<String>,
    /// The generated text, when the peer kept it.
    pub output_text: Option<String>,
    /// Sent during the peer's own warm-up: recorded, excluded from statistics.
    pub warmup: bool,
}

/// One load level of a peer run (a GuideLLM sweep has several): one oae workload.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerCell {
    /// Workload name, e.g. `poisson@2`.
    pub workload: String,
    /// The arrival process in words, with what the peer's "intended" time is.
    pub process: String,
    /// The rate the peer was asked for, req/s (`None` for closed-loop or unlimited loads).
    pub rate_qps: Option<f64>,
    /// Tokens asked for per request, when the peer says.
    pub max_tokens: Option<u32>,
    /// The peer's own settings for this level, as it wrote them.
    pub config: Value,
    /// Unix time of the zero of its requests' clock (`None`: the peer's clock is not the
    /// wall clock, and no timeline can be aligned with it).
    pub origin_unix: Option<f64>,
    /// Its requests.
    pub requests: Vec<PeerRequest>,
}

/// A peer's result file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRun {
    /// The peer (`AIPerf`).
    pub tool: &'static str,
    /// Its version, when the file records it.
    pub tool_version: Option<String>,
    /// The model name it asked for.
    pub model: Option<String>,
    /// The server it measured.
    pub target: Option<String>,
    /// Its command line, when recorded.
    pub command: Option<String>,
    /// Unix time of the first intended arrival, when the peer's clock is the wall clock.
    pub started_unix: Option<f64>,
    /// Its random seed, when recorded.
    pub seed: Option<u64>,
    /// The per-request timeout it used, s.
    pub timeout_s: Option<f64>,
    /// The peer said the run was cut short (why).
    pub cancelled: Option<String>,
    /// What the reader had to interpret (how "intended" and token counts were read).
    pub notes: Vec<String>,
    /// Its load levels.
    pub cells: Vec<PeerCell>,
}

/// One input of an import: a file and the method label its requests get.
#[derive(Debug, Clone)]
pub struct ImportInput {
    /// The peer's result file.
    pub path: PathBuf,
    /// Method label (default: the peer's name, lower case).
    pub label: Option<String>,
    /// Format (default: detected).
    pub format: Option<String>,
}

impl ImportInput {
    /// The file to read (in a directory a peer wrote: its result file) and its format.
    pub fn source(&self) -> Result<(PathBuf, &'static dyn PeerFormat), HarnessError> {
        let file = resolve(&self.path)?;
        let format = format_of(&file, self.format.as_deref())?;
        Ok((file, format))
    }

    /// The method label its requests get: the one given, else the format's name.
    pub fn label(&self) -> Result<String, HarnessError> {
        match &self.label {
            Some(l) => Ok(l.clone()),
            None => Ok(self.source()?.1.name().to_string()),
        }
    }
}

/// Settings of an import.
pub struct ImportOptions {
    /// Two-sided confidence of every interval.
    pub confidence: f64,
    /// Service-level objectives goodput is judged by.
    pub slo: Slo,
    /// Scoring settings (baseline, manifests) for run.json.
    pub scoring: ScoringSettings,
    /// The machine the peer ran on, when it was this one (`--host-here`).
    pub host: Option<HostFacts>,
    /// The peer's version, when its files do not record it.
    pub peer_version: Option<String>,
    /// The command line, for provenance.
    pub command: Vec<String>,
    /// oae's commit, when known.
    pub git_sha: Option<String>,
    /// The machine's energy while the peer ran (`oae meter -- <peer command>`), attributed to
    /// the requests by their wall-clock times; `None`: the import has no energy.
    pub timeline: Option<crate::metered::Metered>,
}

/// What an import produced.
#[derive(Debug)]
pub struct Imported {
    /// The run directory.
    pub dir: PathBuf,
    /// Per (method, workload) statistics.
    pub summaries: Vec<CellSummary>,
    /// Records written.
    pub records: usize,
    /// Each input's peer, version and label.
    pub sources: Vec<(String, Option<String>, String)>,
}

/// The format of `path`: the named one, or the one that recognises the file.
pub fn format_of(path: &Path, named: Option<&str>) -> Result<&'static dyn PeerFormat, HarnessError> {
    let names = || FORMATS.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ");
    if let Some(n) = named {
        FORMATS
            .iter()
            .copied()
            .find(|f| f.name() == n)
            .ok_or_else(|| HarnessError::Invalid(format!("unknown peer format `{n}`; known: {}", names())))
    } else {
        let head = head(path)?;
        FORMATS.iter().copied().find(|f| f.detect(path, &head)).ok_or_else(|| {
            HarnessError::Invalid(format!(
                "{}: not a result file oae can import (known: {}); name the format with --format if it is one",
                path.display(),
                names()
            ))
        })
    }
}

/// The first 4 KiB of `path`.
fn head(path: &Path) -> Result<Vec<u8>, HarnessError> {
    use std::io::Read;
    let mut head = vec![0u8; 4096];
    let mut f = std::fs::File::open(path)
        .map_err(|e| HarnessError::io(path, e, "pass a peer's result file (see `oae import --help`)"))?;
    let n = f
        .read(&mut head)
        .map_err(|e| HarnessError::io(path, e, "pass a readable peer result file"))?;
    head.truncate(n);
    Ok(head)
}

/// The result file of `path`: itself, or the one a peer names in a directory it wrote.
fn resolve(path: &Path) -> Result<PathBuf, HarnessError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    FORMATS.iter().find_map(|f| f.file_in_dir(path)).ok_or_else(|| {
        HarnessError::Invalid(format!(
            "{}: a directory with no peer result file oae knows (AIPerf's profile_export.jsonl); pass the file itself",
            path.display()
        ))
    })
}

/// Reads every input and writes the run directory `out` (created; must not exist or be empty).
pub fn import(inputs: &[ImportInput], out: &Path, opts: &ImportOptions) -> Result<Imported, HarnessError> {
    if inputs.is_empty() {
        return Err(HarnessError::Invalid(
            "give at least one peer result file to import".into(),
        ));
    }
    let mut runs = Vec::new();
    for input in inputs {
        let (file, format) = input.source()?;
        let mut run = format.read(&file)?;
        if run.tool_version.is_none() {
            run.tool_version = opts.peer_version.clone();
        }
        let label = input.label()?;
        let bytes = std::fs::read(&file).map_err(|e| HarnessError::io(&file, e, "pass a readable file"))?;
        runs.push((file, label, run, hex(&Sha256::digest(&bytes))));
    }
    check_labels(
        &runs
            .iter()
            .map(|(f, l, r, _)| (f.as_path(), l.as_str(), r))
            .collect::<Vec<_>>(),
    )?;
    let built = build::build(&runs, opts)?;
    let mut dir = RunDir::create(out)?;
    dir.rewrite_records(&built.records)?;
    dir.write_histograms(&built.hists)?;
    dir.write_summary(built.run.status, &built.summaries)?;
    if let Some(m) = &opts.timeline {
        dir.write_timeline(&m.timeline)?;
    }
    dir.write_json(oae_core::rundir::RUN_JSON, &built.run)?;
    Ok(Imported {
        dir: out.to_path_buf(),
        records: built.records.len(),
        summaries: built.summaries,
        sources: runs
            .iter()
            .map(|(_, l, r, _)| (r.tool.to_string(), r.tool_version.clone(), l.clone()))
            .collect(),
    })
}

/// Labels must be unique per (label, workload), and usable as labels.
fn check_labels(runs: &[(&Path, &str, &PeerRun)]) -> Result<(), HarnessError> {
    let mut seen: BTreeMap<(&str, &str), &Path> = BTreeMap::new();
    for (path, label, run) in runs {
        if label.is_empty() || label.contains(['|', '\n']) {
            return Err(HarnessError::Invalid(format!(
                "{}: label `{label}` cannot be a method label (empty, or contains `|`); give LABEL=FILE with a plain name",
                path.display()
            )));
        }
        for c in &run.cells {
            if let Some(first) = seen.insert((label, &c.workload), path) {
                return Err(HarnessError::Invalid(format!(
                    "{} and {} both give method `{label}` on workload `{}`; label them apart: oae import a=FILE b=FILE",
                    first.display(),
                    path.display(),
                    c.workload
                )));
            }
        }
    }
    Ok(())
}

/// The method id imported cells carry: the peer measured a server behind the OpenAI API,
/// which is what oae's `openai` method measures (and whose manifest prices).
pub const IMPORTED_ID: &str = "openai";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A JSON document read into `T`, with the failing field's path and the line in the error.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    line: Option<usize>,
    fix: &str,
) -> Result<T, HarnessError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let at = match line {
            Some(l) => format!("line {l}"),
            None => format!("line {}", inner.line()),
        };
        HarnessError::Invalid(format!("{}: {at}: field `{field}`: {inner}; {fix}", path.display()))
    })
}

/// The file's text, or an error naming it.
pub(crate) fn read_text(path: &Path) -> Result<String, HarnessError> {
    std::fs::read_to_string(path).map_err(|e| HarnessError::io(path, e, "pass a readable peer result file"))
}

#[cfg(test)]
mod tests;
