//! The knowledge-base format: one document per line, `{"id", "title", "text"}` (JSON lines).
//! Errors name the file, the line and the field.

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

impl crate::jsonl::Row for Document {
    const WHAT: &'static str = "document";
    fn id(&self) -> &str {
        &self.id
    }
    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.id.trim().is_empty() {
            return Err(("id", "must be a non-empty string".into()));
        }
        if self.text.trim().is_empty() {
            return Err(("text", format!("document `{}` has no text", self.id)));
        }
        Ok(())
    }
}

/// Parses a knowledge base's text; `label` names it in errors.
pub fn parse(text: &str, label: &str) -> Result<Vec<Document>, ConfigError> {
    crate::jsonl::parse(text, label)
}

/// Reads and parses a knowledge-base file.
pub fn load(path: &Path) -> Result<Vec<Document>, ConfigError> {
    crate::jsonl::load(path)
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
