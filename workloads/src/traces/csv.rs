//! Streaming CSV for trace files, on the `csv` crate (RFC 4180 quoting, so a quoted comma in
//! a model name cannot shift columns): a header row naming the columns, then one record per
//! row, looked up by header name. Short rows are reported, not padded.

use std::collections::HashMap;
use std::io::BufRead;

use super::{RowIter, TraceRow, err};
use crate::ConfigError;

/// Rows of a CSV trace: opens it with the `required` columns and maps each record with `row`
/// (given the reader for field lookups, the line number and the fields).
pub(super) fn rows<'a>(
    reader: Box<dyn BufRead + 'a>,
    file: &'a str,
    required: &'static [&'static str],
    row: fn(&Csv<'a>, usize, &[String]) -> Result<TraceRow, ConfigError>,
) -> RowIter<'a> {
    let mut csv = match Csv::open(reader, file, required) {
        Ok(Some(c)) => c,
        Ok(None) => return Box::new(std::iter::empty()),
        Err(e) => return Box::new(std::iter::once(Err(e))),
    };
    Box::new(std::iter::from_fn(move || {
        let rec = csv.next_record()?;
        Some(rec.and_then(|(line, f)| row(&csv, line, &f)))
    }))
}

/// Whether the CSV header `line` names every column in `required` (any order, any case,
/// other columns allowed) — how the CSV formats recognise their files.
pub(super) fn header_has(line: &str, required: &[&str]) -> bool {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_reader(line.as_bytes());
    let Some(Ok(header)) = reader.records().next() else {
        return false;
    };
    let names: Vec<String> = header.iter().map(|c| c.to_ascii_lowercase()).collect();
    required
        .iter()
        .all(|r| names.iter().any(|n| *n == r.to_ascii_lowercase()))
}

/// A CSV file's records, with columns looked up by header name.
pub(super) struct Csv<'a> {
    /// The file's label, for errors.
    pub(super) file: &'a str,
    reader: csv::Reader<Box<dyn BufRead + 'a>>,
    record: csv::StringRecord,
    columns: HashMap<String, usize>,
}

impl<'a> Csv<'a> {
    /// Reads the header; `required` are the column names the caller will use. `None` for an
    /// empty file.
    pub(super) fn open(
        reader: Box<dyn BufRead + 'a>,
        file: &'a str,
        required: &[&str],
    ) -> Result<Option<Self>, ConfigError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(reader);
        let header = reader
            .headers()
            .map_err(|e| err(file, 1, "(header)", format!("cannot read the header: {e}")))?
            .clone();
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Ok(None);
        }
        let columns: HashMap<String, usize> = header
            .iter()
            .enumerate()
            .map(|(i, c)| (c.trim_start_matches('\u{feff}').to_ascii_lowercase(), i))
            .collect();
        for r in required {
            if !columns.contains_key(&r.to_ascii_lowercase()) {
                return Err(err(
                    file,
                    1,
                    r,
                    format!("the header has no `{r}` column; is this the right format?"),
                ));
            }
        }
        Ok(Some(Self {
            file,
            reader,
            record: csv::StringRecord::new(),
            columns,
        }))
    }

    /// Next non-empty record as (line, fields).
    pub(super) fn next_record(&mut self) -> Option<Result<(usize, Vec<String>), ConfigError>> {
        loop {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return None,
                Err(e) => {
                    let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                    return Some(Err(err(self.file, line, "(row)", format!("not valid CSV: {e}"))));
                }
                Ok(true) => {
                    let line = self.record.position().map(|p| p.line() as usize).unwrap_or(0);
                    if self.record.iter().all(str::is_empty) {
                        continue;
                    }
                    return Some(Ok((line, self.record.iter().map(str::to_string).collect())));
                }
            }
        }
    }

    /// Whether the header has column `name`.
    pub(super) fn has(&self, name: &str) -> bool {
        self.columns.contains_key(&name.to_ascii_lowercase())
    }

    /// Field `name` of a record, or a located error if the row is too short.
    pub(super) fn field<'f>(&self, fields: &'f [String], line: usize, name: &str) -> Result<&'f str, ConfigError> {
        let i = self.columns[&name.to_ascii_lowercase()];
        fields.get(i).map(String::as_str).ok_or_else(|| {
            err(
                self.file,
                line,
                name,
                format!(
                    "missing: the row has {} fields, `{name}` is column {}",
                    fields.len(),
                    i + 1
                ),
            )
        })
    }
}
