//! `leaderboard.json`: the columns with their provenance, for tools that want a table.

use serde_json::{Map, Value, json};

use super::{ExportError, Exporter};
use crate::Report;
use crate::table::{Column, Values};

pub struct Json;

impl Exporter for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn file_name(&self) -> &'static str {
        "leaderboard.json"
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ExportError> {
        let cols = &report.columns;
        let doc = json!({
            "schema": "oae-leaderboard/1",
            "run": report.cards.run,
            "baseline": report.cards.baseline,
            "site_source": report.cards.site_source,
            "partial": report.cards.run.partial,
            "warnings": report.cards.warnings,
            "provenance": provenance(cols),
            "rows": rows(cols, report.cards.rows.len()),
        });
        Ok(serde_json::to_vec_pretty(&doc)?)
    }
}

/// One object per row (`n` of them): column name → value.
pub(crate) fn rows(cols: &[Column], n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut m = Map::new();
            for c in cols {
                let v = match &c.values {
                    Values::Num(v) => json!(v[i]),
                    Values::Text(v) => json!(v[i]),
                    Values::Flag(v) => json!(v[i]),
                };
                m.insert(c.name.to_string(), v);
            }
            Value::Object(m)
        })
        .collect()
}

/// Column name → provenance (measured / declared / site), for the columns that have one.
pub(crate) fn provenance(cols: &[Column]) -> Map<String, Value> {
    cols.iter()
        .filter(|c| !c.provenance.is_empty())
        .map(|c| (c.name.to_string(), json!(c.provenance)))
        .collect()
}
