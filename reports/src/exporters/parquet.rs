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
        let columns: Vec<Column> = report
            .columns
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
        let mut df = DataFrame::new(report.cards.rows.len(), columns)?;
        let mut buf = Vec::new();
        ParquetWriter::new(&mut buf).finish(&mut df)?;
        Ok(buf)
    }
}
