//! oae's local caches of fetched files (models, datasets): where they live, how a file's
//! digest is taken, and a scratch folder that cleans up after a fetch.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The cache folder for `kind` (`models`, `datasets`): `$<env_var>` when set, else
/// `$XDG_CACHE_HOME/oae/<kind>`, else `~/.cache/oae/<kind>`.
pub fn dir(env_var: &str, kind: &str) -> PathBuf {
    if let Some(d) = std::env::var_os(env_var).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("oae").join(kind)
}

/// Hex sha256 of a file, streamed; the error names the file.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!("{:x}", h.finalize()))
}

/// A scratch folder inside a cache, removed when dropped (a failed fetch leaves nothing).
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `<root>/.fetch-<name>-<pid>` afresh.
    pub fn new(root: &Path, name: &str) -> Result<Self, String> {
        let p = root.join(format!(".fetch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(Self(p))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
