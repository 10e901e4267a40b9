//! Mooncake traces: JSON lines `{"timestamp": ms, "input_length": n, "output_length": n,
//! "hash_ids": [...]}`; each hash id names a 512-token block, and requests sharing leading
//! ids share a prompt prefix. Other keys are ignored.

use std::io::BufRead;

use serde::Deserialize;

use super::{RowIter, TraceFormat, TraceRow, err, jsonl_rows};

pub(super) const SPEC: TraceFormat = TraceFormat {
    name: "mooncake",
    about: "Mooncake JSONL: timestamp (ms), input_length, output_length, hash_ids (512-token prefix blocks)",
    parse,
    detect: |line| {
        super::json_keys(line).is_some_and(|k| {
            k.iter().any(|k| k == "timestamp") && k.iter().any(|k| k == "input_length" || k == "hash_ids")
        })
    },
};

#[derive(Deserialize)]
struct Row {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

fn parse<'a>(reader: Box<dyn BufRead + 'a>, file: &'a str) -> RowIter<'a> {
    jsonl_rows(reader, file, row)
}

fn row(text: &str, file: &str, line: usize) -> Result<TraceRow, crate::ConfigError> {
    let r: Row =
        serde_json::from_str(text).map_err(|e| err(file, line, "(record)", format!("not a Mooncake record: {e}")))?;
    Ok(TraceRow {
        line,
        t_s: r.timestamp / 1e3,
        input_tokens: r.input_length,
        output_tokens: r.output_length,
        source_failed: false,
        blocks: r.hash_ids,
        reordered: false,
    })
}
