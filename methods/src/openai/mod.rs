//! `openai` — a model served over the OpenAI-compatible HTTP API (vLLM, llama.cpp's server,
//! TGI, SGLang, Ollama, …), streamed, so the harness stamps the first token and every
//! inter-token gap as the server's chunks arrive, from the request's intended arrival.
//!
//! Each instance keeps one HTTP/1.1 connection alive and serves one request at a time
//! (`instances = N`: N concurrent requests). A request is `POST {base_url}/chat/completions`
//! (`endpoint = "chat"`: the prompt as one user message, after an optional `system`) or
//! `{base_url}/completions` (the prompt as it is), with `stream = true`, `max_tokens` = the
//! request's `max_new_tokens`, `temperature`, and `stream_options.include_usage` so the
//! server's own token counts come back. A stream's unit is a chunk, not a token: each chunk
//! with text is one sink call (the inter-chunk gaps are the ITLs, as peers report them), and
//! the record's token counts are the server's `usage`; without usage they are counted with
//! `tokenizer` when one is given, else one per chunk — flagged per request by the counters
//! `tokens_from_usage`, `tokens_from_tokenizer`, `tokens_from_chunks`. Reasoning text
//! (`reasoning_content`) is kept between `<think>` tags so the reasoning split applies.
//!
//! Every failure is the request's record, never dropped: connection refused (`connect_failed`),
//! HTTP 429 (outcome `rejected`, `http_429`), other 4xx / 5xx (`http_4xx`, `http_5xx`, the
//! server's message in the error), a malformed event (`stream_malformed`), an error event
//! (`stream_error`), a stream cut before its end (`stream_cut`), no first token within
//! `first_token_timeout_s` or no end within `timeout_s` (outcome `timeout`). The counters are
//! 1 on the request they describe, so a cell's sum counts them.
//!
//! With `launch = { command = [...], ready = "/health", ready_timeout_s, env }` the method
//! starts the server in `prepare()` and stops it when the method is dropped ([`launch`]); its
//! log is the run directory's `methods/<label>/server.log`.
//!
//! **Overhead model:** setup = the server's start-up when launched (spawn to ready), the
//! served-model check and `warmup_requests` short requests (the server's first-request costs
//! belong to setup). Per request: `wait` (sending the request until the first chunk: the
//! server's queueing and prefill) and `stream` (first chunk to the end); the client itself
//! costs a JSON body, one write, and a read + parse per chunk (µs; see `bench/peer-http.sh`).

pub mod fake;
mod http;
pub mod launch;
mod stream;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use oae_core::config::{ConfigTable, PositiveF64};
use oae_harness::{
    BuildContext, Completion, ConfigKey, Flow, Method, MethodError, MethodSpec, Probe, StopReason, TokenSink,
};
use oae_workloads::Request;

use crate::model::Tokenizer;
use http::{Client, Endpoint, HttpError, Interrupt};
use launch::{LaunchConfig, Server};
use stream::{Delta, SseEvent, SseParser};

/// The registry entry.
pub struct Spec;
/// The registry entry, for [`crate::registry`].
pub static SPEC: Spec = Spec;

/// Which OpenAI API the requests use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Api {
    /// `/chat/completions`: the prompt as a user message (the server applies its template).
    #[default]
    Chat,
    /// `/completions`: the prompt as it is.
    Completions,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAiConfig {
    base_url: String,
    model: String,
    #[serde(default)]
    endpoint: Api,
    api_key_env: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_s: PositiveF64,
    first_token_timeout_s: Option<PositiveF64>,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_s: PositiveF64,
    #[serde(default)]
    temperature: f64,
    top_p: Option<f64>,
    seed: Option<u64>,
    #[serde(default)]
    ignore_eos: bool,
    system: Option<String>,
    #[serde(default = "default_true")]
    usage: bool,
    #[serde(default = "default_true")]
    check_model: bool,
    #[serde(default = "default_warmup")]
    warmup_requests: u32,
    tokenizer: Option<String>,
    extra: Option<toml::Table>,
    server: Option<String>,
    launch: Option<LaunchConfig>,
}

fn default_timeout() -> PositiveF64 {
    PositiveF64(300.0)
}
fn default_connect_timeout() -> PositiveF64 {
    PositiveF64(5.0)
}
fn default_true() -> bool {
    true
}
fn default_warmup() -> u32 {
    1
}

/// Serving stacks with a shipped adoption-cost template (`server = "…"`).
pub const SERVERS: &[(&str, &str)] = &[
    ("llama.cpp", include_str!("servers/llama-cpp.toml")),
    ("vllm", include_str!("servers/vllm.toml")),
    ("vllm-speculative", include_str!("servers/vllm-speculative.toml")),
    ("vllm-moe", include_str!("servers/vllm-moe.toml")),
    ("tgi", include_str!("servers/tgi.toml")),
    ("ollama", include_str!("servers/ollama.toml")),
    ("sglang", include_str!("servers/sglang.toml")),
];

impl MethodSpec for Spec {
    fn id(&self) -> &'static str {
        "openai"
    }
    fn about(&self) -> &'static str {
        "a model behind an OpenAI-compatible HTTP server (vLLM, llama.cpp, TGI, SGLang, Ollama), streamed; optionally launched and stopped by oae, its start-up metered as setup"
    }
    fn manifest(&self) -> Option<&'static str> {
        Some(include_str!("manifest.toml"))
    }
    fn manifest_for(&self, config: &ConfigTable) -> Option<String> {
        let cfg: OpenAiConfig = config.decode().ok()?;
        let server = cfg.server?;
        SERVERS
            .iter()
            .find(|(name, _)| *name == server)
            .map(|(_, text)| text.to_string())
    }
    fn keys(&self) -> &'static [ConfigKey] {
        &[
            ConfigKey {
                name: "base_url",
                default: "(required)",
                help: "the API root, e.g. \"http://127.0.0.1:8080/v1\" (plain http)",
            },
            ConfigKey {
                name: "model",
                default: "(required)",
                help: "the model name the server serves (its /models list)",
            },
            ConfigKey {
                name: "endpoint",
                default: "\"chat\"",
                help: "chat (/chat/completions, the server's chat template) or completions (/completions, the prompt as it is)",
            },
            ConfigKey {
                name: "api_key_env",
                default: "(none)",
                help: "environment variable holding the API key (sent as a bearer token, never written anywhere)",
            },
            ConfigKey {
                name: "timeout_s",
                default: "300",
                help: "longest a request may take from the start of its service (outcome timeout)",
            },
            ConfigKey {
                name: "first_token_timeout_s",
                default: "timeout_s",
                help: "longest wait for the first chunk with text (outcome timeout)",
            },
            ConfigKey {
                name: "connect_timeout_s",
                default: "5",
                help: "longest wait for a TCP connection",
            },
            ConfigKey {
                name: "temperature",
                default: "0.0",
                help: "sampling temperature sent to the server (0 = greedy)",
            },
            ConfigKey {
                name: "top_p",
                default: "(server default)",
                help: "nucleus sampling mass sent to the server",
            },
            ConfigKey {
                name: "seed",
                default: "(none)",
                help: "sampling seed sent to the server",
            },
            ConfigKey {
                name: "ignore_eos",
                default: "false",
                help: "ask the server to generate max_new_tokens regardless of end-of-sequence (a vLLM / llama.cpp extension)",
            },
            ConfigKey {
                name: "system",
                default: "(none)",
                help: "system message before the prompt (endpoint = chat)",
            },
            ConfigKey {
                name: "usage",
                default: "true",
                help: "ask for token usage in the stream (stream_options.include_usage); false for servers that reject it",
            },
            ConfigKey {
                name: "check_model",
                default: "true",
                help: "check at setup that GET {base_url}/models lists `model`",
            },
            ConfigKey {
                name: "warmup_requests",
                default: "1",
                help: "short requests sent at setup, so the server's first-request costs are setup",
            },
            ConfigKey {
                name: "tokenizer",
                default: "(none)",
                help: "counts tokens when the server sends no usage: a cached model's name, a .gguf file or a tokenizer.json",
            },
            ConfigKey {
                name: "extra",
                default: "{}",
                help: "more fields of the request body, e.g. { top_k = 40 }",
            },
            ConfigKey {
                name: "server",
                default: "(none)",
                help: "the serving stack, for its adoption-cost template: llama.cpp, vllm, vllm-speculative, vllm-moe, tgi, ollama, sglang",
            },
            ConfigKey {
                name: "launch",
                default: "(none)",
                help: "start the server at setup: { command = [...], ready = \"/health\", ready_timeout_s = 600, env = {}, stop_timeout_s = 10 }",
            },
        ]
    }

    fn build(&self, config: &ConfigTable, ctx: &BuildContext) -> Result<Box<dyn Method>, MethodError> {
        let cfg: OpenAiConfig = config.decode()?;
        let endpoint = Endpoint::parse(&cfg.base_url).map_err(|e| config.error("base_url", e))?;
        if cfg.model.trim().is_empty() {
            return Err(config.error("model", "must name the model the server serves").into());
        }
        let api_key = match &cfg.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                config.error(
                    "api_key_env",
                    format!(
                        "the environment variable `{var}` is not set; export it (its value is never written anywhere)"
                    ),
                )
            })?),
            None => None,
        };
        if let Some(server) = &cfg.server
            && !SERVERS.iter().any(|(n, _)| n == server)
        {
            let known: Vec<_> = SERVERS.iter().map(|(n, _)| *n).collect();
            return Err(config
                .error(
                    "server",
                    format!("unknown server `{server}`; known: {}", known.join(", ")),
                )
                .into());
        }
        if let Some(l) = &cfg.launch
            && l.command.is_empty()
        {
            return Err(config.error("launch", "command must name the server's program").into());
        }
        if !(0.0..=100.0).contains(&cfg.temperature) {
            return Err(config.error("temperature", "must be between 0 and 100").into());
        }
        let extra = match &cfg.extra {
            Some(t) => {
                let v = serde_json::to_value(t).map_err(|e| config.error("extra", e.to_string()))?;
                for reserved in ["model", "stream", "messages", "prompt", "max_tokens"] {
                    if v.get(reserved).is_some() {
                        return Err(config
                            .error("extra", format!("`{reserved}` is set by oae; remove it from extra"))
                            .into());
                    }
                }
                v
            }
            None => json!({}),
        };
        let tokenizer_path = cfg.tokenizer.as_deref().map(|t| {
            if t.ends_with(".json") || t.ends_with(".gguf") {
                TokenizerSource::File(config.source().resolve(t))
            } else {
                TokenizerSource::Catalog(t.to_string())
            }
        });
        Ok(Box::new(OpenAi {
            client: Client::new(endpoint.clone(), Duration::from_secs_f64(cfg.connect_timeout_s.0)),
            endpoint,
            api_key,
            extra,
            tokenizer_source: tokenizer_path,
            tokenizer: None,
            cwd: config
                .source()
                .resolve("server")
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            label: ctx.label.clone(),
            instance: ctx.instance,
            files: None,
            server: None,
            facts: BTreeMap::new(),
            chunks: Vec::new(),
            cfg,
        }))
    }
}

enum TokenSourceKind {
    Usage,
    Tokenizer,
    Chunks,
}

enum TokenizerSource {
    File(PathBuf),
    Catalog(String),
}

/// One chunk's text and whether it is reasoning.
#[derive(Debug, Clone)]
struct Chunk {
    text: String,
    reasoning: bool,
}

/// An `openai` instance.
pub struct OpenAi {
    cfg: OpenAiConfig,
    endpoint: Endpoint,
    client: Client,
    api_key: Option<String>,
    extra: Value,
    tokenizer_source: Option<TokenizerSource>,
    tokenizer: Option<Box<dyn Tokenizer>>,
    cwd: PathBuf,
    label: String,
    instance: u32,
    files: Option<PathBuf>,
    server: Option<Server>,
    facts: BTreeMap<String, Value>,
    /// The last request's chunks, for `detokenize` (ids are chunk indices).
    chunks: Vec<Chunk>,
}

/// How a request ended, before it becomes a [`Completion`] or an error.
struct Ended {
    stop: StopReason,
    usage: stream::Usage,
}

impl OpenAi {
    fn path(&self) -> &'static str {
        match self.cfg.endpoint {
            Api::Chat => "/chat/completions",
            Api::Completions => "/completions",
        }
    }

    fn body(&self, prompt: &str, max_tokens: u32) -> Vec<u8> {
        let mut body = json!({
            "model": self.cfg.model,
            "stream": true,
            "max_tokens": max_tokens,
            "temperature": self.cfg.temperature,
        });
        match self.cfg.endpoint {
            Api::Chat => {
                let mut messages = Vec::new();
                if let Some(s) = &self.cfg.system {
                    messages.push(json!({"role": "system", "content": s}));
                }
                messages.push(json!({"role": "user", "content": prompt}));
                body["messages"] = Value::Array(messages);
            }
            Api::Completions => body["prompt"] = json!(prompt),
        }
        if self.cfg.usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        if let Some(p) = self.cfg.top_p {
            body["top_p"] = json!(p);
        }
        if let Some(s) = self.cfg.seed {
            body["seed"] = json!(s);
        }
        if self.cfg.ignore_eos {
            body["ignore_eos"] = json!(true);
        }
        if let (Some(b), Some(e)) = (body.as_object_mut(), self.extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::to_vec(&body).expect("a JSON value serialises")
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("Content-Type", "application/json".to_string()),
            ("Accept", "text/event-stream".to_string()),
        ];
        if let Some(k) = &self.api_key {
            h.push(("Authorization", format!("Bearer {k}")));
        }
        h
    }

    /// `GET {base}/models`: the ids served.
    fn served_models(&mut self) -> Result<Vec<String>, MethodError> {
        let headers = self.headers();
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let url = self.endpoint.url("/models");
        let mut wait = http::until(Instant::now() + Duration::from_secs(30), || {
            "no answer within 30 s".into()
        });
        let r = self
            .client
            .send("GET", "/models", &hdrs, None, &mut wait)
            .map_err(|e| MethodError::failed(format!("GET {url}: {e}; is the server running at base_url?")))?;
        let status = r.status;
        let text = r
            .text(1 << 20, &mut wait)
            .map_err(|e| MethodError::failed(format!("GET {url}: {e}")))?;
        if status != 200 {
            return Err(MethodError::failed(format!(
                "GET {url} answered HTTP {status}: {}",
                http::excerpt(&text, 300)
            )));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| MethodError::failed(format!("GET {url}: not JSON ({e}): {}", http::excerpt(&text, 200))))?;
        Ok(v.get("data")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn load_tokenizer(&self) -> Result<Option<Box<dyn Tokenizer>>, MethodError> {
        let Some(src) = &self.tokenizer_source else {
            return Ok(None);
        };
        let path = match src {
            TokenizerSource::File(p) => p.clone(),
            TokenizerSource::Catalog(name) => {
                let entry = crate::model::catalog::entry(name).ok_or_else(|| {
                    MethodError::failed(format!(
                        "tokenizer: no cached model named `{name}` (`oae models list`); give a .gguf or tokenizer.json path instead"
                    ))
                })?;
                let root = crate::model::catalog::cache_dir();
                if !entry.present(&root) {
                    return Err(MethodError::failed(format!(
                        "tokenizer: `{name}` is not fetched; run `oae models fetch {name}`"
                    )));
                }
                entry.model_path(&root)
            }
        };
        let tok: Box<dyn Tokenizer> = if path.extension().is_some_and(|e| e == "gguf") {
            Box::new(crate::model::HfTokenizer::from_gguf_file(&path)?)
        } else {
            let file = if path.is_dir() {
                path.join("tokenizer.json")
            } else {
                path
            };
            Box::new(crate::model::HfTokenizer::new(
                crate::model::HfTokenizer::from_file(&file)?,
                None,
                "tokenizer.json",
            ))
        };
        Ok(Some(tok))
    }

    /// Streams one request; tokens go to `sink` as chunks arrive.
    fn stream(
        &mut self,
        prompt: &str,
        max_tokens: u32,
        sink: &mut dyn TokenSink,
        probe: &mut Probe,
    ) -> Result<Ended, Failure> {
        self.chunks.clear();
        let body = self.body(prompt, max_tokens);
        let headers = self.headers();
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let start = Instant::now();
        let end_by = start + Duration::from_secs_f64(self.cfg.timeout_s.0);
        let first_limit = self.cfg.first_token_timeout_s.unwrap_or(self.cfg.timeout_s).0;
        let first_by = start + Duration::from_secs_f64(first_limit);
        let timeout_s = self.cfg.timeout_s.0;
        let mut first_seen = false;
        // Asked between reads: the harness's stop, then this method's own limits.
        let check = |sink: &mut dyn TokenSink, first_seen: bool| -> Result<(), Interrupt> {
            if sink.poll() == Flow::Stop {
                return Err(Interrupt::Stopped);
            }
            let now = Instant::now();
            if !first_seen && now >= first_by {
                return Err(Interrupt::TimedOut(format!(
                    "no first token within {first_limit} s (first_token_timeout_s)"
                )));
            }
            if now >= end_by {
                return Err(Interrupt::TimedOut(format!(
                    "not finished within {timeout_s} s (timeout_s)"
                )));
            }
            Ok(())
        };
        probe.phase("wait");
        let path = self.path();
        let url = self.endpoint.url(path);
        let mut resp = self
            .client
            .send("POST", path, &hdrs, Some(&body), &mut || check(sink, false))
            .map_err(|e| Failure::http(e, &url))?;
        if resp.status != 200 {
            let status = resp.status;
            let retry = resp.header("retry-after").map(str::to_string);
            let text = resp
                .text(4096, &mut || check(sink, false))
                .unwrap_or_else(|e| format!("(body unreadable: {e})"));
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .map(|v| stream::error_message(&v))
                .unwrap_or_else(|| http::excerpt(&text, 300));
            return Err(Failure::Status { status, msg, retry });
        }
        // A server that ignored `stream = true` answers with one JSON body: say so, rather
        // than report a stream that "ended without its end".
        if let Some(kind) = resp.header("content-type").map(str::to_ascii_lowercase)
            && !kind.contains("text/event-stream")
        {
            return Err(Failure::NotStream(kind));
        }
        let mut parser = SseParser::default();
        let mut events: Vec<SseEvent> = Vec::new();
        let mut usage = stream::Usage::default();
        let mut finish: Option<String> = None;
        let mut done = false;
        'read: loop {
            let bytes = match resp.chunk(&mut || check(sink, first_seen)) {
                Ok(b) => b,
                Err(e) => return Err(Failure::http(e, &url)),
            };
            if bytes.is_empty() {
                break 'read;
            }
            parser.push(bytes, &mut events);
            for ev in events.drain(..) {
                let d: Delta = stream::interpret(&ev).map_err(Failure::Malformed)?;
                if let Some(err) = d.error {
                    return Err(Failure::StreamError(err));
                }
                for (text, reasoning) in [(d.reasoning, true), (d.text, false)] {
                    if text.is_empty() {
                        continue;
                    }
                    if !first_seen {
                        first_seen = true;
                        probe.phase("stream");
                    }
                    let id = self.chunks.len() as u32;
                    self.chunks.push(Chunk { text, reasoning });
                    if sink.token(id) == Flow::Stop {
                        return Err(Failure::Interrupted(Interrupt::Stopped));
                    }
                }
                if d.finish.is_some() {
                    finish = d.finish;
                }
                if let Some(u) = d.usage {
                    usage = u;
                }
                if d.done {
                    done = true;
                }
            }
            if done {
                // Read the body to its end, so the connection serves the next request.
                while let Ok(b) = resp.chunk(&mut || check(sink, true)) {
                    if b.is_empty() {
                        break;
                    }
                }
                break 'read;
            }
        }
        drop(resp);
        if !done && (finish.is_none() || parser.pending()) {
            return Err(Failure::Cut {
                chunks: self.chunks.len(),
            });
        }
        let stop = match finish.as_deref() {
            Some("length") => StopReason::Length,
            Some(_) => StopReason::Eos,
            None if usage.completion.is_some_and(|c| c >= max_tokens) => StopReason::Length,
            None => StopReason::Eos,
        };
        Ok(Ended { stop, usage })
    }

    fn text_of(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        let mut in_reasoning = false;
        for &i in ids {
            let Some(c) = self.chunks.get(i as usize) else { continue };
            if c.reasoning != in_reasoning {
                out.push_str(if c.reasoning { "<think>" } else { "</think>" });
                in_reasoning = c.reasoning;
            }
            out.push_str(&c.text);
        }
        if in_reasoning && ids.last().is_some_and(|&l| l as usize + 1 == self.chunks.len()) {
            out.push_str("</think>");
        }
        out
    }
}

/// Why a request failed.
enum Failure {
    Connect(String),
    Protocol(String),
    Interrupted(Interrupt),
    Status {
        status: u16,
        msg: String,
        retry: Option<String>,
    },
    Malformed(String),
    StreamError(String),
    Cut {
        chunks: usize,
    },
    NotStream(String),
}

impl Failure {
    fn http(e: HttpError, url: &str) -> Failure {
        match e {
            HttpError::Connect(m) => Failure::Connect(format!("{url}: {m}")),
            HttpError::Protocol(m) => Failure::Protocol(format!("{url}: {m}")),
            HttpError::Interrupted(i) => Failure::Interrupted(i),
        }
    }
}

impl Method for OpenAi {
    fn files_dir(&mut self, dir: &Path) {
        self.files = Some(dir.to_path_buf());
    }

    fn prepare(&mut self) -> Result<(), MethodError> {
        if let Some(l) = self.cfg.launch.clone() {
            if self.instance == 0 {
                let log = self
                    .files
                    .clone()
                    .unwrap_or_else(|| std::env::temp_dir().join(format!("oae-{}", std::process::id())))
                    .join("server.log");
                let server = Server::start(&l, &self.cwd, &self.endpoint, log)?;
                self.facts.insert(
                    "server".into(),
                    json!({
                        "launched": true,
                        "command": l.command,
                        "ready": l.ready,
                        "ready_s": server.ready_s,
                        "log": server.log().display().to_string(),
                        "pid": server.pid(),
                    }),
                );
                self.server = Some(server);
            }
        } else {
            self.facts.insert("server".into(), json!({"launched": false}));
        }
        if self.cfg.check_model {
            let served = self.served_models()?;
            if !served.contains(&self.cfg.model) {
                return Err(MethodError::failed(format!(
                    "the server at {} does not serve model `{}` (model); it serves: {}",
                    self.cfg.base_url,
                    self.cfg.model,
                    if served.is_empty() {
                        "nothing listed".to_string()
                    } else {
                        served.join(", ")
                    }
                )));
            }
            self.facts.insert("served_models".into(), json!(served));
        }
        self.tokenizer = self.load_tokenizer()?;
        // The server's first-request costs (lazy allocations, JIT) belong to setup.
        for i in 0..self.cfg.warmup_requests {
            struct Discard;
            impl TokenSink for Discard {
                fn token(&mut self, _: u32) -> Flow {
                    Flow::Continue
                }
            }
            let mut probe = Probe::default();
            if let Err(f) = self.stream("Hello", 4, &mut Discard, &mut probe) {
                let e = self.error_of(f, &mut Probe::default());
                return Err(MethodError::failed(format!("warm-up request {} failed: {e}", i + 1)));
            }
        }
        Ok(())
    }

    fn serve(
        &mut self,
        request: &Request,
        sink: &mut dyn TokenSink,
        probe: &mut Probe,
    ) -> Result<Completion, MethodError> {
        match self.stream(&request.prompt, request.max_new_tokens, sink, probe) {
            Ok(ended) => {
                probe.end();
                let chunks = self.chunks.len() as u32;
                let (output, input, source) = match (ended.usage.completion, &self.tokenizer) {
                    (Some(c), _) => (c, ended.usage.prompt, TokenSourceKind::Usage),
                    (None, Some(t)) => {
                        let all: String = self.chunks.iter().map(|c| c.text.as_str()).collect();
                        let out = t.encode_more(&all).map(|v| v.len() as u32).unwrap_or(chunks);
                        let input = t.encode(&request.prompt).ok().map(|v| v.len() as u32);
                        (out, ended.usage.prompt.or(input), TokenSourceKind::Tokenizer)
                    }
                    (None, None) => (chunks, ended.usage.prompt, TokenSourceKind::Chunks),
                };
                let name = match source {
                    TokenSourceKind::Usage => "tokens_from_usage",
                    TokenSourceKind::Tokenizer => "tokens_from_tokenizer",
                    TokenSourceKind::Chunks => "tokens_from_chunks",
                };
                probe.set(name, 1.0);
                probe.set("chunks", f64::from(chunks));
                Ok(Completion {
                    input_tokens: input,
                    output_tokens: Some(output),
                    stop: ended.stop,
                })
            }
            Err(Failure::Interrupted(Interrupt::Stopped)) => {
                // The harness stopped it (deadline or abort): close the connection so the
                // server stops generating, and report what was streamed.
                self.client.disconnect();
                Ok(Completion {
                    input_tokens: None,
                    output_tokens: None,
                    stop: StopReason::Stopped,
                })
            }
            Err(f) => Err(self.error_of(f, probe)),
        }
    }

    fn reset(&mut self) {
        self.client.disconnect();
    }

    fn detokenize(&self, ids: &[u32]) -> Option<String> {
        Some(self.text_of(ids))
    }

    fn facts(&self) -> BTreeMap<String, Value> {
        let mut f = self.facts.clone();
        f.insert("base_url".into(), json!(self.cfg.base_url));
        f.insert("model".into(), json!(self.cfg.model));
        f.insert(
            "endpoint".into(),
            json!(match self.cfg.endpoint {
                Api::Chat => "chat",
                Api::Completions => "completions",
            }),
        );
        f.insert("api_key_env".into(), json!(self.cfg.api_key_env));
        f.insert("temperature".into(), json!(self.cfg.temperature));
        f.insert("stream_usage".into(), json!(self.cfg.usage));
        f.insert("server_kind".into(), json!(self.cfg.server));
        f.insert("warmup_requests".into(), json!(self.cfg.warmup_requests));
        f.insert("instance_label".into(), json!(self.label));
        f
    }
}

impl OpenAi {
    /// The request's error, with its counter marked on `probe`.
    fn error_of(&mut self, f: Failure, probe: &mut Probe) -> MethodError {
        self.client.disconnect();
        match f {
            Failure::Connect(m) => {
                probe.set("connect_failed", 1.0);
                MethodError::failed(format!("{m}; is the server running at base_url?"))
            }
            Failure::Protocol(m) => {
                probe.set("stream_cut", 1.0);
                MethodError::failed(m)
            }
            Failure::Interrupted(Interrupt::TimedOut(m)) => {
                probe.set("timed_out", 1.0);
                MethodError::Timeout(m)
            }
            Failure::Interrupted(Interrupt::Stopped) => MethodError::failed("stopped by the harness"),
            Failure::Status { status, msg, retry } => {
                let retry = retry.map(|r| format!(" (Retry-After: {r})")).unwrap_or_default();
                let text = format!("HTTP {status} from {}: {msg}{retry}", self.endpoint.url(self.path()));
                match status {
                    429 => {
                        probe.set("http_429", 1.0);
                        MethodError::Rejected(text)
                    }
                    400..=499 => {
                        probe.set("http_4xx", 1.0);
                        MethodError::failed(text)
                    }
                    _ => {
                        probe.set("http_5xx", 1.0);
                        MethodError::failed(text)
                    }
                }
            }
            Failure::Malformed(m) => {
                probe.set("stream_malformed", 1.0);
                MethodError::failed(format!("malformed stream from {}: {m}", self.endpoint.url(self.path())))
            }
            Failure::StreamError(m) => {
                probe.set("stream_error", 1.0);
                MethodError::failed(format!("the server reported an error mid-stream: {m}"))
            }
            Failure::NotStream(kind) => {
                probe.set("stream_malformed", 1.0);
                MethodError::failed(format!(
                    "{} answered `{kind}`, not a stream (text/event-stream): the server does not stream this endpoint; try the other `endpoint` or a server version that supports `stream = true`",
                    self.endpoint.url(self.path())
                ))
            }
            Failure::Cut { chunks } => {
                probe.set("stream_cut", 1.0);
                MethodError::failed(format!(
                    "the stream from {} ended after {chunks} chunk(s) without its end ([DONE] or a finish reason)",
                    self.endpoint.url(self.path())
                ))
            }
        }
    }
}
