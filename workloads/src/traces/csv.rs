//! A minimal streaming CSV reader for trace files: a header row naming the columns, then one
//! record per line. Fields are split on commas; surrounding double quotes are removed (trace
//! columns are numbers, dates and short names, so quoted commas are not supported).

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

/// A CSV file's rows, as (line number, fields), with columns looked up by header name.
pub(super) struct Csv<'a> {
    /// The file's label, for errors.
    pub(super) file: &'a str,
    lines: std::io::Lines<Box<dyn BufRead + 'a>>,
    line: usize,
    columns: HashMap<String, usize>,
}

impl<'a> Csv<'a> {
    /// Reads the header; `required` are the column names the caller will use.
    pub(super) fn open(
        reader: Box<dyn BufRead + 'a>,
        file: &'a str,
        required: &[&str],
    ) -> Result<Option<Self>, ConfigError> {
        let mut lines = reader.lines();
        let header = match lines.next() {
            None => return Ok(None),
            Some(h) => h.map_err(|e| err(file, 1, "(file)", format!("cannot read: {e}")))?,
        };
        let columns: HashMap<String, usize> = split(header.trim_start_matches('\u{feff}'))
            .iter()
            .enumerate()
            .map(|(i, c)| (c.to_ascii_lowercase(), i))
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
            lines,
            file,
            line: 1,
            columns,
        }))
    }

    /// Next non-empty record as (line, fields).
    pub(super) fn next_record(&mut self) -> Option<Result<(usize, Vec<String>), ConfigError>> {
        loop {
            let l = self.lines.next()?;
            self.line += 1;
            match l {
                Err(e) => return Some(Err(err(self.file, self.line, "(file)", format!("cannot read: {e}")))),
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => return Some(Ok((self.line, split(&text).into_iter().map(str::to_string).collect()))),
            }
        }
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

fn split(line: &str) -> Vec<&str> {
    line.split(',').map(|f| f.trim().trim_matches('"').trim()).collect()
}
