//! Reading a run directory back, strictly: every error names the file, line and field.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{REQUESTS_JSONL, RUN_JSON, RequestRecord, RunJson, SCHEMA_VERSION, SUMMARY_JSON, SummaryJson};

/// Why a run directory cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The directory is not a run directory.
    #[error("{dir} has no run.json; pass a run directory written by `oae run`")]
    NotRunDir {
        /// The directory.
        dir: String,
    },
    /// A file holds something the schema does not allow.
    #[error("{file}:{line}: {}{message}", if field.is_empty() { String::new() } else { format!("field `{field}`: ") })]
    Data {
        /// The file.
        file: String,
        /// 1-based line (0: unknown).
        line: usize,
        /// Dotted path of the field (empty: the whole line or document).
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Written before run directories carried a schema version.
    #[error(
        "{file} was written by oae {written_by} before run directories carried a schema version; this oae reads schema {SCHEMA_VERSION} only. Re-run the suite with this oae (`oae run SUITE.toml`, or `--save-baseline NAME` to replace a saved baseline), or score the old run with the oae that wrote it"
    )]
    Unversioned {
        /// The file.
        file: String,
        /// oae version and commit from the file, as far as it says.
        written_by: String,
    },
    /// Written by a newer oae.
    #[error(
        "{file} has schema version {found}, newer than the {SCHEMA_VERSION} this oae reads; score it with the oae that wrote it ({written_by}) or upgrade oae"
    )]
    Newer {
        /// The file.
        file: String,
        /// Its schema version.
        found: u32,
        /// oae version that wrote it.
        written_by: String,
    },
    /// The last line of requests.jsonl is cut short: the writer was killed mid-line.
    #[error("{file}:{line}: the last record is cut short (the run was killed while writing it)")]
    CutShort {
        /// The file.
        file: String,
        /// Its line.
        line: usize,
    },
}

impl RunDirError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        RunDirError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The version fields every JSON file of a run starts with, read before the rest.
#[derive(Deserialize)]
struct Header {
    schema_version: Option<u32>,
    oae_version: Option<String>,
    git_sha: Option<String>,
}

/// Splits a serde error message into (field named in it, message without the position).
fn split_message(msg: &str) -> (Option<String>, String) {
    let named = (msg.starts_with("unknown field") || msg.starts_with("missing field"))
        .then(|| msg.split('`').nth(1).map(str::to_string))
        .flatten();
    let message = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    };
    (named, message)
}

/// Parses `text` as `T`, locating any error by line and field path.
fn parse<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, RunDirError> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (named, message) = split_message(&inner.to_string());
        let path = if path == "." { String::new() } else { path };
        let field = match named {
            Some(name) if path.is_empty() => name,
            Some(name) if !path.ends_with(&name) => format!("{path}.{name}"),
            _ => path,
        };
        RunDirError::Data {
            file: file.to_string(),
            line: inner.line(),
            field,
            message,
        }
    })
}

/// Reads a versioned JSON file of a run directory.
fn read_versioned<T: DeserializeOwned>(path: &Path, written_by: Option<&str>) -> Result<T, RunDirError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| RunDirError::io(path, e))?;
    let header: Header = serde_json::from_str(&text).map_err(|e| RunDirError::Data {
        file: file.clone(),
        line: e.line(),
        field: String::new(),
        message: format!("not a JSON object ({e}); is this an oae run directory?"),
    })?;
    let by = match (written_by, &header.oae_version) {
        (Some(w), _) => w.to_string(),
        (None, Some(v)) => match &header.git_sha {
            Some(sha) => format!("{v} (commit {sha})"),
            None => v.clone(),
        },
        (None, None) => "an unknown version".to_string(),
    };
    match header.schema_version {
        None => Err(RunDirError::Unversioned { file, written_by: by }),
        Some(v) if v > SCHEMA_VERSION => Err(RunDirError::Newer {
            file,
            found: v,
            written_by: by,
        }),
        Some(v) if v < SCHEMA_VERSION => Err(RunDirError::Data {
            file,
            line: 0,
            field: "schema_version".into(),
            message: format!(
                "schema {v} is older than {SCHEMA_VERSION}; re-run the suite with this oae or score it with the oae that wrote it ({by})"
            ),
        }),
        Some(_) => parse(&file, &text),
    }
}

/// Reads `DIR/run.json`.
pub fn read_run(dir: &Path) -> Result<RunJson, RunDirError> {
    let path = dir.join(RUN_JSON);
    if !path.is_file() {
        return Err(RunDirError::NotRunDir {
            dir: dir.display().to_string(),
        });
    }
    read_versioned(&path, None)
}

/// Reads `DIR/summary.json`; `None` when the run stopped before writing it.
pub fn read_summary(dir: &Path, run: &RunJson) -> Result<Option<SummaryJson>, RunDirError> {
    let path = dir.join(SUMMARY_JSON);
    if !path.is_file() {
        return Ok(None);
    }
    let by = match &run.git_sha {
        Some(sha) => format!("{} (commit {sha})", run.oae_version),
        None => run.oae_version.clone(),
    };
    read_versioned(&path, Some(&by)).map(Some)
}

/// Streams the records of `requests.jsonl` in file order, one line at a time.
///
/// Yields `(line, record)`. A malformed line is an error naming it and the field; a last
/// line without its newline that does not parse is [`RunDirError::CutShort`], so the caller
/// can tell a crash from damage. Iteration ends after the first error.
pub struct RecordReader {
    reader: BufReader<std::fs::File>,
    path: PathBuf,
    file: String,
    line: String,
    n: usize,
    done: bool,
}

impl RecordReader {
    /// Opens `DIR/requests.jsonl`.
    pub fn open(dir: &Path) -> Result<RecordReader, RunDirError> {
        let path = dir.join(REQUESTS_JSONL);
        let f = std::fs::File::open(&path).map_err(|e| RunDirError::io(&path, e))?;
        Ok(RecordReader {
            reader: BufReader::with_capacity(1 << 20, f),
            file: path.display().to_string(),
            path,
            line: String::new(),
            n: 0,
            done: false,
        })
    }

    /// The file, for messages.
    pub fn file(&self) -> &str {
        &self.file
    }
}

impl Iterator for RecordReader {
    type Item = Result<(usize, RequestRecord), RunDirError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line.clear();
            let read = match self.reader.read_line(&mut self.line) {
                Ok(n) => n,
                Err(e) => {
                    self.done = true;
                    return Some(Err(RunDirError::io(&self.path, e)));
                }
            };
            if read == 0 {
                self.done = true;
                return None;
            }
            self.n += 1;
            let text = self.line.trim_end();
            if text.is_empty() {
                continue;
            }
            // The fast path; the located parse runs only to explain a failure.
            if let Ok(r) = serde_json::from_str::<RequestRecord>(text) {
                return Some(Ok((self.n, r)));
            }
            self.done = true;
            if !self.line.ends_with('\n') {
                return Some(Err(RunDirError::CutShort {
                    file: self.file.clone(),
                    line: self.n,
                }));
            }
            let err = match parse::<RequestRecord>(&self.file, text) {
                Err(RunDirError::Data { field, message, .. }) => RunDirError::Data {
                    file: self.file.clone(),
                    line: self.n,
                    field,
                    message: format!("not a request record: {message}"),
                },
                Err(other) => other,
                Ok(_) => RunDirError::Data {
                    file: self.file.clone(),
                    line: self.n,
                    field: String::new(),
                    message: "not a request record".into(),
                },
            };
            return Some(Err(err));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        schema_version: u32,
        #[serde(deserialize_with = "crate::rundir::present")]
        note: Option<String>,
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        value: f64,
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("run.json");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn unknown_missing_and_mistyped_fields_are_located() {
        let d = tempfile::tempdir().unwrap();
        let ok = "{\"schema_version\": 1, \"note\": null, \"inner\": {\"value\": 1.5}}";
        let p = write(d.path(), ok);
        let doc: Doc = read_versioned(&p, None).unwrap();
        assert_eq!((doc.schema_version, doc.note, doc.inner.value), (1, None, 1.5));
        let cases = [
            (
                "{\"schema_version\": 1,\n\"note\": null,\n\"inner\": {\"value\": 1.5, \"extra\": 2}}",
                3,
                "inner.extra",
                "unknown field",
            ),
            (
                "{\"schema_version\": 1,\n\"inner\": {\"value\": 1.5}}",
                2,
                "note",
                "missing field",
            ),
            (
                "{\"schema_version\": 1, \"note\": null,\n\"inner\": {\"value\": \"fast\"}}",
                2,
                "inner.value",
                "invalid type",
            ),
        ];
        for (text, line, field, what) in cases {
            let p = write(d.path(), text);
            match read_versioned::<Doc>(&p, None).unwrap_err() {
                RunDirError::Data {
                    line: l,
                    field: f,
                    message,
                    ..
                } => {
                    assert_eq!((l, f.as_str()), (line, field), "{text}");
                    assert!(message.contains(what), "{message}");
                }
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn unversioned_and_newer_directories_say_who_wrote_them_and_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "{\"oae_version\": \"0.1.0\", \"git_sha\": \"0a24e9e\", \"status\": \"complete\"}",
        );
        let e = read_run(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("oae 0.1.0 (commit 0a24e9e)") && e.contains("before run directories carried a schema version"),
            "{e}"
        );
        assert!(e.contains("oae run") && e.contains("--save-baseline"), "the fix: {e}");
        write(d.path(), "{\"schema_version\": 99, \"oae_version\": \"9.0\"}");
        let e = read_run(d.path()).unwrap_err().to_string();
        assert!(e.contains("schema version 99") && e.contains("9.0"), "{e}");
        std::fs::write(&p, "not json").unwrap();
        assert!(
            read_run(d.path())
                .unwrap_err()
                .to_string()
                .contains("not a JSON object")
        );
        let e = read_run(&d.path().join("nothing")).unwrap_err().to_string();
        assert!(e.contains("has no run.json"), "{e}");
    }

    #[test]
    fn a_record_cut_short_at_the_end_is_told_apart_from_a_bad_line() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(REQUESTS_JSONL);
        std::fs::write(&path, "{\"method\": \"m\"}\n").unwrap();
        let e = RecordReader::open(d.path()).unwrap().next().unwrap().unwrap_err();
        assert!(
            matches!(&e, RunDirError::Data { line: 1, message, .. } if message.contains("missing field")),
            "{e}"
        );
        std::fs::write(&path, "{\"method\": \"m\", \"workl").unwrap();
        let e = RecordReader::open(d.path()).unwrap().next().unwrap().unwrap_err();
        assert!(matches!(e, RunDirError::CutShort { line: 1, .. }), "{e}");
        std::fs::write(&path, "\n\n").unwrap();
        assert!(
            RecordReader::open(d.path()).unwrap().next().is_none(),
            "blank lines are skipped"
        );
    }
}
