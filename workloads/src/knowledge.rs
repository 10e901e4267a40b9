//! Knowledge bases: the documents a suite's knowledge methods (`rag`, `cag`) search or
//! preload, and that its task workloads ask questions about.
//!
//! ```toml
//! [[knowledge]]
//! name = "squad-2k"
//! dataset = "squad"             # a catalog dataset's kb.jsonl, or path = "kb.jsonl"
//! subset = ["Super_Bowl_50"]    # optional: documents of these titles (or id prefixes before `#`)
//! limit = 11                    # optional: the first N documents left
//! chunk_tokens = 256            # chunk length in the generator's tokens
//! chunk_overlap = 32            # tokens shared by consecutive chunks of a document
//! ```
//!
//! The documents are read and checked when the suite is parsed; the methods chunk them at
//! setup with their own model's tokenizer (chunking is part of their metered setup cost).
//! A workload's `task = { …, knowledge = "squad-2k" }` asks only the items whose supporting
//! documents (`doc_ids`) are in the base.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use oae_quality::kb::{self, Document};
use serde::Deserialize;
use serde_json::json;

use crate::ConfigError;
use crate::config::{ConfigTable, PositiveU32};

/// Default chunk length, tokens (a SQuAD paragraph is ≈ 150 on average).
pub const DEFAULT_CHUNK_TOKENS: u32 = 256;
/// Default overlap of consecutive chunks, tokens.
pub const DEFAULT_CHUNK_OVERLAP: u32 = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KnowledgeConfig {
    name: String,
    path: Option<String>,
    dataset: Option<String>,
    #[serde(default)]
    subset: Vec<String>,
    limit: Option<PositiveU32>,
    chunk_tokens: Option<PositiveU32>,
    chunk_overlap: Option<u32>,
}

/// A parsed `[[knowledge]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeBase {
    /// Its name in the suite.
    pub name: String,
    /// The file the documents came from.
    pub path: PathBuf,
    /// The catalog dataset, if any.
    pub dataset: Option<String>,
    /// The documents, in file order.
    pub documents: Vec<Document>,
    /// Documents in the file before `subset` and `limit`.
    pub documents_in_file: usize,
    /// Chunk length, tokens.
    pub chunk_tokens: usize,
    /// Overlap of consecutive chunks of one document, tokens.
    pub chunk_overlap: usize,
    subset: Vec<String>,
    limit: Option<u32>,
}

/// The knowledge bases of a suite, shared by its workloads and methods.
pub type KnowledgeBases = Arc<[Arc<KnowledgeBase>]>;

/// `Some(title)` part of a document id `<title>#<n>`, for subset matching.
fn id_prefix(id: &str) -> &str {
    id.rsplit_once('#').map_or(id, |(p, _)| p)
}

fn same_title(a: &str, b: &str) -> bool {
    a.replace('_', " ").trim() == b.replace('_', " ").trim()
}

impl KnowledgeBase {
    /// Parses and loads one `[[knowledge]]` table (the file is read and checked now).
    pub fn from_table(table: ConfigTable) -> Result<Self, ConfigError> {
        let c: KnowledgeConfig = table.decode()?;
        let name = c.name.trim().to_string();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(table.error("name", "must be a non-empty name"));
        }
        let path = crate::task::source_file(&table, c.path.as_deref(), c.dataset.as_deref(), |e, root| {
            e.kb_path(root)
        })?;
        if !path.is_file() {
            return Err(table.error(
                if c.dataset.is_some() { "dataset" } else { "path" },
                format!("no knowledge-base file at {}", path.display()),
            ));
        }
        let all = kb::load(&path)?;
        let documents_in_file = all.len();
        let mut documents = all;
        if !c.subset.is_empty() {
            for s in &c.subset {
                if !documents
                    .iter()
                    .any(|d| same_title(&d.title, s) || same_title(id_prefix(&d.id), s))
                {
                    return Err(table.error(
                        "subset",
                        format!("no document of {} has the title `{s}`", path.display()),
                    ));
                }
            }
            documents.retain(|d| {
                c.subset
                    .iter()
                    .any(|s| same_title(&d.title, s) || same_title(id_prefix(&d.id), s))
            });
        }
        if let Some(l) = c.limit {
            documents.truncate(l.get() as usize);
        }
        let chunk_tokens = c.chunk_tokens.map_or(DEFAULT_CHUNK_TOKENS, |v| v.get()) as usize;
        let chunk_overlap = c
            .chunk_overlap
            .unwrap_or(DEFAULT_CHUNK_OVERLAP.min(chunk_tokens as u32 / 2)) as usize;
        if chunk_overlap >= chunk_tokens {
            return Err(table.error(
                "chunk_overlap",
                format!("must be smaller than chunk_tokens ({chunk_tokens}), got {chunk_overlap}"),
            ));
        }
        Ok(Self {
            name,
            path,
            dataset: c.dataset,
            documents,
            documents_in_file,
            chunk_tokens,
            chunk_overlap,
            subset: c.subset,
            limit: c.limit.map(|l| l.get()),
        })
    }

    /// Ids of its documents.
    pub fn ids(&self) -> HashSet<&str> {
        self.documents.iter().map(|d| d.id.as_str()).collect()
    }

    /// Characters of text in it.
    pub fn chars(&self) -> usize {
        self.documents.iter().map(|d| d.text.chars().count()).sum()
    }

    /// For run.json.
    pub fn describe(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "path": self.path.display().to_string(),
            "dataset": self.dataset,
            "documents_in_file": self.documents_in_file,
            "documents": self.documents.len(),
            "chars": self.chars(),
            "subset": self.subset,
            "limit": self.limit,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap": self.chunk_overlap,
        })
    }
}

/// The knowledge base called `name` among `bases`, or the error for `key` of `table`.
pub fn find(
    bases: &[Arc<KnowledgeBase>],
    name: &str,
    table: &ConfigTable,
    key: &str,
) -> Result<Arc<KnowledgeBase>, ConfigError> {
    bases.iter().find(|k| k.name == name).cloned().ok_or_else(|| {
        let names: Vec<&str> = bases.iter().map(|k| k.name.as_str()).collect();
        table.error(
            key,
            if names.is_empty() {
                format!("no [[knowledge]] named `{name}`: the suite defines none; add a [[knowledge]] table with name = \"{name}\"")
            } else {
                format!("no [[knowledge]] named `{name}`; defined: {}", names.join(", "))
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dir: &std::path::Path, body: &str) -> ConfigTable {
        ConfigTable::parse(&dir.join("suite.toml").display().to_string(), body).unwrap()
    }

    #[test]
    fn documents_are_selected_and_bad_settings_located() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("kb.jsonl"),
            "{\"id\":\"A#0\",\"title\":\"A\",\"text\":\"one\"}\n{\"id\":\"A#1\",\"title\":\"A\",\"text\":\"two\"}\n{\"id\":\"B_c#0\",\"title\":\"B c\",\"text\":\"three\"}\n",
        )
        .unwrap();
        let k = KnowledgeBase::from_table(table(
            dir.path(),
            "name = \"k\"\npath = \"kb.jsonl\"\nsubset = [\"B_c\", \"A\"]\nlimit = 2",
        ))
        .unwrap();
        assert_eq!(k.documents.len(), 2);
        assert_eq!(k.documents[1].id, "A#1", "file order kept");
        assert_eq!((k.chunk_tokens, k.chunk_overlap, k.documents_in_file), (256, 32, 3));
        let e = KnowledgeBase::from_table(table(
            dir.path(),
            "name = \"k\"\npath = \"kb.jsonl\"\nchunk_tokens = 8\nchunk_overlap = 8",
        ))
        .unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("chunk_overlap", 4), "{e}");
        let e = KnowledgeBase::from_table(table(dir.path(), "name = \"k\"\npath = \"kb.jsonl\"\nsubset = [\"Z\"]"))
            .unwrap_err();
        assert!(e.key.ends_with("subset") && e.message.contains("`Z`"), "{e}");
        let e = KnowledgeBase::from_table(table(dir.path(), "name = \"k\"\npath = \"none.jsonl\"")).unwrap_err();
        assert!(e.key.ends_with("path"), "{e}");
        std::fs::write(
            dir.path().join("bad.jsonl"),
            "{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"b\",\"txt\":\"y\"}\n",
        )
        .unwrap();
        let e = KnowledgeBase::from_table(table(dir.path(), "name = \"k\"\npath = \"bad.jsonl\"")).unwrap_err();
        assert!(e.file.ends_with("bad.jsonl") && e.line == 2, "{e}");
    }
}
