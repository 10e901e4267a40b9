//! vLLM's serving benchmark (`vllm bench serve … --save-result --save-detailed`): one JSON
//! object whose per-request lists run in request order — `start_times` (sent, on the client's
//! `perf_counter` clock), `queue_times` (waiting for a concurrency slot after the scheduled
//! arrival), `ttfts`, `itls` (every gap between streamed chunks), `latencies`, `input_lens`,
//! `output_lens`, `errors` (empty for a success) and `generated_texts`, all in seconds.
//!
//! The intended arrival is `start_time − queue_time` (vLLM's own arrival time of the request).
//! The clock is not the wall clock, so a metered timeline cannot be aligned with it. vLLM
//! records no end for a failed request (its latency is 0): failures keep their send time and
//! error, not an end. Releases that keep only the successful requests' timings are refused
//! (their failures would have no times at all).

use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{PeerCell, PeerFormat, PeerRequest, PeerRun, parse_json, read_text};
use crate::{HarnessError, Outcome};

/// The `vllm bench serve` format.
pub struct VllmBench;

const FIX: &str = "pass the JSON `vllm bench serve --save-result --save-detailed` wrote";

#[derive(Deserialize)]
struct Result {
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    model_id: Option<String>,
    num_prompts: usize,
    #[serde(default)]
    request_rate: Option<Value>,
    #[serde(default)]
    burstiness: Option<f64>,
    #[serde(default)]
    max_concurrency: Option<u64>,
    input_lens: Vec<Option<u32>>,
    output_lens: Vec<Option<u32>>,
    ttfts: Vec<Option<f64>>,
    itls: Vec<Vec<f64>>,
    start_times: Vec<f64>,
    #[serde(default)]
    latencies: Option<Vec<f64>>,
    #[serde(default)]
    queue_times: Option<Vec<f64>>,
    errors: Vec<Option<String>>,
    #[serde(default)]
    generated_texts: Option<Vec<Option<String>>>,
}

impl PeerFormat for VllmBench {
    fn name(&self) -> &'static str {
        "vllm"
    }
    fn about(&self) -> &'static str {
        "vLLM's `vllm bench serve --save-result --save-detailed` result JSON"
    }
    fn detect(&self, _path: &Path, head: &[u8]) -> bool {
        let head = String::from_utf8_lossy(head);
        head.trim_start().starts_with('{')
            && head.contains("\"num_prompts\"")
            && head.contains("\"burstiness\"")
            && head.contains("\"backend\"")
    }
    fn read(&self, path: &Path) -> std::result::Result<PeerRun, HarnessError> {
        let text = read_text(path)?;
        if !text.contains("\"start_times\"") {
            return Err(HarnessError::Invalid(format!(
                "{}: no per-request `start_times`: run vllm bench serve with --save-detailed (a release that records them)",
                path.display()
            )));
        }
        let r: Result = parse_json(path, &text, None, FIX)?;
        let n = r.start_times.len();
        let lens = [
            ("input_lens", r.input_lens.len()),
            ("output_lens", r.output_lens.len()),
            ("ttfts", r.ttfts.len()),
            ("itls", r.itls.len()),
            ("errors", r.errors.len()),
            ("latencies", r.latencies.as_ref().map_or(n, Vec::len)),
            ("queue_times", r.queue_times.as_ref().map_or(n, Vec::len)),
            ("generated_texts", r.generated_texts.as_ref().map_or(n, Vec::len)),
        ];
        if n != r.num_prompts {
            return Err(HarnessError::Invalid(format!(
                "{}: field `start_times`: {n} times for {} requests (num_prompts): this vLLM kept only some requests' timings, so its failures cannot be recorded; use a release whose detailed result lists every request",
                path.display(),
                r.num_prompts
            )));
        }
        if let Some((field, len)) = lens.iter().find(|(_, len)| *len != n) {
            return Err(HarnessError::Invalid(format!(
                "{}: field `{field}`: {len} entries, but {n} requests; {FIX}",
                path.display()
            )));
        }
        let requests = (0..n).map(|i| request(&r, i)).collect();
        let rate = match &r.request_rate {
            Some(Value::Number(x)) => x.as_f64().filter(|x| x.is_finite()),
            _ => None,
        };
        let burst = r.burstiness.unwrap_or(1.0);
        let process = match rate {
            Some(_) if burst == 1.0 => "poisson".to_string(),
            Some(_) => format!("gamma-b{burst}"),
            None => "unlimited".to_string(),
        };
        let workload = format!(
            "{process}{}{}",
            rate.map(|x| format!("@{x}")).unwrap_or_default(),
            r.max_concurrency.map(|c| format!("-c{c}")).unwrap_or_default()
        );
        Ok(PeerRun {
            tool: "vLLM bench serve",
            tool_version: None,
            model: r.model_id.clone(),
            target: None,
            command: None,
            started_unix: None,
            seed: None,
            timeout_s: None,
            cancelled: None,
            notes: vec![
                "intended arrival = vLLM's start_time − queue_time (its own arrival time); sent = start_time; first token = start + ttft; end = start + latency".into(),
                "times are on vLLM's perf_counter clock, not the wall clock: no timeline can be aligned".into(),
                "vLLM records no end for a failed request: failures have no E2E".into(),
                "token counts are vLLM's; its result file records no vLLM version (pass --peer-version)".into(),
            ],
            cells: vec![PeerCell {
                workload,
                process: format!(
                    "vLLM {process} arrivals{}{}; intended = start_time − queue_time",
                    rate.map(|x| format!(" at {x} req/s")).unwrap_or_default(),
                    r.max_concurrency.map(|c| format!(", at most {c} concurrent")).unwrap_or_default()
                ),
                rate_qps: rate,
                max_tokens: None,
                config: json!({
                    "backend": r.backend,
                    "request_rate": r.request_rate,
                    "burstiness": r.burstiness,
                    "max_concurrency": r.max_concurrency,
                    "date": r.date,
                }),
                origin_unix: None,
                requests,
            }],
        })
    }
}

fn request(r: &Result, i: usize) -> PeerRequest {
    let start = r.start_times[i];
    let queue = r.queue_times.as_ref().map_or(0.0, |q| q[i]);
    let error = r.errors[i].as_deref().unwrap_or("").trim();
    let ok = error.is_empty();
    let latency = r.latencies.as_ref().map(|l| l[i]).filter(|&l| l > 0.0);
    PeerRequest {
        intended_s: start - queue,
        sent_s: start,
        first_token_s: r.ttfts[i].filter(|_| ok).map(|t| start + t),
        end_s: latency.filter(|_| ok).map(|l| start + l),
        itl_ms: Some(r.itls[i].iter().map(|s| s * 1e3).collect()),
        input_tokens: r.input_lens[i],
        output_tokens: r.output_lens[i].filter(|_| ok),
        outcome: if ok { Outcome::Ok } else { Outcome::Error },
        // A traceback's last line names the error.
        error: (!ok).then(|| {
            error
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or(error)
                .trim()
                .to_string()
        }),
        output_text: r.generated_texts.as_ref().and_then(|t| t[i].clone()).filter(|_| ok),
        warmup: false,
    }
}
