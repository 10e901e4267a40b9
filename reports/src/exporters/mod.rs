//! Report exporters: each writes one file from the scorecards. Adding one: a file in this
//! folder (its name, file name and renderer) and a line in [`EXPORTERS`] — `oae report` and
//! `oae run` then write it and list it.

pub(crate) mod csv;
pub(crate) mod html;
pub(crate) mod json;
mod markdown;
pub(crate) mod parquet;

use crate::Report;

/// Writes one report file.
pub trait Exporter: Sync {
    /// Short name (`csv`, `html`, ...).
    fn name(&self) -> &'static str;
    /// File written in the report directory.
    fn file_name(&self) -> &'static str;
    /// The file's bytes.
    fn render(&self, report: &Report) -> Result<Vec<u8>, ExportError>;
}

/// Why an exporter could not render its file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The CSV writer failed.
    #[error("encoding CSV: {0}")]
    Csv(#[from] ::csv::Error),
    /// Writing into the buffer failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// polars could not build or write the table.
    #[error("encoding Parquet: {0}")]
    Parquet(#[from] ::polars::prelude::PolarsError),
    /// JSON serialisation failed.
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// plotters could not draw a chart.
    #[error("drawing a chart: {0}")]
    Chart(String),
}

/// Every exporter, in the order files are written.
pub const EXPORTERS: &[&dyn Exporter] = &[
    &csv::Csv,
    &parquet::Parquet,
    &json::Json,
    &markdown::Markdown,
    &html::Html,
];
