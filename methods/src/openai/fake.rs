//! A scripted OpenAI-compatible server: the `openai` method's test double and the fixed
//! reference oae's client overhead is measured against (`oae fake-server`).
//!
//! It serves `GET /health`, `GET {prefix}/models`, and streamed `POST {prefix}/chat/completions`
//! and `{prefix}/completions`: `ttft_ms` after the request arrives the first chunk, then one
//! chunk every `itl_ms`, each one word (`w0 `, `w1 `, …; one token each), up to the request's
//! `max_tokens` or `tokens`, then a usage chunk (unless `usage = false`) and `[DONE]`, in
//! chunked transfer coding like the real servers. The k-th completion request (from 0, over all
//! connections) follows `faults[k % len]`:
//!
//! - `ok` — the stream above;
//! - `429`, `500`, any status — that status with an OpenAI error body;
//! - `cut` — the connection closes after half the chunks;
//! - `malformed` — an event whose data is not JSON after half the chunks;
//! - `error` — an error event after half the chunks;
//! - `silent` — accepts and never answers (until the client hangs up);
//! - `json` — one complete JSON answer instead of a stream.
//!
//! Requests are served one at a time per connection, connections concurrently.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// What the k-th completion request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A full stream.
    Ok,
    /// This HTTP status with an error body.
    Status(u16),
    /// The connection closes mid-stream.
    Cut,
    /// A non-JSON event mid-stream.
    Malformed,
    /// An error event mid-stream.
    Error,
    /// Never answers.
    Silent,
    /// One complete JSON body instead of a stream (a server ignoring `stream = true`).
    Json,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "ok" => Fault::Ok,
            "cut" => Fault::Cut,
            "malformed" => Fault::Malformed,
            "error" => Fault::Error,
            "silent" => Fault::Silent,
            "json" => Fault::Json,
            n => Fault::Status(
                n.parse::<u16>()
                    .ok()
                    .filter(|c| (400..600).contains(c))
                    .ok_or_else(|| {
                        format!(
                            "unknown fault `{n}`: ok, cut, malformed, error, silent, json or an HTTP status 400-599"
                        )
                    })?,
            ),
        })
    }
}

/// The server's script.
#[derive(Debug, Clone)]
pub struct Script {
    /// The model id it serves.
    pub model: String,
    /// Path prefix of the API (`/v1`).
    pub prefix: String,
    /// Time from a request's arrival to its first chunk, ms.
    pub ttft_ms: f64,
    /// Time between chunks, ms.
    pub itl_ms: f64,
    /// Chunks per answer (capped by the request's `max_tokens`); `None`: `max_tokens`.
    pub tokens: Option<u32>,
    /// Send a usage chunk.
    pub usage: bool,
    /// Per completion request, cycled.
    pub faults: Vec<Fault>,
    /// Seconds `/health` answers 503 after start (a model still loading).
    pub loading_s: f64,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            model: "fake".into(),
            prefix: "/v1".into(),
            ttft_ms: 0.0,
            itl_ms: 0.0,
            tokens: None,
            usage: true,
            faults: vec![Fault::Ok],
            loading_s: 0.0,
        }
    }
}

/// A running fake server (stops when dropped).
pub struct FakeServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
}

impl FakeServer {
    /// Listens on `addr` (port 0: any free port) and serves `script` on background threads.
    pub fn start(addr: &str, script: Script) -> std::io::Result<FakeServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let script = Arc::new(script);
        let started = Instant::now();
        {
            let (stop, served) = (stop.clone(), served.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (script, served, stop) = (script.clone(), served.clone(), stop.clone());
                    std::thread::spawn(move || {
                        let _ = serve_connection(conn, &script, &served, &stop, started);
                    });
                }
            });
        }
        Ok(FakeServer { addr, stop, served })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR{prefix}`.
    pub fn base_url(&self, prefix: &str) -> String {
        format!("http://{}{prefix}", self.addr)
    }

    /// Completion requests received so far.
    pub fn completions(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

fn serve_connection(
    conn: TcpStream,
    script: &Script,
    served: &AtomicU64,
    stop: &AtomicBool,
    started: Instant,
) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let arrived = Instant::now();
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.trim().eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let p = &script.prefix;
        match (method.as_str(), path.as_str()) {
            ("GET", "/health") => {
                if started.elapsed().as_secs_f64() < script.loading_s {
                    respond(
                        &mut out,
                        503,
                        &json!({"error": {"message": "Loading model", "code": 503}}),
                    )?;
                } else {
                    respond(&mut out, 200, &json!({"status": "ok"}))?;
                }
            }
            ("GET", x) if x == format!("{p}/models") => {
                respond(
                    &mut out,
                    200,
                    &json!({"object": "list", "data": [{"id": script.model, "object": "model"}]}),
                )?;
            }
            ("POST", x) if x == format!("{p}/chat/completions") || x == format!("{p}/completions") => {
                let chat = x.ends_with("/chat/completions");
                let k = served.fetch_add(1, Ordering::Relaxed);
                let fault = script.faults[(k as usize) % script.faults.len().max(1)];
                let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if req.get("model").and_then(Value::as_str) != Some(script.model.as_str()) {
                    respond(
                        &mut out,
                        404,
                        &json!({"error": {"message": format!("model `{}` not found", req.get("model").unwrap_or(&Value::Null)), "type": "invalid_request_error"}}),
                    )?;
                    continue;
                }
                if !stream(&mut out, &mut reader, script, &req, chat, fault, arrived)? {
                    return Ok(());
                }
            }
            _ => respond(
                &mut out,
                404,
                &json!({"error": {"message": format!("no route {method} {path}")}}),
            )?,
        }
    }
}

fn respond(out: &mut TcpStream, status: u16, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        reason(status),
        body.len()
    )?;
    out.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn chunk(out: &mut TcpStream, data: &str) -> std::io::Result<()> {
    write!(out, "{:x}\r\n{data}\r\n", data.len())?;
    out.flush()
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Streams one answer; `false` when the connection must close.
fn stream(
    out: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    script: &Script,
    req: &Value,
    chat: bool,
    fault: Fault,
    arrived: Instant,
) -> std::io::Result<bool> {
    match fault {
        Fault::Status(s) => {
            let kind = if s == 429 {
                "rate_limit_exceeded"
            } else {
                "server_error"
            };
            respond(
                out,
                s,
                &json!({"error": {"message": format!("scripted {s}"), "type": kind}}),
            )?;
            return Ok(true);
        }
        Fault::Json => {
            respond(
                out,
                200,
                &json!({"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "w0 "}, "finish_reason": "stop"}]}),
            )?;
            return Ok(true);
        }
        Fault::Silent => {
            // Hold the connection until the client hangs up.
            let mut b = [0u8; 1];
            let _ = reader.get_mut().set_read_timeout(None);
            let _ = reader.read(&mut b);
            return Ok(false);
        }
        _ => {}
    }
    let max = req.get("max_tokens").and_then(Value::as_u64).unwrap_or(16) as u32;
    let n = script.tokens.map_or(max, |t| t.min(max));
    let prompt_tokens = if chat {
        req.get("messages")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|x| x.get("content").and_then(Value::as_str))
                    .map(|c| c.split_whitespace().count())
                    .sum::<usize>()
            })
            .unwrap_or(0)
    } else {
        req.get("prompt")
            .and_then(Value::as_str)
            .map_or(0, |p| p.split_whitespace().count())
    };
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
    )?;
    let event = |i: u32, finish: Option<&str>| -> String {
        let word = format!("w{i} ");
        let choice = if chat {
            json!({"index": 0, "delta": {"content": word}, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": word, "finish_reason": finish})
        };
        format!(
            "data: {}\n\n",
            json!({"object": "chunk", "model": script.model, "choices": [choice]})
        )
    };
    if chat {
        // The role chunk real servers send first (no text: not a token).
        chunk(
            out,
            &format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
            ),
        )?;
    }
    let half = n / 2;
    for i in 0..n {
        sleep_until(arrived + Duration::from_secs_f64((script.ttft_ms + script.itl_ms * f64::from(i)) / 1e3));
        if i == half {
            match fault {
                Fault::Cut => return Ok(false),
                Fault::Malformed => {
                    chunk(out, "data: {\"choices\": [oops\n\n")?;
                    chunk(out, "")?;
                    return Ok(true);
                }
                Fault::Error => {
                    chunk(
                        out,
                        &format!(
                            "data: {}\n\n",
                            json!({"error": {"message": "scripted mid-stream error"}})
                        ),
                    )?;
                    chunk(out, "")?;
                    return Ok(true);
                }
                _ => {}
            }
        }
        let finish = (i + 1 == n).then_some(if n == max { "length" } else { "stop" });
        chunk(out, &event(i, finish))?;
    }
    if script.usage {
        let usage = json!({"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens as u32 + n}});
        chunk(out, &format!("data: {usage}\n\n"))?;
    }
    chunk(out, "data: [DONE]\n\n")?;
    chunk(out, "")?;
    Ok(true)
}
