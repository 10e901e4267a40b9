//! GuideLLM (vLLM project, `guidellm benchmark run … --output-path FILE.json`, the 0.3 report
//! format): one benchmark per load level, each with every request it made under
//! `requests.successful / errored / incomplete`.
//!
//! Per request GuideLLM keeps `scheduler_info.targeted_start_time` (the schedule's intended
//! send: the intended arrival), `scheduler_info.request_start` (sent), `first_token_time`,
//! `end_time`, `prompt_tokens`, `output_tokens` and the `output` text; it keeps only a mean
//! inter-token latency, so imported records have no per-chunk gaps (TPOT is still exact:
//! (end − first token) / (tokens − 1)). GuideLLM writes no version into its report: pass
//! `--peer-version`. A report that kept only a sample of its requests (`--output-sampling`)
//! is refused: its counts would be wrong.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{PeerCell, PeerFormat, PeerRequest, PeerRun, parse_json, read_text};
use crate::{HarnessError, Outcome};

/// The GuideLLM format.
pub struct GuideLlm;

const FIX: &str = "pass a GuideLLM 0.3 benchmark report (guidellm benchmark run --output-path FILE.json)";

#[derive(Deserialize)]
struct Report {
    benchmarks: Vec<Benchmark>,
}

#[derive(Deserialize)]
struct Benchmark {
    args: Args,
    worker: Worker,
    #[serde(default)]
    request_totals: Option<Totals>,
    requests: Requests,
}

#[derive(Deserialize)]
struct Args {
    strategy: Value,
}

#[derive(Deserialize)]
struct Worker {
    #[serde(default)]
    backend_target: Option<String>,
    #[serde(default)]
    backend_model: Option<String>,
    #[serde(default)]
    backend_info: Option<Value>,
}

#[derive(Deserialize)]
struct Totals {
    total: usize,
}

#[derive(Deserialize)]
struct Requests {
    successful: Vec<Request>,
    errored: Vec<Request>,
    incomplete: Vec<Request>,
}

#[derive(Deserialize)]
struct Request {
    scheduler_info: SchedulerInfo,
    #[serde(default)]
    first_token_time: Option<f64>,
    #[serde(default)]
    end_time: Option<f64>,
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct SchedulerInfo {
    targeted_start_time: f64,
    request_start: f64,
    #[serde(default)]
    request_end: Option<f64>,
}

impl PeerFormat for GuideLlm {
    fn name(&self) -> &'static str {
        "guidellm"
    }
    fn about(&self) -> &'static str {
        "GuideLLM's benchmark report JSON (guidellm benchmark run --output-path FILE.json; 0.3 format)"
    }
    fn detect(&self, _path: &Path, head: &[u8]) -> bool {
        let head = String::from_utf8_lossy(head);
        head.contains("\"benchmarks\"") && head.contains("\"generative_benchmark\"")
    }
    fn read(&self, path: &Path) -> Result<PeerRun, HarnessError> {
        let text = read_text(path)?;
        let report: Report = parse_json(path, &text, None, FIX)?;
        if report.benchmarks.is_empty() {
            return Err(HarnessError::Invalid(format!(
                "{}: no benchmarks in the report; {FIX}",
                path.display()
            )));
        }
        let mut cells = Vec::new();
        let mut started = f64::INFINITY;
        for (i, b) in report.benchmarks.iter().enumerate() {
            let kept = b.requests.successful.len() + b.requests.errored.len() + b.requests.incomplete.len();
            if let Some(t) = &b.request_totals
                && t.total != kept
            {
                return Err(HarnessError::Invalid(format!(
                    "{}: benchmarks[{i}] kept {kept} of its {} requests (--output-sampling): importing a sample would miscount; re-run GuideLLM without --output-sampling",
                    path.display(),
                    t.total
                )));
            }
            let mut requests = Vec::with_capacity(kept);
            let groups = [
                (&b.requests.successful, Outcome::Ok),
                (&b.requests.errored, Outcome::Error),
                (&b.requests.incomplete, Outcome::Cancelled),
            ];
            for (list, outcome) in groups {
                for r in list {
                    started = started.min(r.scheduler_info.targeted_start_time);
                    requests.push(request(r, outcome));
                }
            }
            cells.push(cell(&b.args.strategy, requests));
        }
        let first = &report.benchmarks[0];
        let info = first.worker.backend_info.as_ref();
        Ok(PeerRun {
            tool: "GuideLLM",
            tool_version: None,
            model: first.worker.backend_model.clone(),
            target: first.worker.backend_target.clone(),
            command: None,
            started_unix: started.is_finite().then_some(started),
            seed: first.args.strategy.get("random_seed").and_then(Value::as_u64),
            timeout_s: info.and_then(|v| v.get("timeout")).and_then(Value::as_f64),
            cancelled: None,
            notes: vec![
                "intended arrival = GuideLLM's scheduler_info.targeted_start_time; sent = scheduler_info.request_start; first token = first_token_time".into(),
                "GuideLLM keeps only a mean inter-token latency: records have no per-chunk gaps (TPOT is exact)".into(),
                "token counts are GuideLLM's (its processor); requests it left incomplete at the end of a level are recorded as cancelled".into(),
                "GuideLLM writes no version into its report (pass --peer-version)".into(),
            ],
            cells,
        })
    }
}

fn request(r: &Request, outcome: Outcome) -> PeerRequest {
    let s = &r.scheduler_info;
    let ok = outcome == Outcome::Ok;
    PeerRequest {
        intended_s: s.targeted_start_time,
        sent_s: s.request_start,
        first_token_s: r.first_token_time.filter(|_| ok),
        end_s: r.end_time.or(s.request_end),
        itl_ms: None,
        input_tokens: r.prompt_tokens,
        output_tokens: r.output_tokens.filter(|_| ok),
        outcome: if ok && r.first_token_time.is_none() {
            Outcome::Error
        } else {
            outcome
        },
        error: match outcome {
            Outcome::Ok if r.first_token_time.is_none() => Some("GuideLLM recorded no first token".into()),
            Outcome::Ok => None,
            Outcome::Cancelled => Some("left incomplete when GuideLLM ended the level".into()),
            _ => Some(
                r.error
                    .clone()
                    .filter(|e| !e.trim().is_empty())
                    .unwrap_or_else(|| "GuideLLM recorded an error without a message (its timeouts have none)".into()),
            ),
        },
        output_text: r.output.clone().filter(|_| ok),
        warmup: false,
    }
}

/// One load level: `poisson@1`, `concurrent@4x`, `synchronous`.
fn cell(strategy: &Value, requests: Vec<PeerRequest>) -> PeerCell {
    let kind = strategy.get("type_").and_then(Value::as_str).unwrap_or("guidellm");
    let rate = strategy.get("rate").and_then(Value::as_f64);
    let streams = strategy.get("streams").and_then(Value::as_u64);
    let workload = match (rate, streams) {
        (Some(r), _) => format!("{kind}@{r}"),
        (None, Some(n)) => format!("{kind}@{n}x"),
        _ => kind.to_string(),
    };
    PeerCell {
        workload,
        process: format!(
            "GuideLLM {kind}{}; intended = its targeted start time",
            rate.map(|r| format!(" at {r} req/s")).unwrap_or_default()
        ),
        rate_qps: rate,
        max_tokens: None,
        config: strategy.clone(),
        origin_unix: Some(0.0),
        requests,
    }
}
