//! The knowledge-base format: one document per line, `{"id", "title", "text"}` (JSON lines).
//! Errors name the file, the line and the field.

use std::collections::HashMap;
use std::path::Path;

use oae_core::ConfigError;
use serde::{Deserialize, Serialize};

/// One document of a knowledge base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Unique id (task items' `doc_ids` refer to it).
    pub id: String,
    /// Title (may be empty).
    #[serde(default)]
    pub title: String,
    /// The text.
    pub text: String,
}

/// Parses a knowledge base's text; `label` names it in errors.
pub fn parse(text: &str, label: &str) -> Result<Vec<Document>, ConfigError> {
    let mut docs = Vec::new();
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
        let doc: Document = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." { "(document)".to_string() } else { path };
            err(
                &key,
                format!(
                    "{}; each line is one document {{\"id\", \"title\", \"text\"}}",
                    e.inner()
                ),
            )
        })?;
        if doc.id.trim().is_empty() {
            return Err(err("id", "must be a non-empty string".into()));
        }
        if doc.text.trim().is_empty() {
            return Err(err("text", format!("document `{}` has no text", doc.id)));
        }
        if let Some(first) = seen.insert(doc.id.clone(), line_no) {
            return Err(err(
                "id",
                format!("`{}` was already used on line {first}; ids must be unique", doc.id),
            ));
        }
        docs.push(doc);
    }
    if docs.is_empty() {
        return Err(ConfigError {
            file: label.to_string(),
            line: 0,
            key: "(file)".into(),
            message: "holds no documents; write one JSON object per line".into(),
        });
    }
    Ok(docs)
}

/// Reads and parses a knowledge-base file.
pub fn load(path: &Path) -> Result<Vec<Document>, ConfigError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: label.clone(),
        line: 0,
        key: "(file)".into(),
        message: format!("cannot read the knowledge base: {e}"),
    })?;
    parse(&text, &label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse_and_bad_ones_are_located() {
        let docs = parse(
            "{\"id\":\"d1\",\"title\":\"T\",\"text\":\"x\"}\n{\"id\":\"d2\",\"text\":\"y\"}\n",
            "kb",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].title, "");
        let e = parse(
            "{\"id\":\"d1\",\"text\":\"x\"}\n{\"id\":\"d1\",\"text\":\"y\"}",
            "kb.jsonl",
        )
        .unwrap_err();
        assert_eq!((e.file.as_str(), e.line, e.key.as_str()), ("kb.jsonl", 2, "id"));
        let e = parse("{\"id\":\"d1\",\"text\":\"\"}", "kb").unwrap_err();
        assert_eq!(e.key, "text");
        let e = parse("{\"id\":\"d1\",\"text\":7}", "kb").unwrap_err();
        assert_eq!(e.key, "text", "{e}");
        let e = parse("{\"id\":\"d1\"}", "kb").unwrap_err();
        assert!(e.message.contains("text"), "{e}");
    }
}
