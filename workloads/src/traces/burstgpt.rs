//! BurstGPT traces: `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`,
//! timestamps in seconds; later releases add `Session ID` and `Elapsed time` and reorder the
//! columns — columns are found by name, so every release reads the same. Rows with zero response tokens are requests that failed in the
//! source; they are kept, flagged `source_failed`, never dropped.

use super::csv::{self, Csv};
use super::{RowIter, TraceFormat, TraceRow, number, tokens};

pub(super) const SPEC: TraceFormat = TraceFormat {
    name: "burstgpt",
    about: "BurstGPT CSV: Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type (zero-response rows = source failures, kept)",
    parse,
    detect: |line| csv::header_has(line, COLUMNS),
};

/// The columns read (others are ignored).
const COLUMNS: &[&str] = &["Timestamp", "Request tokens", "Response tokens"];

fn parse<'a>(reader: Box<dyn std::io::BufRead + 'a>, file: &'a str) -> RowIter<'a> {
    csv::rows(reader, file, COLUMNS, row)
}

fn row(c: &Csv<'_>, line: usize, f: &[String]) -> Result<TraceRow, crate::ConfigError> {
    let t_s = number(c.field(f, line, "Timestamp")?, c.file, line, "Timestamp")?;
    let input_tokens = tokens(c.field(f, line, "Request tokens")?, c.file, line, "Request tokens")?;
    let output_tokens = tokens(c.field(f, line, "Response tokens")?, c.file, line, "Response tokens")?;
    Ok(TraceRow {
        line,
        t_s,
        input_tokens,
        output_tokens,
        source_failed: output_tokens == 0,
        blocks: Vec::new(),
        reordered: false,
    })
}
