//! oae's own trace formats: JSON lines `{"t_s", "input_tokens", "output_tokens"}` (optional
//! `"failed": true`) and CSV with header `t_s,input_tokens,output_tokens`.

use std::io::BufRead;

use serde::Deserialize;

use super::csv::Csv;
use super::{TraceFormat, TraceRow, err, number, tokens};

pub(super) const JSONL: TraceFormat = TraceFormat {
    name: "oae-jsonl",
    about: "oae JSONL: {\"t_s\": s, \"input_tokens\": n, \"output_tokens\": n, \"failed\": bool (optional)}",
    parse: parse_jsonl,
};

pub(super) const CSV: TraceFormat = TraceFormat {
    name: "oae-csv",
    about: "oae CSV: t_s,input_tokens,output_tokens",
    parse: parse_csv,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    t_s: f64,
    input_tokens: u32,
    output_tokens: u32,
    #[serde(default)]
    failed: bool,
}

fn parse_jsonl<'a>(
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
                .map_err(|e| err(file, line, "(record)", e.to_string()))
                .map(|r| TraceRow {
                    line,
                    t_s: r.t_s,
                    input_tokens: r.input_tokens,
                    output_tokens: r.output_tokens,
                    source_failed: r.failed,
                    blocks: Vec::new(),
                }),
        )
    }))
}

fn parse_csv<'a>(
    reader: Box<dyn BufRead + 'a>,
    file: &'a str,
) -> Box<dyn Iterator<Item = Result<TraceRow, crate::ConfigError>> + 'a> {
    let mut csv = match Csv::open(reader, file, &["t_s", "input_tokens", "output_tokens"]) {
        Ok(Some(c)) => c,
        Ok(None) => return Box::new(std::iter::empty()),
        Err(e) => return Box::new(std::iter::once(Err(e))),
    };
    Box::new(std::iter::from_fn(move || {
        let rec = csv.next_record()?;
        Some(rec.and_then(|(line, f)| {
            Ok(TraceRow {
                line,
                t_s: number(csv.field(&f, line, "t_s")?, file, line, "t_s")?,
                input_tokens: tokens(csv.field(&f, line, "input_tokens")?, file, line, "input_tokens")?,
                output_tokens: tokens(csv.field(&f, line, "output_tokens")?, file, line, "output_tokens")?,
                source_failed: false,
                blocks: Vec::new(),
            })
        }))
    }))
}
