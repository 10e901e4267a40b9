//! `leaderboard.parquet` (polars): the same columns as the CSV, typed.

use polars::prelude::*;

use super::{ExportError, Exporter};
use crate::Report;
use crate::table::Values;

pub struct Parquet;

impl Exporter for Parquet {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn file_name(&self) -> &'static str {
        "leaderboard.parquet"
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ExportError> {
        bytes(&report.columns, report.cards.rows.len())
    }
}

/// `cols` (each `n` values) as a Parquet file, typed.
pub(crate) fn bytes(cols: &[crate::table::Column], n: usize) -> Result<Vec<u8>, ExportError> {
    let columns: Vec<Column> = cols
        .iter()
        .map(|c| {
            let name = PlSmallStr::from_static(c.name);
            match &c.values {
                Values::Num(v) => Series::new(name, v.as_slice()).into_column(),
                Values::Text(v) => Series::new(name, v.as_slice()).into_column(),
                Values::Flag(v) => Series::new(name, v.as_slice()).into_column(),
            }
        })
        .collect();
    let mut df = DataFrame::new(n, columns)?;
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(&mut df)?;
    Ok(buf)
}
