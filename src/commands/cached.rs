//! Fetching and verifying the entries of a local cache catalog (`oae models`, `oae datasets`):
//! one loop for both.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;

/// A catalog entry that can be fetched into a cache and re-hashed there.
pub trait Cached {
    /// Its catalog name.
    fn name(&self) -> &str;
    /// Its folder in the cache.
    fn dir(&self, root: &Path) -> PathBuf;
    /// Whether it is in the cache.
    fn present(&self, root: &Path) -> bool;
    /// The files whose digest differs from the one recorded at fetch time.
    fn verify(&self, root: &Path) -> anyhow::Result<Vec<String>>;
    /// Fetches it; `progress` gets one line per step.
    fn fetch(&self, root: &Path, python: &str, progress: &mut dyn FnMut(&str)) -> anyhow::Result<PathBuf>;
}

impl Cached for oae_methods::model::catalog::Entry {
    fn name(&self) -> &str {
        self.name
    }
    fn dir(&self, root: &Path) -> PathBuf {
        self.dir(root)
    }
    fn present(&self, root: &Path) -> bool {
        self.present(root)
    }
    fn verify(&self, root: &Path) -> anyhow::Result<Vec<String>> {
        Ok(self.verify(root)?)
    }
    fn fetch(&self, root: &Path, python: &str, progress: &mut dyn FnMut(&str)) -> anyhow::Result<PathBuf> {
        Ok(self.fetch(root, python, progress)?)
    }
}

impl Cached for oae_quality::datasets::Entry {
    fn name(&self) -> &str {
        self.name
    }
    fn dir(&self, root: &Path) -> PathBuf {
        self.dir(root)
    }
    fn present(&self, root: &Path) -> bool {
        self.present(root)
    }
    fn verify(&self, root: &Path) -> anyhow::Result<Vec<String>> {
        self.verify(root).map_err(|m| anyhow!(m))
    }
    fn fetch(&self, root: &Path, python: &str, progress: &mut dyn FnMut(&str)) -> anyhow::Result<PathBuf> {
        self.fetch(root, python, progress).map_err(|m| anyhow!(m))
    }
}

/// The entries `names` asks for (all of `catalog` when empty); `what` names the kind in the
/// error for an unknown name.
pub fn pick<'a, T: Cached>(catalog: &'a [T], names: &[String], what: &str) -> anyhow::Result<Vec<&'a T>> {
    if names.is_empty() {
        return Ok(catalog.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            catalog.iter().find(|e| e.name() == n).ok_or_else(|| {
                let known: Vec<&str> = catalog.iter().map(|e| e.name()).collect();
                anyhow!("unknown {what} `{n}`; known: {}", known.join(", "))
            })
        })
        .collect()
}

/// Fetches each entry not already cached intact.
pub fn fetch<T: Cached>(entries: &[&T], root: &Path, python: &str) -> anyhow::Result<ExitCode> {
    for e in entries {
        if e.present(root) && e.verify(root).map(|bad| bad.is_empty()).unwrap_or(false) {
            println!("{}: already cached at {}", e.name(), e.dir(root).display());
            continue;
        }
        println!("{}: fetching into {}", e.name(), root.display());
        let dest = e.fetch(root, python, &mut |line| println!("  {line}"))?;
        println!("{}: ready at {}", e.name(), dest.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Re-hashes every cached entry of `catalog`; exit 1 on a mismatch.
pub fn verify<T: Cached>(catalog: &[T], root: &Path) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    for e in catalog {
        if !e.present(root) {
            println!("{:<24} absent", e.name());
            continue;
        }
        let bad = e.verify(root)?;
        if bad.is_empty() {
            println!("{:<24} ok", e.name());
        } else {
            ok = false;
            for b in bad {
                println!("{:<24} MISMATCH {b}", e.name());
            }
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
