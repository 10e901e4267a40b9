//! `leaderboard.csv`: every column of the leaderboard, one row per scorecard.

use super::{ExportError, Exporter};
use crate::Report;
use crate::table::{Column, Values};

pub struct Csv;

impl Exporter for Csv {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn file_name(&self) -> &'static str {
        "leaderboard.csv"
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ExportError> {
        bytes(&report.columns, report.cards.rows.len())
    }
}

/// `cols` (each `n` values) as CSV: a header of column names, then one line per row.
pub(crate) fn bytes(cols: &[Column], n: usize) -> Result<Vec<u8>, ExportError> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(cols.iter().map(|c| c.name))?;
    for i in 0..n {
        w.write_record(cols.iter().map(|c| match &c.values {
            Values::Num(v) => v[i].map(|x| format!("{x}")).unwrap_or_default(),
            Values::Text(v) => v[i].clone(),
            Values::Flag(v) => v[i].to_string(),
        }))?;
    }
    w.into_inner().map_err(|e| ExportError::Io(e.into_error()))
}
