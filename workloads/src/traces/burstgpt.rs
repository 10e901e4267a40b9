//! BurstGPT traces: `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`,
//! timestamps in seconds. Rows with zero response tokens are requests that failed in the
//! source; they are kept, flagged `source_failed`, never dropped.

use super::csv::Csv;
use super::{TraceFormat, TraceRow, number, tokens};

pub(super) const SPEC: TraceFormat = TraceFormat {
    name: "burstgpt",
    about: "BurstGPT CSV: Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type (zero-response rows = source failures, kept)",
    parse,
};

fn parse<'a>(
    reader: Box<dyn std::io::BufRead + 'a>,
    file: &'a str,
) -> Box<dyn Iterator<Item = Result<TraceRow, crate::ConfigError>> + 'a> {
    let mut csv = match Csv::open(reader, file, &["Timestamp", "Request tokens", "Response tokens"]) {
        Ok(Some(c)) => c,
        Ok(None) => return Box::new(std::iter::empty()),
        Err(e) => return Box::new(std::iter::once(Err(e))),
    };
    Box::new(std::iter::from_fn(move || {
        let rec = csv.next_record()?;
        Some(rec.and_then(|(line, f)| {
            let t_s = number(csv.field(&f, line, "Timestamp")?, file, line, "Timestamp")?;
            let input_tokens = tokens(csv.field(&f, line, "Request tokens")?, file, line, "Request tokens")?;
            let output_tokens = tokens(csv.field(&f, line, "Response tokens")?, file, line, "Response tokens")?;
            Ok(TraceRow {
                line,
                t_s,
                input_tokens,
                output_tokens,
                source_failed: output_tokens == 0,
                blocks: Vec::new(),
            })
        }))
    }))
}
