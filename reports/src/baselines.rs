//! Named baselines on disk (criterion's `--save-baseline` / `--baseline`): complete run
//! directories kept under `oae-results/baselines/NAME` (or `$OAE_BASELINES_DIR/NAME`) so a
//! later run can be gated against them.

use std::path::{Path, PathBuf};

use oae_scorecards::ScoreError;

/// Where named baselines live: `$OAE_BASELINES_DIR`, else `oae-results/baselines`.
pub fn dir() -> PathBuf {
    std::env::var_os("OAE_BASELINES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("oae-results").join("baselines"))
}

/// The directory of the saved baseline `name`, or an error saying how to save one.
pub fn existing(name: &str) -> Result<PathBuf, ScoreError> {
    let path = dir().join(name);
    if path.join("run.json").is_file() {
        Ok(path)
    } else {
        Err(ScoreError::Usage(format!(
            "no baseline named `{name}` in {}; save one first with `oae run … --save-baseline {name}`",
            dir().display()
        )))
    }
}

/// Copies the files of a finished run directory to baselines/NAME, replacing an older one
/// whole: the copy is made under a temporary name and renamed into place.
pub fn save(run_dir: &Path, name: &str) -> Result<PathBuf, ScoreError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(ScoreError::Usage(format!(
            "baseline name `{name}`: use a plain name (letters, digits, `-`, `_`), not a path"
        )));
    }
    let root = dir();
    std::fs::create_dir_all(&root).map_err(|e| ScoreError::io(&root, e))?;
    let dest = root.join(name);
    let tmp = root.join(format!(".{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| ScoreError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| ScoreError::io(&tmp, e))?;
    for entry in std::fs::read_dir(run_dir).map_err(|e| ScoreError::io(run_dir, e))? {
        let entry = entry.map_err(|e| ScoreError::io(run_dir, e))?;
        let is_file = entry
            .file_type()
            .map_err(|e| ScoreError::io(&entry.path(), e))?
            .is_file();
        if is_file {
            std::fs::copy(entry.path(), tmp.join(entry.file_name())).map_err(|e| ScoreError::io(&entry.path(), e))?;
        }
    }
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| ScoreError::io(&dest, e))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| ScoreError::io(&dest, e))?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_paths_are_refused() {
        let d = tempfile::tempdir().unwrap();
        for bad in ["", "../x", "a/b", ".hidden"] {
            let e = save(d.path(), bad).unwrap_err().to_string();
            assert!(e.contains("plain name"), "{bad}: {e}");
        }
    }
}
