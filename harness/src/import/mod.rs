//! `oae import`: per-request results of peer harnesses (AIPerf, GuideLLM, …) become an oae run
//! directory — records, summary, histograms, run.json — that scoring, reports and the gate
//! read like any other run.
//!
//! Each peer format is one file here and one line in [`FORMATS`]: it recognises its files and
//! reads them into [`PeerRun`] — per request the intended arrival, when the request was sent,
//! its first token and end, its chunk gaps when the peer kept them, token counts, outcome and
//! error. [`import`] does the rest the same way for every peer: latencies from the *intended*
//! arrival (as oae measures its own), the peer's own send delay as dispatch lag, every failed
//! request kept as a record with its error, and no energy — a peer measures none, and the run
//! says so in run.json (`energy.unavailable`) instead of leaving a silent gap.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use oae_core::rundir::energy::{EnergyInfo, IdleBaseline, Unavailable};
use oae_core::rundir::{
    CellSummary, Compression, HostFacts, LimitInfo, MethodInfo, ReplayInfo, RunJson, RunSettings, RunStatus,
    SCHEMA_VERSION, ScoringSettings, Slo, SuiteInfo, WorkloadInfo,
};

use crate::carbon::{CarbonConfig, Hardware};
use crate::rundir::RunDir;
use crate::runner::Histograms;
use crate::session::CellHistograms;
use crate::summary::{CellInfo, fill_idle_before, summarize};
use crate::{HarnessError, Outcome, RequestRecord};

mod aiperf;
mod guidellm;

/// Every peer format oae reads, in detection order.
pub const FORMATS: &[&dyn PeerFormat] = &[&aiperf::AiPerf, &guidellm::GuideLlm];

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
        let file = resolve(&input.path)?;
        let format = format_of(&file, input.format.as_deref())?;
        let mut run = format.read(&file)?;
        if run.tool_version.is_none() {
            run.tool_version = opts.peer_version.clone();
        }
        let label = input.label.clone().unwrap_or_else(|| format.name().to_string());
        let bytes = std::fs::read(&file).map_err(|e| HarnessError::io(&file, e, "pass a readable file"))?;
        runs.push((file, label, run, hex(&Sha256::digest(&bytes))));
    }
    check_labels(
        &runs
            .iter()
            .map(|(f, l, r, _)| (f.as_path(), l.as_str(), r))
            .collect::<Vec<_>>(),
    )?;
    let built = build(&runs, opts)?;
    let mut dir = RunDir::create(out)?;
    dir.rewrite_records(&built.records)?;
    dir.write_histograms(&built.hists)?;
    dir.write_summary(RunStatus::Complete, &built.summaries)?;
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

struct Built {
    records: Vec<RequestRecord>,
    hists: Vec<CellHistograms>,
    summaries: Vec<CellSummary>,
    run: RunJson,
}

fn build(runs: &[(PathBuf, String, PeerRun, String)], opts: &ImportOptions) -> Result<Built, HarnessError> {
    let mut records = Vec::new();
    let mut hists = Vec::new();
    let mut summaries = Vec::new();
    let mut workloads: Vec<WorkloadInfo> = Vec::new();
    let mut methods = Vec::new();
    let mut replays = Vec::new();
    let mut unavailable = Vec::new();
    let mut provenance = Vec::new();
    let mut timeout_s = None;
    let mut cancelled = Vec::new();
    let mut replay_start = 0.0;
    for (file, label, run, sha) in runs {
        let version = run.tool_version.as_deref().unwrap_or("version not recorded");
        for cell in &run.cells {
            let mut recs = to_records(label, cell);
            fill_idle_before(&mut recs);
            let replay_s = recs
                .iter()
                .map(|r| r.finished_s.unwrap_or(r.dispatched_s))
                .fold(0.0, f64::max);
            let span = recs.last().map_or(0.0, |r| r.intended_s);
            let offered = if span > 0.0 && recs.len() > 1 {
                (recs.len() - 1) as f64 / span
            } else {
                0.0
            };
            let info = CellInfo {
                method: label,
                method_id: IMPORTED_ID,
                workload: &cell.workload,
                replay_s,
                offered_rate_qps: offered,
                setup_s: 0.0,
                confidence: opts.confidence,
                warmup_s: 0.0,
                cooldown_s: 0.0,
                slo: &opts.slo,
                min_requests: None,
                min_duration_s: None,
            };
            let mut summary = summarize(&info, &recs);
            summary.replay_start_s = replay_start;
            let mut h = Histograms::default();
            recs.iter().for_each(|r| h.record(r));
            hists.push(CellHistograms {
                method: label.clone(),
                workload: cell.workload.clone(),
                start_s: replay_start,
                duration_s: replay_s,
                hists: h,
            });
            replays.push(ReplayInfo {
                method: label.clone(),
                workload: cell.workload.clone(),
                trial: 0,
                start_s: replay_start,
            });
            replay_start += replay_s;
            if !workloads.iter().any(|w| w.name == cell.workload) {
                workloads.push(workload_info(run, cell, &recs, offered));
            } else if let Some(w) = workloads.iter_mut().find(|w| w.name == cell.workload) {
                w.requests = w.requests.max(recs.len());
            }
            summaries.push(summary);
            records.extend(recs);
        }
        unavailable.push(Unavailable {
            source: format!("{} ({label})", run.tool),
            reason: format!(
                "imported from {} {version}: the peer measured no energy, so no record, cell or scorecard has any (energy and carbon are absent, not zero)",
                run.tool
            ),
        });
        if let Some(t) = run.timeout_s {
            timeout_s = Some(timeout_s.map_or(t, |x: f64| x.max(t)));
        }
        if let Some(why) = &run.cancelled {
            cancelled.push(format!("{} ({label}): {why}", file.display()));
        }
        methods.push(MethodInfo {
            label: label.clone(),
            id: IMPORTED_ID.into(),
            instances: 1,
            setup_s: 0.0,
            setup_energy_j: None,
            setup_energy_estimated: false,
            setup_energy_by_domain: BTreeMap::new(),
            cold_start_s: None,
            weight_bytes: None,
            facts: [
                ("imported_from".to_string(), json!(run.tool)),
                ("peer_version".to_string(), json!(run.tool_version)),
                ("model".to_string(), json!(run.model)),
                ("server".to_string(), json!(run.target)),
            ]
            .into(),
            idle_baseline: IdleBaseline {
                before: None,
                after: None,
                meters: Vec::new(),
                note: Some("imported: the peer measured no idle power".into()),
            },
        });
        provenance.push(json!({
            "label": label,
            "file": file.display().to_string(),
            "sha256": sha,
            "peer": run.tool,
            "peer_version": run.tool_version,
            "peer_command": run.command,
            "model": run.model,
            "server": run.target,
            "notes": run.notes,
        }));
    }
    let started_unix = runs
        .iter()
        .filter_map(|r| r.2.started_unix)
        .fold(f64::INFINITY, f64::min);
    let host = opts.host.clone().unwrap_or_else(unknown_host);
    let hardware = Hardware {
        vcpus: host.logical_cpus,
        virtual_machine: host.virtual_machine,
        gpus: Vec::new(),
    };
    let carbon = CarbonConfig::default()
        .resolve(&Default::default(), &hardware)
        .assumptions;
    let files: Vec<String> = runs.iter().map(|r| r.0.display().to_string()).collect();
    let mut suite_hash = Sha256::new();
    for r in runs {
        suite_hash.update(r.3.as_bytes());
    }
    let tools: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.2.tool,
                r.2.tool_version.as_deref().unwrap_or("(version not recorded)")
            )
        })
        .collect();
    let validity = crate::energy::validity::validity(&crate::meters::Timeline::default(), &[], &[]);
    let n = records.len();
    let run = RunJson {
        schema_version: SCHEMA_VERSION,
        oae_version: crate::VERSION.to_string(),
        git_sha: opts.git_sha.clone(),
        command: opts.command.clone(),
        status: if cancelled.is_empty() {
            RunStatus::Complete
        } else {
            RunStatus::Aborted
        },
        abort_reason: (!cancelled.is_empty()).then(|| format!("the peer cut its run short: {}", cancelled.join("; "))),
        started_utc: if started_unix.is_finite() {
            crate::clock::utc_rfc3339(started_unix)
        } else {
            crate::clock::utc_now_rfc3339()
        },
        finished_utc: Some(crate::clock::utc_now_rfc3339()),
        suite: SuiteInfo {
            name: "import".into(),
            file: files.join(", "),
            sha256: hex(&suite_hash.finalize()),
            description: Some(format!(
                "imported from {}; latencies re-measured from each request's intended arrival; no energy",
                tools.join(", ")
            )),
        },
        seed: runs.iter().find_map(|r| r.2.seed).unwrap_or(0),
        slo: opts.slo.clone(),
        overrides: BTreeMap::new(),
        runtime: [("imported".to_string(), Value::Array(provenance))].into(),
        scoring: Some(opts.scoring.clone()),
        dispatcher_priority: None,
        run: RunSettings {
            limit: LimitInfo::Requests {
                requests: workloads.iter().map(|w| w.requests as u64).max().unwrap_or(0),
            },
            warmup_s: 0.0,
            cooldown_s: 0.0,
            idle_gap_cap_s: None,
            device: "unknown (imported: the peer measured a server)".into(),
            sample_interval_ms: 0.0,
            confidence: opts.confidence,
            timeout_s,
            queue_bound: None,
            min_requests: None,
            min_duration_s: None,
            trials: 1,
            order: "sequential".into(),
        },
        host,
        carbon,
        workloads,
        knowledge: Vec::new(),
        methods,
        not_applicable: Vec::new(),
        replays,
        energy: EnergyInfo {
            meters: Vec::new(),
            unavailable,
            sources_checked: Vec::new(),
            validity,
        },
        records: n,
    };
    Ok(Built {
        records,
        hists,
        summaries,
        run,
    })
}

/// The method id imported cells carry: the peer measured a server behind the OpenAI API,
/// which is what oae's `openai` method measures (and whose manifest prices).
pub const IMPORTED_ID: &str = "openai";

/// Host facts when the peer's machine is not known.
fn unknown_host() -> HostFacts {
    HostFacts {
        cpu_model: "not recorded (imported; pass --host-here if the peer ran on this machine)".into(),
        physical_cores: None,
        logical_cpus: 0,
        memory_bytes: 0,
        os: None,
        kernel: None,
        arch: "unknown".into(),
        virtual_machine: false,
    }
}

fn workload_info(run: &PeerRun, cell: &PeerCell, recs: &[RequestRecord], offered: f64) -> WorkloadInfo {
    let span = recs.last().map_or(0.0, |r| r.intended_s);
    let mut hash = Sha256::new();
    for r in recs {
        hash.update(r.intended_s.to_le_bytes());
    }
    WorkloadInfo {
        name: cell.workload.clone(),
        process: cell.process.clone(),
        schedule_hash: hex(&hash.finalize()),
        requests: recs.len(),
        source_failed: 0,
        reordered_rows: 0,
        offered_rate_qps: offered,
        mean_rate_qps_before_compression: cell.rate_qps.or((offered > 0.0).then_some(offered)),
        perturbs: None,
        perturbation: None,
        config: json!({ "peer": run.tool, "peer_settings": cell.config }),
        compression: Compression {
            cap_s: None,
            gaps_shortened: 0,
            skipped_s: 0.0,
            original_span_s: span,
            replay_span_s: span,
            factor: 1.0,
        },
    }
}

/// The records of one cell: times from the first intended arrival, ids in intended order.
pub(crate) fn to_records(label: &str, cell: &PeerCell) -> Vec<RequestRecord> {
    let mut reqs: Vec<&PeerRequest> = cell.requests.iter().collect();
    reqs.sort_by(|a, b| {
        a.intended_s
            .total_cmp(&b.intended_s)
            .then(a.sent_s.total_cmp(&b.sent_s))
    });
    let t0 = reqs.first().map_or(0.0, |r| r.intended_s);
    reqs.iter()
        .enumerate()
        .map(|(i, r)| record(label, &cell.workload, cell.max_tokens, i as u64, t0, r))
        .collect()
}

/// Characters of generated text kept per record (as `[run] keep_output_chars` defaults).
const KEEP_CHARS: usize = 2000;

fn record(label: &str, workload: &str, max_tokens: Option<u32>, id: u64, t0: f64, r: &PeerRequest) -> RequestRecord {
    let rel = |t: f64| t - t0;
    let intended = rel(r.intended_s);
    let sent = rel(r.sent_s);
    let first = r.first_token_s.map(rel);
    let end = r.end_s.map(rel);
    let ms = |t: f64| (t - intended) * 1e3;
    let ok = r.outcome == Outcome::Ok;
    let out_tokens = if ok { r.output_tokens.unwrap_or(0) } else { 0 };
    let tpot = match (first, end) {
        (Some(f), Some(e)) if ok && out_tokens > 1 => Some((e - f) * 1e3 / f64::from(out_tokens - 1)),
        _ => None,
    };
    let (text, truncated) = match &r.output_text {
        Some(t) if t.chars().count() > KEEP_CHARS => (Some(t.chars().take(KEEP_CHARS).collect()), true),
        Some(t) => (Some(t.clone()), false),
        None => (None, false),
    };
    RequestRecord {
        method: label.to_string(),
        workload: workload.to_string(),
        request_id: id,
        trial: 0,
        instance: None,
        warmup: r.warmup,
        cooldown: false,
        intended_s: intended,
        dispatched_s: sent,
        started_s: Some(sent),
        first_token_s: first,
        finished_s: end,
        ttft_ms: first.map(ms),
        e2e_ms: end.map(ms),
        queue_ms: None,
        dispatch_lag_ms: (sent - intended) * 1e3,
        service_ms: end.map(|e| (e - sent) * 1e3),
        tpot_ms: tpot,
        itl_ms: if ok {
            r.itl_ms.clone().unwrap_or_default()
        } else {
            Vec::new()
        },
        input_tokens: r.input_tokens,
        output_tokens: out_tokens,
        max_new_tokens: max_tokens.unwrap_or(out_tokens),
        stop_reason: None,
        idle_skipped_s: 0.0,
        idle_before_s: None,
        source_failed: false,
        outcome: r.outcome,
        error: if ok {
            None
        } else {
            Some(
                r.error
                    .clone()
                    .filter(|e| !e.trim().is_empty())
                    .unwrap_or_else(|| "the peer recorded a failure without a message".to_string()),
            )
        },
        phases_ms: BTreeMap::new(),
        counters: BTreeMap::new(),
        energy_dyn_j: None,
        energy_active_j: None,
        energy_amortized_j: None,
        energy_prefill_j: None,
        energy_decode_j: None,
        co2e_g: None,
        energy_source: None,
        energy_estimated: false,
        energy_by_domain: BTreeMap::new(),
        energy_process_cpu: None,
        task_id: None,
        output_text: text,
        output_truncated: truncated,
        quality: BTreeMap::new(),
        reasoning_tokens: None,
        answer_tokens: None,
    }
}

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
