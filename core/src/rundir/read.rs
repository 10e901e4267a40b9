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

/// Parses one line of requests.jsonl (`complete`: it ended with a newline).
fn parse_line<R: DeserializeOwned>(file: &str, n: usize, text: &str, complete: bool) -> Result<R, RunDirError> {
    // The fast path; the located parse runs only to explain a failure.
    if let Ok(r) = serde_json::from_str::<R>(text) {
        return Ok(r);
    }
    if !complete {
        return Err(RunDirError::CutShort {
            file: file.to_string(),
            line: n,
        });
    }
    Err(match parse::<R>(file, text) {
        Err(RunDirError::Data { field, message, .. }) => RunDirError::Data {
            file: file.to_string(),
            line: n,
            field,
            message: format!("not a request record: {message}"),
        },
        Err(other) => other,
        Ok(_) => RunDirError::Data {
            file: file.to_string(),
            line: n,
            field: String::new(),
            message: "not a request record".into(),
        },
    })
}

/// A block of whole lines of requests.jsonl, for a parsing thread.
struct Block {
    seq: u64,
    first_line: usize,
    bytes: Vec<u8>,
}

/// What a parsing thread made of a block: the mapped records, then the error that stopped
/// it, if one did.
type Parsed<T> = (u64, Vec<(usize, T)>, Option<RunDirError>);

impl RecordReader {
    /// Reads every record with the JSON parsing spread over `threads` threads, hands each
    /// record through `map` (on the parsing thread) and the results to `each` in file order
    /// (on this thread). Stops at the first malformed line, after every record before it was
    /// handed on, and returns its error (a last line cut short is
    /// [`RunDirError::CutShort`]). Memory stays bounded: a few 4 MiB blocks in flight.
    /// `R` is the record type: [`RequestRecord`], or [`super::RecordWithoutItl`] to skip the
    /// inter-token latencies.
    pub fn map_parallel<R: DeserializeOwned, T: Send>(
        self,
        threads: usize,
        map: impl Fn(R) -> T + Sync,
        each: impl FnMut(usize, T),
    ) -> Result<(), RunDirError> {
        self.map_blocks(threads, 4 << 20, map, each)
    }

    /// [`RecordReader::map_parallel`] with blocks of about `block` bytes.
    fn map_blocks<R: DeserializeOwned, T: Send>(
        mut self,
        threads: usize,
        block: u64,
        map: impl Fn(R) -> T + Sync,
        mut each: impl FnMut(usize, T),
    ) -> Result<(), RunDirError> {
        use std::collections::BTreeMap;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Mutex, mpsc};

        let threads = threads.max(1);
        let stop = AtomicBool::new(false);
        let (work_tx, work_rx) = mpsc::sync_channel::<Block>(threads * 2);
        let work_rx = Mutex::new(work_rx);
        let (done_tx, done_rx) = mpsc::sync_channel::<Parsed<T>>(threads * 2);
        let file = self.file.clone();
        let path = self.path.clone();
        let reader = &mut self.reader;
        std::thread::scope(|scope| {
            let (stop, work_rx, map, file) = (&stop, &work_rx, &map, &file);
            let read_tx = done_tx.clone();
            scope.spawn(move || read_blocks(reader, &path, block, stop, work_tx, read_tx));
            for _ in 0..threads {
                let done_tx = done_tx.clone();
                scope.spawn(move || {
                    loop {
                        let block = match work_rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(block) = block else { return };
                        if done_tx.send(parse_block(file, &block, map)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(done_tx);
            // Hand results on in file order; after an error, drain without handing on.
            let (mut next, mut waiting) = (0u64, BTreeMap::new());
            let mut first_error: Option<RunDirError> = None;
            for (seq, rows, err) in done_rx {
                if first_error.is_some() {
                    continue;
                }
                waiting.insert(seq, (rows, err));
                while let Some((rows, err)) = waiting.remove(&next) {
                    next += 1;
                    for (line, t) in rows {
                        each(line, t);
                    }
                    if let Some(e) = err {
                        stop.store(true, Ordering::Relaxed);
                        first_error = Some(e);
                        break;
                    }
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }
}

/// Reads blocks of about 4 MiB of whole lines (the last may end without a newline) and
/// sends them, numbered, to the parsing threads; an I/O error goes straight to the results.
fn read_blocks<T>(
    reader: &mut BufReader<std::fs::File>,
    path: &Path,
    block: u64,
    stop: &std::sync::atomic::AtomicBool,
    work: std::sync::mpsc::SyncSender<Block>,
    done: std::sync::mpsc::SyncSender<Parsed<T>>,
) {
    use std::io::Read;
    let (mut seq, mut line) = (0u64, 1usize);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut bytes = Vec::with_capacity(block as usize + 4096);
        let read = reader.by_ref().take(block).read_to_end(&mut bytes).and_then(|n| {
            if n as u64 == block {
                reader.read_until(b'\n', &mut bytes)
            } else {
                Ok(0)
            }
        });
        if let Err(e) = read {
            let _ = done.send((seq, Vec::new(), Some(RunDirError::io(path, e))));
            return;
        }
        if bytes.is_empty() {
            return;
        }
        let lines = bytes.iter().filter(|&&b| b == b'\n').count();
        if work
            .send(Block {
                seq,
                first_line: line,
                bytes,
            })
            .is_err()
        {
            return;
        }
        seq += 1;
        line += lines;
    }
}

/// Parses and maps the lines of one block, up to its first malformed one.
fn parse_block<R: DeserializeOwned, T>(file: &str, block: &Block, map: &impl Fn(R) -> T) -> Parsed<T> {
    let mut rows = Vec::new();
    let mut rest: &[u8] = &block.bytes;
    let mut n = block.first_line;
    while !rest.is_empty() {
        let (line, complete, tail) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], true, &rest[i + 1..]),
            None => (rest, false, &rest[rest.len()..]),
        };
        rest = tail;
        let text = line.trim_ascii_end();
        if !text.is_empty() {
            // The fast path straight from bytes; text is only needed to explain a failure.
            let parsed = match serde_json::from_slice::<R>(text) {
                Ok(r) => Ok(r),
                Err(_) => match std::str::from_utf8(text) {
                    Ok(t) => parse_line(file, n, t, complete),
                    Err(e) => Err(RunDirError::Data {
                        file: file.to_string(),
                        line: n,
                        field: String::new(),
                        message: format!("not UTF-8 text: {e}"),
                    }),
                },
            };
            match parsed {
                Ok(r) => rows.push((n, map(r))),
                Err(e) => return (block.seq, rows, Some(e)),
            }
        }
        n += 1;
    }
    (block.seq, rows, None)
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
            let r = parse_line::<RequestRecord>(&self.file, self.n, text, self.line.ends_with('\n'));
            if r.is_err() {
                self.done = true;
            }
            return Some(r.map(|r| (self.n, r)));
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
        // Texts written as schema 1, read as this oae's schema.
        let current = |t: &str| {
            t.replace(
                "\"schema_version\": 1",
                &format!("\"schema_version\": {SCHEMA_VERSION}"),
            )
        };
        let ok = "{\"schema_version\": 1, \"note\": null, \"inner\": {\"value\": 1.5}}";
        let p = write(d.path(), &current(ok));
        let doc: Doc = read_versioned(&p, None).unwrap();
        assert_eq!(
            (doc.schema_version, doc.note, doc.inner.value),
            (SCHEMA_VERSION, None, 1.5)
        );
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
            let text = &current(text);
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
        write(d.path(), "{\"schema_version\": 1, \"oae_version\": \"0.1.0\"}");
        let e = read_run(d.path()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("schema 1 is older than {SCHEMA_VERSION}")) && e.contains("re-run"),
            "{e}"
        );
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

    /// A valid record line for request `id`.
    fn record_line(id: u64) -> String {
        format!(
            "{{\"method\":\"m\",\"workload\":\"w\",\"request_id\":{id},\"trial\":0,\"instance\":0,\"warmup\":false,\"cooldown\":false,\"intended_s\":{id}.0,\"dispatched_s\":{id}.0,\"started_s\":null,\"first_token_s\":null,\"finished_s\":null,\"ttft_ms\":null,\"e2e_ms\":null,\"queue_ms\":null,\"dispatch_lag_ms\":0.0,\"service_ms\":null,\"tpot_ms\":null,\"itl_ms\":[],\"input_tokens\":null,\"output_tokens\":0,\"max_new_tokens\":4,\"stop_reason\":null,\"idle_skipped_s\":0.0,\"idle_before_s\":null,\"source_failed\":false,\"outcome\":\"rejected\",\"error\":\"full\",\"phases_ms\":{{}},\"counters\":{{}},\"energy_dyn_j\":null,\"energy_active_j\":null,\"energy_amortized_j\":null,\"energy_prefill_j\":null,\"energy_decode_j\":null,\"co2e_g\":null,\"energy_source\":null,\"energy_estimated\":false,\"task_id\":null,\"output_text\":null,\"output_truncated\":false,\"quality\":{{}}}}\n"
        )
    }

    fn parallel(dir: &Path, threads: usize, block: u64) -> (Vec<(usize, u64)>, Option<RunDirError>) {
        let mut got = Vec::new();
        let r = RecordReader::open(dir).unwrap().map_blocks(
            threads,
            block,
            |r: RequestRecord| r.request_id,
            |line, id| got.push((line, id)),
        );
        (got, r.err())
    }

    #[test]
    fn parallel_reading_hands_records_on_in_file_order_and_stops_at_the_first_bad_line() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(REQUESTS_JSONL);
        let mut text: String = (0..60).map(record_line).collect();
        text.insert(record_line(0).len() * 10, '\n'); // a blank line is skipped but counted
        std::fs::write(&path, &text).unwrap();
        let sequential: Vec<(usize, u64)> = RecordReader::open(d.path())
            .unwrap()
            .map(|r| r.map(|(line, r)| (line, r.request_id)).unwrap())
            .collect();
        assert_eq!(sequential.len(), 60);
        assert_eq!(sequential[10], (12, 10), "line numbers count the blank line");
        for (threads, block) in [(1, 1 << 20), (3, 700), (4, 64)] {
            let (got, err) = parallel(d.path(), threads, block);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(got, sequential, "{threads} threads, {block}-byte blocks");
        }
        // A bad line in the middle: everything before it, then its error.
        let mut lines: Vec<String> = (0..60).map(record_line).collect();
        lines[37] = "{\"method\": 3}\n".into();
        std::fs::write(&path, lines.concat()).unwrap();
        let (got, err) = parallel(d.path(), 3, 500);
        assert_eq!(got.len(), 37);
        assert!(matches!(err, Some(RunDirError::Data { line: 38, .. })), "{err:?}");
        // Cut short at the end.
        let text: String = (0..20).map(record_line).collect();
        std::fs::write(&path, &text[..text.len() - 30]).unwrap();
        let (got, err) = parallel(d.path(), 2, 300);
        assert_eq!(got.len(), 19);
        assert!(matches!(err, Some(RunDirError::CutShort { line: 20, .. })), "{err:?}");
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
