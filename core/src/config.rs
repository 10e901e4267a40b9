//! Span-aware configuration tables.
//!
//! Suites are TOML. The suite's own sections are plain serde structs (toml reports their
//! errors with line and column), but plug-ins — methods, arrival processes — own their
//! configuration types, which the suite parser cannot know. Those sections are kept as a
//! [`ConfigTable`]: the raw values plus the byte span of every key, so that when a plug-in
//! decodes its config and serde objects, the error still names the file, line and key.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use toml::{Spanned, Value};

use crate::ConfigError;

/// The text of a configuration file and the label used for it in messages.
#[derive(Debug)]
pub struct SourceFile {
    /// Path as given by the user, or a label such as `suites/quick.toml (embedded)`.
    pub label: String,
    /// The full file contents.
    pub text: String,
}

impl SourceFile {
    /// A source held in memory.
    pub fn new(label: impl Into<String>, text: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            label: label.into(),
            text: text.into(),
        })
    }

    /// `path` as written in this file: absolute, or relative to the file's directory (or to
    /// the working directory for in-memory sources).
    pub fn resolve(&self, path: &str) -> std::path::PathBuf {
        let p = std::path::Path::new(path);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        std::path::Path::new(&self.label)
            .parent()
            .filter(|d| d.is_dir())
            .map(|d| d.join(p))
            .unwrap_or_else(|| p.to_path_buf())
    }

    /// 1-based line containing byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    /// An error located at byte `offset` of this file.
    pub fn error_at(&self, offset: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.label.clone(),
            line: self.line_of(offset),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// A TOML table whose keys keep their positions in the source file.
pub type SpannedEntries = BTreeMap<String, Spanned<Value>>;

/// A plug-in's configuration section, decodable with located errors.
#[derive(Debug, Clone)]
pub struct ConfigTable {
    source: Arc<SourceFile>,
    path: String,
    span: Range<usize>,
    entries: SpannedEntries,
}

impl ConfigTable {
    /// A table parsed from `source`; `path` is its key path (`methods[0]`), `span` its bytes.
    pub fn new(source: Arc<SourceFile>, path: impl Into<String>, span: Range<usize>, entries: SpannedEntries) -> Self {
        Self {
            source,
            path: path.into(),
            span,
            entries,
        }
    }

    /// Parses a standalone TOML document as one table (tests, command-line snippets).
    pub fn parse(label: &str, text: &str) -> Result<Self, ConfigError> {
        let source = SourceFile::new(label, text);
        let entries: SpannedEntries = toml::from_str(text).map_err(|e| toml_error(&source, "", &e))?;
        Ok(Self::new(source, "", 0..text.len(), entries))
    }

    /// The key path of this table, e.g. `methods[0]`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file this table came from.
    pub fn source(&self) -> &Arc<SourceFile> {
        &self.source
    }

    /// Removes and returns `key`, for keys the caller handles itself (such as `id`).
    pub fn take(&mut self, key: &str) -> Option<Spanned<Value>> {
        self.entries.remove(key)
    }

    /// Splits the table in two: the entries named in `keys`, and the rest. Both keep the
    /// source and key path, so errors from either are located in the file.
    pub fn split(&self, keys: &[&str]) -> (Self, Self) {
        let (a, b): (SpannedEntries, SpannedEntries) = self
            .entries
            .clone()
            .into_iter()
            .partition(|(k, _)| keys.contains(&k.as_str()));
        let part = |entries| Self {
            source: self.source.clone(),
            path: self.path.clone(),
            span: self.span.clone(),
            entries,
        };
        (part(a), part(b))
    }

    /// Whether the table has `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Full dotted path of `key` inside this table.
    pub fn key_path(&self, key: &str) -> String {
        match (self.path.is_empty(), key.is_empty()) {
            (true, _) => key.to_string(),
            (false, true) => self.path.clone(),
            (false, false) => format!("{}.{}", self.path, key),
        }
    }

    /// An error about `key` (or the table itself when `key` is empty or absent).
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let offset = self.entries.get(key).map(|v| v.span().start).unwrap_or(self.span.start);
        self.source.error_at(offset, &self.key_path(key), message)
    }

    /// Decodes the table into a plug-in's config type. Use `#[serde(deny_unknown_fields)]`
    /// on `T` so misspelled keys are reported rather than ignored.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let table: toml::Table = self
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect();
        serde_path_to_error::deserialize(Value::Table(table)).map_err(|err| {
            // toml appends "in `key`" on a second line; the key is reported separately.
            let message = err.inner().to_string().lines().next().unwrap_or_default().to_string();
            let path = err.path().to_string();
            // serde reports unknown and missing fields at the parent's path; the key is in
            // the message between backticks.
            let named = if message.starts_with("unknown field") || message.starts_with("missing field") {
                message.split('`').nth(1).map(str::to_string)
            } else {
                None
            };
            let path = path.trim_start_matches('.');
            let key = match named {
                Some(name) if path.is_empty() => name,
                Some(name) if path.rsplit('.').next().is_none_or(|last| last != name) => format!("{path}.{name}"),
                _ => path.to_string(),
            };
            let top = key.split(['.', '[']).next().unwrap_or("");
            self.error(top, message).with_key(self.key_path(&key))
        })
    }
}

impl ConfigError {
    fn with_key(mut self, key: String) -> Self {
        self.key = key;
        self
    }
}

/// Converts a toml parse error into a located [`ConfigError`].
pub fn toml_error(source: &SourceFile, prefix: &str, err: &toml::de::Error) -> ConfigError {
    let line = err.span().map(|s| source.line_of(s.start)).unwrap_or(0);
    let message = err.message().trim_end().to_string();
    // A missing field is reported at the enclosing table; name the field itself.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
        .map(str::to_string);
    let key = match missing {
        Some(field) => field,
        None => err.span().map(|s| key_at(&source.text, s.start)).unwrap_or_default(),
    };
    let key = match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}.{key}"),
    };
    ConfigError {
        file: source.label.clone(),
        line,
        key: if key.is_empty() { "(document)".into() } else { key },
        message,
    }
}

/// Best-effort name of the key written on the line containing `offset`.
fn key_at(text: &str, offset: usize) -> String {
    let start = text[..offset.min(text.len())].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[start..].lines().next().unwrap_or("");
    let trimmed = line.trim();
    if trimmed.starts_with('[') {
        return trimmed.trim_matches(|c| c == '[' || c == ']').trim().to_string();
    }
    match trimmed.split_once('=') {
        Some((k, _)) => k.trim().trim_matches('"').to_string(),
        None => String::new(),
    }
}

macro_rules! positive {
    ($name:ident, $inner:ty, $what:literal) => {
        #[doc = concat!("A ", $what, " that must be greater than zero; rejected at parse time.")]
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = <$inner>::deserialize(d)?;
                // Negated so that NaN (which compares false) is rejected too.
                #[allow(clippy::neg_cmp_op_on_partial_ord)]
                if !(v > (0 as $inner)) || !(v as f64).is_finite() {
                    return Err(serde::de::Error::custom(format!(
                        "must be a {} greater than 0, got {v}",
                        $what
                    )));
                }
                Ok(Self(v))
            }
        }

        impl $name {
            /// The validated value.
            pub fn get(self) -> $inner {
                self.0
            }
        }
    };
}

positive!(PositiveF64, f64, "finite number");
positive!(PositiveU32, u32, "whole number");
positive!(PositiveU64, u64, "whole number");

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        rate: PositiveF64,
        #[serde(default)]
        #[allow(dead_code)]
        name: Option<String>,
    }

    #[test]
    fn decode_reports_line_and_key_of_unknown_field() {
        let t = ConfigTable::parse("x.toml", "rate = 1.0\n\nrtae = 2\n").unwrap();
        let e = t.decode::<Cfg>().unwrap_err();
        assert_eq!((e.file.as_str(), e.line, e.key.as_str()), ("x.toml", 3, "rtae"));
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn decode_reports_invalid_value_line() {
        let t = ConfigTable::parse("x.toml", "name = \"a\"\nrate = -3\n").unwrap();
        let e = t.decode::<Cfg>().unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "rate"));
        assert!(e.message.contains("greater than 0"), "{e}");
    }

    #[test]
    fn decode_reports_missing_field_at_table() {
        let t = ConfigTable::parse("x.toml", "name = \"a\"\n").unwrap();
        let e = t.decode::<Cfg>().unwrap_err();
        assert_eq!(e.key, "rate");
        assert!(e.message.contains("missing field"), "{e}");
    }

    #[test]
    fn parse_error_is_located() {
        let e = ConfigTable::parse("x.toml", "a = 1\nb = = 2\n").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("x.toml", 2));
    }

    #[test]
    fn positive_rejects_zero_and_nan() {
        assert!(ConfigTable::parse("x", "rate = 0.0").unwrap().decode::<Cfg>().is_err());
        assert!(ConfigTable::parse("x", "rate = nan").unwrap().decode::<Cfg>().is_err());
        assert!(ConfigTable::parse("x", "rate = inf").unwrap().decode::<Cfg>().is_err());
        assert_eq!(
            ConfigTable::parse("x", "rate = 2")
                .unwrap()
                .decode::<Cfg>()
                .unwrap()
                .rate
                .get(),
            2.0
        );
    }
}
