//! Request traces: real traffic shapes read from files, streamed with bounded memory.
//!
//! Every format yields [`TraceRow`]s (absolute timestamp, token lengths, whether the request
//! failed in the source, and shared-prefix block ids when the format has them). Checks that
//! apply to all formats — timestamps finite, non-negative and non-decreasing (or stepping
//! back by no more than an explicit [`Order::tolerance_s`]); at least one row — are made
//! once, in [`rows`], so every error names the file, line and field.
//!
//! Adding a format = a file here with a `SPEC` (its name, parser and how to recognise its
//! first line) and a line in [`registry`]; [`detect`] then knows it.

mod azure;
mod burstgpt;
mod csv;
pub mod inspect;
mod mooncake;
mod oae;

use std::io::BufRead;
use std::path::Path;

use crate::ConfigError;

/// One request of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    /// 1-based line in the file.
    pub line: usize,
    /// Arrival time, seconds on the trace's own clock (only differences matter).
    pub t_s: f64,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Generated tokens (0 for a request that failed in the source).
    pub output_tokens: u32,
    /// The source recorded this request as failed (e.g. BurstGPT rows with no response).
    pub source_failed: bool,
    /// Ids of the prompt's 512-token blocks (Mooncake): rows sharing leading ids share a
    /// prompt prefix.
    pub blocks: Vec<u64>,
    /// The source's timestamp stepped back (within the accepted tolerance) and was raised to
    /// the previous row's: the row keeps its place in the file.
    pub reordered: bool,
}

/// How out-of-order timestamps are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Order {
    /// A timestamp may step back by at most this much, s (0: never). Such a row is kept in
    /// file order with the previous row's timestamp and flagged [`TraceRow::reordered`] —
    /// common where logs from several front-ends were merged. Larger steps are errors.
    pub tolerance_s: f64,
}

/// The rows a format's parser yields, lazily.
pub type RowIter<'a> = Box<dyn Iterator<Item = Result<TraceRow, ConfigError>> + 'a>;

/// A trace file format.
pub struct TraceFormat {
    /// `format = "..."` in a suite.
    pub name: &'static str,
    /// One line for `oae list workloads`.
    pub about: &'static str,
    /// Parses lines into rows, lazily.
    pub parse: for<'a> fn(Box<dyn BufRead + 'a>, &'a str) -> RowIter<'a>,
    /// Whether the file's first non-empty line (a CSV header or a JSON record) is this
    /// format's.
    pub detect: fn(&str) -> bool,
}

/// Every trace format oae reads, one line each.
pub fn registry() -> &'static [TraceFormat] {
    &[azure::SPEC, burstgpt::SPEC, mooncake::SPEC, oae::JSONL, oae::CSV]
}

/// The format named `name`, or an error listing the valid ones.
pub fn format(name: &str) -> Result<&'static TraceFormat, String> {
    registry().iter().find(|f| f.name == name).ok_or_else(|| {
        let names: Vec<_> = registry().iter().map(|f| f.name).collect();
        format!("unknown trace format `{name}`; one of: {}", names.join(", "))
    })
}

/// The format of the trace at `path`, from its first non-empty line: the first registered
/// format that recognises it.
pub fn detect(path: &Path) -> Result<&'static TraceFormat, String> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    let first = std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| format!("{}: the file is empty", path.display()))?;
    let line = first.trim_start_matches('\u{feff}');
    registry().iter().find(|f| (f.detect)(line)).ok_or_else(|| {
        let names: Vec<_> = registry().iter().map(|f| f.name).collect();
        format!(
            "{}: cannot tell the trace format from its first line; pass --format (one of: {})",
            path.display(),
            names.join(", ")
        )
    })
}

/// The keys of a JSON object on one line (`None`: not a JSON object).
pub(crate) fn json_keys(line: &str) -> Option<Vec<String>> {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line.trim()).ok()?;
    Some(v.keys().cloned().collect())
}

/// Streams validated rows from `reader` (labelled `file` in errors).
pub fn rows<'a>(
    fmt: &TraceFormat,
    reader: Box<dyn BufRead + 'a>,
    file: &'a str,
    order: Order,
) -> impl Iterator<Item = Result<TraceRow, ConfigError>> + 'a {
    let mut inner = (fmt.parse)(reader, file);
    let mut last: Option<f64> = None;
    let mut seen = false;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match inner.next() {
            None => {
                done = true;
                (!seen).then(|| {
                    Err(err(
                        file,
                        1,
                        "(file)",
                        "the trace has no rows; give a trace with at least one request",
                    ))
                })
            }
            Some(Err(e)) => {
                done = true;
                Some(Err(e))
            }
            Some(Ok(mut row)) => {
                seen = true;
                let back = last.map_or(0.0, |l| l - row.t_s);
                let bad = if !row.t_s.is_finite() {
                    Some("timestamp is not a finite number".to_string())
                } else if row.t_s < 0.0 {
                    Some(format!("timestamp {} is negative", row.t_s))
                } else if back > order.tolerance_s {
                    Some(format!(
                        "timestamp {} is earlier than the previous row's {} by {back:.3e} s; traces must be sorted by time — sort the file, or accept steps back this small with `reorder_tolerance_s = {back:.1e}` in the trace table (`--reorder-tolerance-s` for `oae trace`)",
                        row.t_s,
                        last.unwrap_or_default()
                    ))
                } else {
                    None
                };
                if bad.is_none() && back > 0.0 {
                    row.t_s = last.unwrap_or(row.t_s);
                    row.reordered = true;
                }
                if let Some(m) = bad {
                    done = true;
                    return Some(Err(err(file, row.line, "timestamp", m)));
                }
                last = Some(row.t_s);
                Some(Ok(row))
            }
        }
    })
}

/// Opens `path` and streams its validated rows.
pub fn open<'a>(
    fmt: &TraceFormat,
    path: &Path,
    label: &'a str,
    order: Order,
) -> Result<impl Iterator<Item = Result<TraceRow, ConfigError>> + 'a, ConfigError> {
    let f = std::fs::File::open(path).map_err(|e| err(label, 0, "path", format!("cannot open the trace: {e}")))?;
    Ok(rows(
        fmt,
        Box::new(std::io::BufReader::with_capacity(1 << 16, f)),
        label,
        order,
    ))
}

/// Rows of a JSON-lines trace: blank lines skipped, each other line mapped with `row`.
pub(crate) fn jsonl_rows<'a>(
    reader: Box<dyn BufRead + 'a>,
    file: &'a str,
    row: fn(&str, &str, usize) -> Result<TraceRow, ConfigError>,
) -> RowIter<'a> {
    Box::new(reader.lines().enumerate().filter_map(move |(i, l)| {
        let line = i + 1;
        match l {
            Err(e) => Some(Err(err(file, line, "(file)", format!("cannot read: {e}")))),
            Ok(t) if t.trim().is_empty() => None,
            Ok(t) => Some(row(&t, file, line)),
        }
    }))
}

/// Parses `data` as a trace of format `name` to the end or the first error, checking what
/// every parser promises: errors name a line ≥ 1 (or 0 for an unreadable file) and a field;
/// rows have finite, non-negative, non-decreasing timestamps and non-decreasing lines. Panics if a
/// promise is broken — the body of the fuzz targets (`fuzz/`) and of the parser property test.
pub fn check_parser(name: &str, data: &[u8]) {
    let fmt = format(name).expect("a registered format");
    let mut last: Option<(f64, usize)> = None;
    for r in rows(fmt, Box::new(std::io::Cursor::new(data)), "fuzz", Order::default()) {
        match r {
            Ok(row) => {
                assert!(row.t_s.is_finite() && row.t_s >= 0.0, "bad timestamp {}", row.t_s);
                if let Some((t, line)) = last {
                    assert!(row.t_s >= t, "timestamps went backwards");
                    // Non-decreasing, not increasing: a lone `\r` ends a CSV record but not a
                    // line, so two records can share a line number.
                    assert!(row.line >= line, "lines went backwards");
                }
                assert!(!row.source_failed || fmt.name != "burstgpt" || row.output_tokens == 0);
                last = Some((row.t_s, row.line));
            }
            Err(e) => {
                assert!(!e.key.is_empty() && !e.message.is_empty(), "unlabelled error {e:?}");
                assert_eq!(e.file, "fuzz");
                break;
            }
        }
    }
}

pub(crate) fn err(file: &str, line: usize, field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line,
        key: field.to_string(),
        message: message.into(),
    }
}

/// Parses a token count field.
pub(crate) fn tokens(v: &str, file: &str, line: usize, field: &str) -> Result<u32, ConfigError> {
    let t = v.trim();
    let n: f64 = t
        .parse()
        .map_err(|_| err(file, line, field, format!("`{t}` is not a number")))?;
    if !n.is_finite() || n < 0.0 || n.fract() != 0.0 || n > u32::MAX as f64 {
        return Err(err(file, line, field, format!("`{t}` is not a whole token count >= 0")));
    }
    Ok(n as u32)
}

/// Parses a finite number field.
pub(crate) fn number(v: &str, file: &str, line: usize, field: &str) -> Result<f64, ConfigError> {
    let t = v.trim();
    match t.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err(err(file, line, field, format!("`{t}` is not a finite number"))),
        Err(_) => Err(err(file, line, field, format!("`{t}` is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(fmt: &str, text: &str) -> Result<Vec<TraceRow>, ConfigError> {
        let f = format(fmt).unwrap();
        rows(
            f,
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            "t.csv",
            Order::default(),
        )
        .collect()
    }

    #[test]
    fn all_formats_parse_their_sample() {
        let azure = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n";
        let r = parse("azure", azure).unwrap();
        assert_eq!((r[0].input_tokens, r[0].output_tokens), (374, 44));
        assert!((r[1].t_s - r[0].t_s - 4.314579).abs() < 1e-6);

        let burst = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,472,18,490,Conversation log\n45,GPT-4,1087,0,1087,API log\n";
        let r = parse("burstgpt", burst).unwrap();
        assert_eq!(r.len(), 2, "failed rows are kept");
        assert!(!r[0].source_failed && r[1].source_failed);

        let moon = "{\"timestamp\": 0, \"input_length\": 6955, \"output_length\": 52, \"hash_ids\": [46, 47, 48]}\n{\"timestamp\": 1500, \"input_length\": 700, \"output_length\": 20, \"hash_ids\": [46]}\n";
        let r = parse("mooncake", moon).unwrap();
        assert_eq!(r[1].t_s, 1.5);
        assert_eq!(r[0].blocks, vec![46, 47, 48]);

        let j = "{\"t_s\": 0.5, \"input_tokens\": 10, \"output_tokens\": 3}\n\n{\"t_s\": 0.75, \"input_tokens\": 4, \"output_tokens\": 2}\n";
        assert_eq!(parse("oae-jsonl", j).unwrap().len(), 2);
        let c = "t_s,input_tokens,output_tokens\n0,5,5\n1.25,6,7\n";
        assert_eq!(parse("oae-csv", c).unwrap()[1].output_tokens, 7);
        let c = "t_s,input_tokens,output_tokens,failed\n0,5,5,0\n1.25,6,0,1\n";
        let r = parse("oae-csv", c).unwrap();
        assert!(!r[0].source_failed && r[1].source_failed);
        let e = parse("oae-csv", "t_s,input_tokens,output_tokens,failed\n0,5,5,maybe\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "failed"));
    }

    #[test]
    fn malformed_rows_name_line_and_field() {
        let hdr = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n";
        let cases = [
            (
                format!("{hdr}5,ChatGPT,x,18,490,Conversation log\n"),
                2,
                "Request tokens",
            ),
            (format!("{hdr}5,ChatGPT,472\n"), 2, "Response tokens"),
            (
                format!("{hdr}5,ChatGPT,472,18,490,x\n3,ChatGPT,1,1,2,x\n"),
                3,
                "timestamp",
            ),
            (format!("{hdr}-1,ChatGPT,472,18,490,x\n"), 2, "timestamp"),
            (format!("{hdr}NaN,ChatGPT,472,18,490,x\n"), 2, "Timestamp"),
            (hdr.to_string(), 1, "(file)"),
            ("".to_string(), 1, "(file)"),
            ("Timestamp,Model\n1,x\n".to_string(), 1, "Request tokens"),
        ];
        for (text, line, field) in cases {
            let e = parse("burstgpt", &text).unwrap_err();
            assert_eq!((e.line, e.key.as_str()), (line, field), "{e} for {text:?}");
        }
        let e = parse("mooncake", "{\"timestamp\": 1, \"input_length\": 5}\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("output_length"), "{e}");
        let e = parse(
            "azure",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-13-16 18:15:46,1,1\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "TIMESTAMP"));
    }

    #[test]
    fn quoted_commas_do_not_shift_columns() {
        let text = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,\"GPT-4, 0613\",472,18,490,\"API log\"\n";
        let r = parse("burstgpt", text).unwrap();
        assert_eq!((r[0].input_tokens, r[0].output_tokens), (472, 18));
    }

    #[test]
    fn small_steps_back_are_accepted_only_within_an_explicit_tolerance() {
        let text = "t_s,input_tokens,output_tokens\n10.0000010,1,1\n10.0000005,1,1\n10.5,1,1\n";
        let e = parse("oae-csv", text).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (3, "timestamp"));
        assert!(e.message.contains("reorder_tolerance_s"), "{e}");
        let f = format("oae-csv").unwrap();
        let tolerant = Order { tolerance_s: 1e-6 };
        let r: Vec<TraceRow> = rows(
            f,
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            "t",
            tolerant,
        )
        .collect::<Result<_, _>>()
        .unwrap();
        assert_eq!(r.len(), 3);
        assert!(!r[0].reordered && r[1].reordered && !r[2].reordered);
        assert_eq!(r[1].t_s, r[0].t_s, "kept in file order at the previous timestamp");
        let far = "t_s,input_tokens,output_tokens\n10,1,1\n9,1,1\n";
        let e = rows(
            f,
            Box::new(std::io::Cursor::new(far.as_bytes().to_vec())),
            "t",
            tolerant,
        )
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err();
        assert_eq!(e.line, 3, "a step beyond the tolerance is still an error");
    }

    #[test]
    fn every_format_recognises_its_own_first_line_and_no_other() {
        let samples = [
            ("azure", "TIMESTAMP,ContextTokens,GeneratedTokens"),
            (
                "burstgpt",
                "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type",
            ),
            // Later BurstGPT releases: extra columns, another order.
            (
                "burstgpt",
                "Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type",
            ),
            ("burstgpt", "Model,Log Type,Response tokens,Request tokens,Timestamp"),
            (
                "mooncake",
                "{\"timestamp\": 0, \"input_length\": 6955, \"output_length\": 52, \"hash_ids\": [46]}",
            ),
            (
                "oae-jsonl",
                "{\"t_s\": 0.5, \"input_tokens\": 10, \"output_tokens\": 3}",
            ),
            ("oae-csv", "t_s,input_tokens,output_tokens,failed"),
            ("oae-csv", "\"t_s\",\"output_tokens\",\"input_tokens\""),
        ];
        for (name, line) in samples {
            let found: Vec<&str> = registry().iter().filter(|f| (f.detect)(line)).map(|f| f.name).collect();
            assert_eq!(found, vec![name], "{line}");
        }
        for line in ["time,prompt,answer", "{\"ts\": 1}", "not a trace", "[1, 2, 3]"] {
            assert!(registry().iter().all(|f| !(f.detect)(line)), "{line}");
        }
    }

    #[test]
    fn unknown_format_lists_the_valid_ones() {
        assert!(format("sharegpt").err().unwrap().contains("burstgpt"));
    }
}
