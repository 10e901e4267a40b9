//! Report exporters: each writes one file from the scorecards. Adding one: a file in this
//! folder and a line in [`EXPORTERS`].

mod csv;
mod html;
mod json;
mod markdown;
mod parquet;

use crate::Report;

/// Writes one report file.
pub trait Exporter: Sync {
    /// Short name (`csv`, `html`, ...).
    fn name(&self) -> &'static str;
    /// File written in the report directory.
    fn file_name(&self) -> &'static str;
    /// The file's bytes.
    fn render(&self, report: &Report) -> Result<Vec<u8>, String>;
}

/// Every exporter, in the order files are written.
pub const EXPORTERS: &[&dyn Exporter] = &[
    &csv::Csv,
    &parquet::Parquet,
    &json::Json,
    &markdown::Markdown,
    &html::Html,
];
