//! Mooncake traces: JSON lines `{"timestamp": ms, "input_length": n, "output_length": n,
//! "hash_ids": [...]}`; each hash id names a 512-token block, and requests sharing leading
//! ids share a prompt prefix. Other keys are ignored.

use std::io::BufRead;

use serde::Deserialize;

use super::{TraceFormat, TraceRow, err};

pub(super) const SPEC: TraceFormat = TraceFormat {
    name: "mooncake",
    about: "Mooncake JSONL: timestamp (ms), input_length, output_length, hash_ids (512-token prefix blocks)",
    parse,
};

#[derive(Deserialize)]
struct Row {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

fn parse<'a>(
    reader: Box<dyn BufRead + 'a>,
    file: &'a str,
) -> Box<dyn Iterator<Item = Result<TraceRow, crate::ConfigError>> + 'a> {
    Box::new(reader.lines().enumerate().filter_map(move |(i, l)| {
        let line = i + 1;
        let text = match l {
            Err(e) => return Some(Err(err(file, line, "(file)", format!("cannot read: {e}")))),
            Ok(t) if t.trim().is_empty() => return None,
            Ok(t) => t,
        };
        Some(
            serde_json::from_str::<Row>(&text)
                .map_err(|e| err(file, line, "(record)", format!("not a Mooncake record: {e}")))
                .map(|r| TraceRow {
                    line,
                    t_s: r.timestamp / 1e3,
                    input_tokens: r.input_length,
                    output_tokens: r.output_length,
                    source_failed: false,
                    blocks: r.hash_ids,
                }),
        )
    }))
}
