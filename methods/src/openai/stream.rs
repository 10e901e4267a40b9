//! Server-sent events (the `text/event-stream` format) and what an OpenAI-compatible server
//! says in them: text deltas, reasoning deltas, the finish reason, token usage, errors.
//!
//! The event parser follows the WHATWG rules that matter here: lines end in `\n`, `\r\n` or
//! `\r`; `data:` lines of one event are joined with `\n`; a blank line dispatches the event;
//! `:` lines are comments; one space after the colon is dropped. An event the stream ends
//! inside of is not dispatched (the caller sees a stream cut short).

use serde_json::Value;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when given.
    pub event: Option<String>,
    /// The `data:` lines, joined.
    pub data: String,
}

/// Splits a byte stream into events as its bytes arrive.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte was `\r` (a following `\n` belongs to the same line end).
    after_cr: bool,
    data: Option<String>,
    event: Option<String>,
}

impl SseParser {
    /// Feeds `bytes`, appending every event they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
    }

    /// Whether bytes of an undispatched event are pending (a stream ending now was cut).
    pub fn pending(&self) -> bool {
        !self.line.is_empty() || self.data.is_some()
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseEvent {
                    event: self.event.take(),
                    data,
                });
            }
            self.event = None;
            return;
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            _ => {} // id, retry and unknown fields: nothing here uses them
        }
    }
}

/// Token counts a server reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt: Option<u32>,
    /// Generated tokens.
    pub completion: Option<u32>,
}

/// What one event of an OpenAI-compatible stream says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Answer text.
    pub text: String,
    /// Reasoning text (`reasoning_content` / `reasoning` of reasoning models' servers).
    pub reasoning: String,
    /// `finish_reason`, when this event ends the choice.
    pub finish: Option<String>,
    /// Token usage, when this event carries it.
    pub usage: Option<Usage>,
    /// The `[DONE]` sentinel.
    pub done: bool,
    /// An error the server reported inside the stream.
    pub error: Option<String>,
}

/// Interprets one event; `Err` names what is malformed about it.
pub fn interpret(ev: &SseEvent) -> Result<Delta, String> {
    let data = ev.data.trim();
    if data == "[DONE]" {
        return Ok(Delta {
            done: true,
            ..Delta::default()
        });
    }
    let v: Value = serde_json::from_str(data).map_err(|e| {
        format!(
            "an event's data is not JSON ({e}): `{}`",
            super::http::excerpt(data, 120)
        )
    })?;
    let mut d = Delta::default();
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        d.error = Some(error_message(err));
        return Ok(d);
    }
    if ev.event.as_deref() == Some("error") {
        d.error = Some(error_message(&v));
        return Ok(d);
    }
    if !v.is_object() {
        return Err(format!(
            "an event is not a JSON object: `{}`",
            super::http::excerpt(data, 120)
        ));
    }
    match v.get("choices") {
        None | Some(Value::Null) => {}
        Some(Value::Array(choices)) => {
            if let Some(c) = choices.first() {
                let text_of = |v: Option<&Value>, what: &str| -> Result<String, String> {
                    match v {
                        None | Some(Value::Null) => Ok(String::new()),
                        Some(Value::String(s)) => Ok(s.clone()),
                        Some(other) => Err(format!("`{what}` is not a string: {other}")),
                    }
                };
                if let Some(delta) = c.get("delta") {
                    d.text = text_of(delta.get("content"), "delta.content")?;
                    d.reasoning = text_of(
                        delta.get("reasoning_content").or_else(|| delta.get("reasoning")),
                        "delta.reasoning_content",
                    )?;
                } else {
                    d.text = text_of(c.get("text"), "text")?;
                }
                d.finish = c.get("finish_reason").and_then(Value::as_str).map(str::to_string);
            }
        }
        Some(other) => {
            return Err(format!(
                "`choices` is not an array: {}",
                super::http::excerpt(&other.to_string(), 80)
            ));
        }
    }
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        let count = |k: &str| u.get(k).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
        d.usage = Some(Usage {
            prompt: count("prompt_tokens"),
            completion: count("completion_tokens"),
        });
    }
    Ok(d)
}

/// The message of an OpenAI-style error object (or the whole value when it has none).
pub fn error_message(err: &Value) -> String {
    let msg = err
        .get("message")
        .or_else(|| err.get("error").and_then(|e| e.get("message")))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| err.as_str().map(str::to_string))
        .unwrap_or_else(|| err.to_string());
    super::http::excerpt(&msg, 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out);
        }
        out
    }

    #[test]
    fn events_survive_any_split_and_line_ending() {
        let whole = b"event: message\r\ndata: {\"a\":1}\r\n\r\n: comment\n\ndata:x\ndata: y\n\n".as_slice();
        let want = vec![
            SseEvent {
                event: Some("message".into()),
                data: "{\"a\":1}".into(),
            },
            SseEvent {
                event: None,
                data: "x\ny".into(),
            },
        ];
        assert_eq!(events(&[whole]), want);
        for cut in 1..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(events(&[a, b]), want, "split at {cut}");
        }
        // Bare `\r` line ends, split between `\r` and the next line.
        assert_eq!(events(&[b"data: z\r", b"\r"]).len(), 1);
    }

    #[test]
    fn an_event_cut_by_the_stream_end_is_pending_not_dispatched() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.push(b"data: {\"choices\":[]}\n", &mut out);
        assert!(out.is_empty());
        assert!(p.pending());
        p.push(b"\n", &mut out);
        assert_eq!(out.len(), 1);
        assert!(!p.pending());
    }

    fn delta(data: &str) -> Result<Delta, String> {
        interpret(&SseEvent {
            event: None,
            data: data.into(),
        })
    }

    #[test]
    fn chat_completions_and_usage_chunks_are_read() {
        let d = delta(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}"#).unwrap();
        assert_eq!(d.text, "");
        let d = delta(r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}"#).unwrap();
        assert_eq!(d.text, "Hi");
        let d = delta(r#"{"choices":[{"delta":{"reasoning_content":"hmm"}}]}"#).unwrap();
        assert_eq!(d.reasoning, "hmm");
        let d = delta(r#"{"choices":[{"text":" there","finish_reason":"length"}]}"#).unwrap();
        assert_eq!((d.text.as_str(), d.finish.as_deref()), (" there", Some("length")));
        let d = delta(r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5}}"#).unwrap();
        assert_eq!(
            d.usage,
            Some(Usage {
                prompt: Some(12),
                completion: Some(5)
            })
        );
        assert!(delta("[DONE]").unwrap().done);
    }

    #[test]
    fn errors_and_malformed_events_are_told_apart() {
        let d = delta(r#"{"error":{"message":"model overloaded","type":"server_error"}}"#).unwrap();
        assert_eq!(d.error.as_deref(), Some("model overloaded"));
        assert!(delta("{not json").unwrap_err().contains("not JSON"));
        assert!(delta("[1,2]").unwrap_err().contains("not a JSON object"));
        assert!(delta(r#"{"choices":{"a":1}}"#).unwrap_err().contains("not an array"));
        assert!(
            delta(r#"{"choices":[{"delta":{"content":7}}]}"#)
                .unwrap_err()
                .contains("not a string")
        );
    }
}
