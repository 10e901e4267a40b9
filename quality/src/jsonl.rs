//! Reading oae's JSON-lines files (tasks, knowledge bases): one object per line, blank lines
//! skipped, every problem a [`ConfigError`] naming the file, the line and the field, ids unique.

use std::collections::HashMap;
use std::path::Path;

use oae_core::ConfigError;
use serde::de::DeserializeOwned;

/// A record of a JSON-lines file: its id and the checks serde cannot make.
pub trait Row: DeserializeOwned {
    /// What one line is, for messages ("task item", "document").
    const WHAT: &'static str;
    /// Its unique id.
    fn id(&self) -> &str;
    /// The (field, message) of the first problem serde did not catch.
    fn check(&self) -> Result<(), (&'static str, String)>;
}

/// Parses `text`; `label` names the file in errors.
pub fn parse<T: Row>(text: &str, label: &str) -> Result<Vec<T>, ConfigError> {
    let mut rows = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |key: &str, message: String| ConfigError {
            file: label.to_string(),
            line: line_no,
            key: key.to_string(),
            message,
        };
        let mut de = serde_json::Deserializer::from_str(line);
        let row: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." { format!("({})", T::WHAT) } else { path };
            err(
                &key,
                format!("{}; each line is one {} (formats: docs/quality.md)", e.inner(), T::WHAT),
            )
        })?;
        row.check().map_err(|(f, m)| err(f, m))?;
        if let Some(first) = seen.insert(row.id().to_string(), line_no) {
            return Err(err(
                "id",
                format!("`{}` was already used on line {first}; ids must be unique", row.id()),
            ));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(ConfigError {
            file: label.to_string(),
            line: 0,
            key: "(file)".into(),
            message: format!("holds no {}s; write one JSON object per line", T::WHAT),
        });
    }
    Ok(rows)
}

/// Reads and parses a file.
pub fn load<T: Row>(path: &Path) -> Result<Vec<T>, ConfigError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: label.clone(),
        line: 0,
        key: "(file)".into(),
        message: format!("cannot read it ({}s, one per line): {e}", T::WHAT),
    })?;
    parse(&text, &label)
}
