//! AIPerf (NVIDIA, `aiperf profile … --export-level records`): `profile_export.jsonl`, one
//! JSON record per request, and beside it `profile_export_aiperf.json` with the version and
//! the settings (read when present).
//!
//! Per request AIPerf keeps `credit_issued_ns` (its timing manager released the request: the
//! schedule's intended time), `request_start_ns` (sent), `request_end_ns`, and metrics with
//! units: `time_to_first_token` (from the send), `inter_chunk_latency` (every gap between
//! streamed chunks), `output_sequence_length` and `input_sequence_length`; failures carry
//! `error` and no latency. Records of its warm-up phase are kept as warm-up.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::{PeerCell, PeerFormat, PeerRequest, PeerRun, parse_json, read_text};
use crate::{HarnessError, Outcome};

/// The AIPerf format.
pub struct AiPerf;

const FIX: &str = "pass AIPerf's profile_export.jsonl (aiperf profile --export-level records)";

#[derive(Deserialize)]
struct Line {
    metadata: Metadata,
    #[serde(default)]
    metrics: serde_json::Map<String, Value>,
    #[serde(default)]
    error: Option<ErrorDetails>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    credit_issued_ns: Option<i128>,
    request_start_ns: i128,
    #[serde(default)]
    request_end_ns: Option<i128>,
    #[serde(default)]
    benchmark_phase: Option<String>,
    #[serde(default)]
    was_cancelled: bool,
}

#[derive(Deserialize)]
struct ErrorDetails {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<Value>,
}

#[derive(Deserialize)]
struct Metric {
    value: Value,
    unit: String,
}

/// The aggregate file's parts the import uses.
#[derive(Deserialize)]
struct Aggregate {
    #[serde(default)]
    aiperf_version: Option<String>,
    #[serde(default)]
    input_config: Option<InputConfig>,
    #[serde(default)]
    run_info: Option<RunInfo>,
    #[serde(default)]
    was_cancelled: bool,
}

#[derive(Deserialize)]
struct InputConfig {
    #[serde(default)]
    models: Option<Value>,
    #[serde(default)]
    endpoint: Option<Value>,
    #[serde(default)]
    phases: Vec<Value>,
    #[serde(default)]
    timeout_seconds: Option<f64>,
}

#[derive(Deserialize)]
struct RunInfo {
    #[serde(default)]
    random_seed: Option<u64>,
    #[serde(default)]
    cli_command: Option<String>,
}

impl PeerFormat for AiPerf {
    fn name(&self) -> &'static str {
        "aiperf"
    }
    fn about(&self) -> &'static str {
        "AIPerf's per-request profile_export.jsonl (aiperf profile --export-level records), or its artifact directory"
    }
    fn detect(&self, _path: &Path, head: &[u8]) -> bool {
        let head = String::from_utf8_lossy(head);
        head.trim_start().starts_with('{') && head.contains("\"request_start_ns\"") && head.contains("\"metadata\"")
    }
    fn file_in_dir(&self, dir: &Path) -> Option<PathBuf> {
        Some(dir.join("profile_export.jsonl")).filter(|p| p.is_file())
    }
    fn read(&self, path: &Path) -> Result<PeerRun, HarnessError> {
        let text = read_text(path)?;
        let mut requests = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let line: Line = parse_json(path, raw, Some(i + 1), FIX)?;
            requests.push(request(path, i + 1, line)?);
        }
        if requests.is_empty() {
            return Err(HarnessError::Invalid(format!(
                "{}: no request records; {FIX}",
                path.display()
            )));
        }
        let aggregate = aggregate(path)?;
        let config = aggregate.as_ref().and_then(|a| a.input_config.as_ref());
        let profiling = config.and_then(|c| {
            c.phases
                .iter()
                .find(|p| p.get("kind").and_then(Value::as_str) == Some("profiling"))
        });
        let pattern = profiling.and_then(|p| p.get("type")).and_then(Value::as_str);
        let rate = profiling.and_then(|p| p.get("rate")).and_then(Value::as_f64);
        let max_tokens = config
            .and_then(|c| c.endpoint.as_ref())
            .and_then(|e| e.pointer("/extra/max_tokens"))
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok());
        let workload = match (pattern, rate) {
            (Some(p), Some(r)) => format!("{p}@{r}"),
            (Some(p), None) => p.to_string(),
            _ => "aiperf".to_string(),
        };
        let mut notes = vec![
            "intended arrival = AIPerf's credit_issued_ns (its timing manager's release of the request); sent = request_start_ns; TTFT from AIPerf's own first-token time".to_string(),
            "ITLs are AIPerf's inter_chunk_latency (gaps between streamed chunks, as oae's openai method records them)".to_string(),
            "token counts are AIPerf's (its tokenizer)".to_string(),
        ];
        if requests.iter().any(|r| r.1) {
            notes.push("some records lack credit_issued_ns: their send time stands for the intended arrival".into());
        }
        if aggregate.is_none() {
            notes.push(
                "no profile_export_aiperf.json beside the records: AIPerf's version and settings are unknown".into(),
            );
        }
        let cancelled = aggregate
            .as_ref()
            .is_some_and(|a| a.was_cancelled)
            .then(|| "AIPerf recorded was_cancelled = true".to_string());
        let started_ns = requests.iter().map(|r| r.2).min().unwrap_or_default();
        Ok(PeerRun {
            tool: "AIPerf",
            tool_version: aggregate.as_ref().and_then(|a| a.aiperf_version.clone()),
            model: config
                .and_then(|c| c.models.as_ref())
                .and_then(|m| m.pointer("/items/0/name"))
                .and_then(Value::as_str)
                .map(str::to_string),
            target: config
                .and_then(|c| c.endpoint.as_ref())
                .and_then(|e| e.pointer("/urls/0"))
                .and_then(Value::as_str)
                .map(str::to_string),
            command: aggregate
                .as_ref()
                .and_then(|a| a.run_info.as_ref())
                .and_then(|r| r.cli_command.clone()),
            started_unix: Some(started_ns as f64 / 1e9),
            seed: aggregate
                .as_ref()
                .and_then(|a| a.run_info.as_ref())
                .and_then(|r| r.random_seed),
            timeout_s: config.and_then(|c| c.timeout_seconds),
            cancelled,
            notes,
            cells: vec![PeerCell {
                workload,
                process: format!(
                    "{} arrivals as AIPerf scheduled them{}; intended = credit issue time",
                    pattern.unwrap_or("AIPerf's"),
                    rate.map(|r| format!(" at {r} req/s")).unwrap_or_default()
                ),
                rate_qps: rate,
                max_tokens,
                config: profiling.cloned().unwrap_or(Value::Null),
                origin_unix: Some(started_ns as f64 / 1e9),
                requests: rebase(requests, started_ns),
            }],
        })
    }
}

/// (request with times in ns from the run's first release, whether its intended time is its
/// send time, its release in ns) → times in s from the first release.
fn rebase(requests: Vec<(PeerRequest, bool, i128)>, origin_ns: i128) -> Vec<PeerRequest> {
    requests
        .into_iter()
        .map(|(mut r, _, release)| {
            let shift = (release - origin_ns) as f64 / 1e9;
            r.intended_s += shift;
            r.sent_s += shift;
            r.first_token_s = r.first_token_s.map(|t| t + shift);
            r.end_s = r.end_s.map(|t| t + shift);
            r
        })
        .collect()
}

/// One record: times relative to its own release (so that nanosecond epochs keep their
/// precision), whether the release was missing, and the release in ns.
fn request(path: &Path, line: usize, l: Line) -> Result<(PeerRequest, bool, i128), HarnessError> {
    let m = &l.metadata;
    let release = m.credit_issued_ns.unwrap_or(m.request_start_ns);
    let s = |ns: i128| (ns - release) as f64 / 1e9;
    let sent = s(m.request_start_ns);
    let metric_ms = |name: &str| -> Result<Option<f64>, HarnessError> {
        l.metrics
            .get(name)
            .map(|v| {
                let metric: Metric =
                    serde_json::from_value(v.clone()).map_err(|e| bad(path, line, name, &e.to_string()))?;
                let x = metric
                    .value
                    .as_f64()
                    .ok_or_else(|| bad(path, line, name, "value is not a number"))?;
                to_ms(x, &metric.unit).ok_or_else(|| bad(path, line, name, &format!("unknown unit `{}`", metric.unit)))
            })
            .transpose()
    };
    let count = |name: &str| -> Result<Option<u32>, HarnessError> {
        l.metrics
            .get(name)
            .map(|v| {
                v.get("value")
                    .and_then(Value::as_f64)
                    .filter(|x| *x >= 0.0 && x.fract() == 0.0 && *x <= f64::from(u32::MAX))
                    .map(|x| x as u32)
                    .ok_or_else(|| bad(path, line, name, "value is not a token count"))
            })
            .transpose()
    };
    let itl = match l.metrics.get("inter_chunk_latency") {
        None => None,
        Some(v) => {
            let metric: Metric = serde_json::from_value(v.clone())
                .map_err(|e| bad(path, line, "inter_chunk_latency", &e.to_string()))?;
            let xs = metric
                .value
                .as_array()
                .ok_or_else(|| bad(path, line, "inter_chunk_latency", "value is not a list"))?;
            let mut out = Vec::with_capacity(xs.len());
            for x in xs {
                let x = x
                    .as_f64()
                    .ok_or_else(|| bad(path, line, "inter_chunk_latency", "a gap is not a number"))?;
                out.push(to_ms(x, &metric.unit).ok_or_else(|| {
                    bad(
                        path,
                        line,
                        "inter_chunk_latency",
                        &format!("unknown unit `{}`", metric.unit),
                    )
                })?);
            }
            Some(out)
        }
    };
    let ttft = metric_ms("time_to_first_token")?;
    let failed = l.error.is_some() || m.was_cancelled;
    let outcome = match (&l.error, m.was_cancelled) {
        (_, true) => Outcome::Cancelled,
        (Some(e), _) if e.kind.as_deref().is_some_and(|k| k.contains("Timeout")) => Outcome::Timeout,
        (Some(_), _) => Outcome::Error,
        (None, _) if ttft.is_none() => Outcome::Error,
        (None, _) => Outcome::Ok,
    };
    let error = match &l.error {
        Some(e) => Some(format!(
            "{}{}{}",
            e.kind.as_deref().unwrap_or("error"),
            e.code.as_ref().map(|c| format!(" {c}")).unwrap_or_default(),
            e.message.as_deref().map(|t| format!(": {t}")).unwrap_or_default()
        )),
        None if m.was_cancelled => Some("AIPerf cancelled the request".into()),
        None if ttft.is_none() => Some("AIPerf recorded no first token and no error".into()),
        None => None,
    };
    let input = count("input_sequence_length")?.or(count("error_isl")?);
    Ok((
        PeerRequest {
            intended_s: 0.0,
            sent_s: sent,
            first_token_s: ttft.filter(|_| !failed).map(|t| sent + t / 1e3),
            end_s: m.request_end_ns.map(s),
            itl_ms: itl,
            input_tokens: input,
            output_tokens: count("output_sequence_length")?,
            outcome,
            error,
            output_text: None,
            warmup: m.benchmark_phase.as_deref().is_some_and(|p| p != "profiling"),
        },
        m.credit_issued_ns.is_none(),
        release,
    ))
}

fn bad(path: &Path, line: usize, field: &str, what: &str) -> HarnessError {
    HarnessError::Invalid(format!(
        "{}: line {line}: field `metrics.{field}`: {what}; {FIX}",
        path.display()
    ))
}

/// A duration in `unit` as ms.
fn to_ms(x: f64, unit: &str) -> Option<f64> {
    let f = match unit {
        "ns" => 1e-6,
        "us" | "µs" => 1e-3,
        "ms" => 1.0,
        "s" | "sec" => 1e3,
        _ => return None,
    };
    Some(x * f).filter(|v| v.is_finite())
}

/// `profile_export_aiperf.json` beside the records, when there.
fn aggregate(records: &Path) -> Result<Option<Aggregate>, HarnessError> {
    let Some(file) = records.parent().map(|d| d.join("profile_export_aiperf.json")) else {
        return Ok(None);
    };
    if !file.is_file() {
        return Ok(None);
    }
    let text = read_text(&file)?;
    parse_json(
        &file,
        &text,
        None,
        "AIPerf's aggregate export; move it away to import the records alone",
    )
    .map(Some)
}
