//! oae's own trace formats: JSON lines `{"t_s", "input_tokens", "output_tokens"}` (optional
//! `"failed": true`) and CSV with header `t_s,input_tokens,output_tokens` (optional column
//! `failed`: 1/0 or true/false). `oae trace gen` writes both.

use std::io::BufRead;

use serde::Deserialize;

use super::csv;
use super::{RowIter, TraceFormat, TraceRow, err, jsonl_rows, number, tokens};

pub(super) const JSONL: TraceFormat = TraceFormat {
    name: "oae-jsonl",
    about: "oae JSONL: {\"t_s\": s, \"input_tokens\": n, \"output_tokens\": n, \"failed\": bool (optional)}",
    parse: parse_jsonl,
    detect: |line| super::json_keys(line).is_some_and(|k| k.iter().any(|k| k == "t_s")),
};

pub(super) const CSV: TraceFormat = TraceFormat {
    name: "oae-csv",
    about: "oae CSV: t_s,input_tokens,output_tokens[,failed]",
    parse: parse_csv,
    detect: |line| csv::header_has(line, COLUMNS),
};

/// The CSV columns every oae CSV trace has (`failed` is optional).
const COLUMNS: &[&str] = &["t_s", "input_tokens", "output_tokens"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    t_s: f64,
    input_tokens: u32,
    output_tokens: u32,
    #[serde(default)]
    failed: bool,
}

fn parse_jsonl<'a>(reader: Box<dyn BufRead + 'a>, file: &'a str) -> RowIter<'a> {
    jsonl_rows(reader, file, |text, file, line| {
        let r: Row = serde_json::from_str(text).map_err(|e| err(file, line, "(record)", e.to_string()))?;
        Ok(TraceRow {
            line,
            t_s: r.t_s,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            source_failed: r.failed,
            blocks: Vec::new(),
            reordered: false,
        })
    })
}

fn parse_csv<'a>(reader: Box<dyn BufRead + 'a>, file: &'a str) -> RowIter<'a> {
    csv::rows(reader, file, COLUMNS, |c, line, f| {
        Ok(TraceRow {
            line,
            t_s: number(c.field(f, line, "t_s")?, c.file, line, "t_s")?,
            input_tokens: tokens(c.field(f, line, "input_tokens")?, c.file, line, "input_tokens")?,
            output_tokens: tokens(c.field(f, line, "output_tokens")?, c.file, line, "output_tokens")?,
            source_failed: if c.has("failed") {
                flag(c.field(f, line, "failed")?, c.file, line)?
            } else {
                false
            },
            blocks: Vec::new(),
            reordered: false,
        })
    })
}

fn flag(v: &str, file: &str, line: usize) -> Result<bool, crate::ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" | "" => Ok(false),
        other => Err(err(file, line, "failed", format!("`{other}` is not 1/0 or true/false"))),
    }
}
