//! A suite's cells — one method replaying one workload in one trial — with stable ids, and
//! the selection of some of them for one run (`oae run --cell`), so a cluster can run a suite
//! as an array of jobs.
//!
//! Cells are numbered method-major in suite order (method, then workload, then trial). A
//! cell's id is the first 12 hex digits of SHA-256 over the suite file's bytes, the run's
//! seed and request limit, and the cell's method label, workload name and trial: the same on
//! every machine and in every run of the same suite, different as soon as anything that
//! changes what the cell measures does.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::HarnessError;
use crate::suite::Suite;

/// One cell of a suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Position in the suite's cell list (0-based).
    pub index: usize,
    /// Stable content hash (12 hex digits).
    pub id: String,
    /// Method label.
    pub method: String,
    /// Workload name.
    pub workload: String,
    /// Trial (0-based).
    pub trial: u32,
}

/// Every cell of `suite`, in order.
pub fn cells(suite: &Suite) -> Vec<Cell> {
    let mut out = Vec::new();
    for m in &suite.methods {
        for w in &suite.workloads {
            for trial in 0..suite.run.trials {
                let mut h = Sha256::new();
                for part in [
                    suite.sha256.as_str(),
                    &suite.run.seed.to_string(),
                    &format!("{:?}", suite.run.limit),
                    &m.label,
                    &w.name,
                    &trial.to_string(),
                ] {
                    h.update(part.as_bytes());
                    h.update([0]);
                }
                let id: String = h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
                out.push(Cell {
                    index: out.len(),
                    id,
                    method: m.label.clone(),
                    workload: w.name.clone(),
                    trial,
                });
            }
        }
    }
    out
}

/// The environment variables a job array numbers its tasks with, in the order consulted.
pub const ARRAY_INDEX_VARS: [&str; 2] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

/// The cells `spec` names: an index `I`, a range `A..B` (B excluded) or `A..=B`, a cell id,
/// or `auto` — the index of this job-array task, from `SLURM_ARRAY_TASK_ID` (Slurm) or
/// `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job); or a comma-separated list of those
/// (`0,3,5..=7`), each cell once, in index order.
pub fn select(suite: &Suite, spec: &str) -> Result<Vec<Cell>, HarnessError> {
    if !spec.contains(',') {
        return select_one(suite, spec);
    }
    let mut chosen: BTreeMap<usize, Cell> = BTreeMap::new();
    for part in spec.split(',') {
        for c in select_one(suite, part)? {
            chosen.insert(c.index, c);
        }
    }
    Ok(chosen.into_values().collect())
}

fn select_one(suite: &Suite, spec: &str) -> Result<Vec<Cell>, HarnessError> {
    let all = cells(suite);
    let n = all.len();
    let bad = |why: String| {
        HarnessError::Invalid(format!(
            "--cell {spec}: {why}; {} has {n} cells (0..{n}; `oae suite plan` lists them)",
            suite.source.label
        ))
    };
    let index = |s: &str| -> Result<usize, HarnessError> {
        s.trim()
            .parse::<usize>()
            .map_err(|_| bad(format!("`{s}` is not a cell index")))
    };
    let spec = spec.trim();
    let range = if spec == "auto" {
        let (var, value) = ARRAY_INDEX_VARS
            .iter()
            .find_map(|v| std::env::var(v).ok().map(|x| (*v, x)))
            .ok_or_else(|| {
                bad(format!(
                    "`auto` takes the index from {} — neither is set (run it as a job-array task, or give the index)",
                    ARRAY_INDEX_VARS.join(" or ")
                ))
            })?;
        let i = value
            .trim()
            .parse::<usize>()
            .map_err(|_| bad(format!("{var} = `{value}` is not a cell index")))?;
        i..i.saturating_add(1)
    } else if let Some((a, b)) = spec.split_once("..=") {
        index(a)?..index(b)?.saturating_add(1)
    } else if let Some((a, b)) = spec.split_once("..") {
        index(a)?..index(b)?
    } else if let Ok(i) = spec.parse::<usize>() {
        i..i.saturating_add(1)
    } else if let Some(c) = all.iter().find(|c| c.id == spec) {
        c.index..c.index + 1
    } else {
        return Err(bad("not an index, a range A..B, a cell id or `auto`".into()));
    };
    if range.start >= n {
        return Err(bad(format!("cell {} does not exist", range.start)));
    }
    if range.is_empty() {
        return Err(bad(format!("the range {}..{} is empty", range.start, range.end)));
    }
    if range.end > n {
        return Err(bad(format!("cell {} does not exist", range.end - 1)));
    }
    Ok(all[range].to_vec())
}

/// Which (method label, workload index, trial) turns a run replays: all of them, or the
/// selected cells'.
#[derive(Debug, Clone, Default)]
pub struct Selection(Option<BTreeSet<(String, usize, u32)>>);

impl Selection {
    /// Only `chosen`, of `suite`.
    pub fn of(suite: &Suite, chosen: &[Cell]) -> Selection {
        let set = chosen
            .iter()
            .map(|c| {
                let w = suite
                    .workloads
                    .iter()
                    .position(|w| w.name == c.workload)
                    .expect("cells come from the suite");
                (c.method.clone(), w, c.trial)
            })
            .collect();
        Selection(Some(set))
    }

    /// Whether the turn runs.
    pub fn runs(&self, method: &str, workload: usize, trial: u32) -> bool {
        self.0
            .as_ref()
            .is_none_or(|s| s.contains(&(method.to_string(), workload, trial)))
    }

    /// Whether any turn of `method` runs.
    pub fn has_method(&self, method: &str) -> bool {
        self.0.as_ref().is_none_or(|s| s.iter().any(|(m, _, _)| m == method))
    }

    /// Whether every cell runs.
    pub fn is_all(&self) -> bool {
        self.0.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(extra: &str) -> Suite {
        let text = format!(
            "name = \"cells\"\n[run]\nseed = 3\nrequests = 4\ntrials = 2\n[[workloads]]\nname = \"a\"\narrival = {{ process = \"poisson\", rate_qps = 5.0 }}\ninput_tokens = 4\noutput_tokens = 2\n[[workloads]]\nname = \"b\"\narrival = {{ process = \"poisson\", rate_qps = 2.0 }}\ninput_tokens = 4\noutput_tokens = 2\n[[methods]]\nid = \"mock\"\nlabel = \"m1\"\n[[methods]]\nid = \"mock\"\nlabel = \"m2\"\n{extra}"
        );
        Suite::parse("cells.toml", &text, "cells").unwrap()
    }

    /// Ids depend on the suite's content and the cell, never on when or where they are
    /// computed; the numbering is method-major.
    #[test]
    fn ids_are_stable_and_change_with_what_the_cell_measures() {
        let a = cells(&suite(""));
        assert_eq!(a.len(), 2 * 2 * 2);
        assert_eq!(a, cells(&suite("")));
        assert_eq!(
            (a[0].method.as_str(), a[0].workload.as_str(), a[0].trial),
            ("m1", "a", 0)
        );
        assert_eq!(
            (a[3].method.as_str(), a[3].workload.as_str(), a[3].trial),
            ("m1", "b", 1)
        );
        assert_eq!(a[4].method, "m2");
        let ids: BTreeSet<&str> = a.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), a.len(), "ids are distinct");
        assert!(
            a.iter()
                .all(|c| c.id.len() == 12 && c.id.chars().all(|x| x.is_ascii_hexdigit()))
        );
        // A different suite text (even a comment) or seed gives other ids.
        let b = cells(&suite("# a comment\n"));
        assert!(a.iter().zip(&b).all(|(x, y)| x.id != y.id));
        let mut s = suite("");
        s.run.seed = 4;
        assert!(a.iter().zip(cells(&s)).all(|(x, y)| x.id != y.id));
    }

    #[test]
    fn selections_by_index_range_id_and_array_task() {
        let s = suite("");
        let all = cells(&s);
        let pick = |spec: &str| select(&s, spec).map(|v| v.iter().map(|c| c.index).collect::<Vec<_>>());
        assert_eq!(pick("5").unwrap(), [5]);
        assert_eq!(pick("2..5").unwrap(), [2, 3, 4]);
        assert_eq!(pick("2..=5").unwrap(), [2, 3, 4, 5]);
        assert_eq!(pick(&all[6].id).unwrap(), [6]);
        assert_eq!(pick("6,0..2,1").unwrap(), [0, 1, 6], "a list: each cell once, in order");
        assert!(pick("0,9").unwrap_err().to_string().contains("cell 9 does not exist"));
        for (spec, says) in [
            ("8", "does not exist"),
            ("3..3", "empty"),
            ("0..9", "does not exist"),
            ("x", "not an index"),
            ("1..y", "not a cell index"),
            ("18446744073709551615", "does not exist"),
            ("0..=18446744073709551615", "does not exist"),
        ] {
            let e = pick(spec).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("8 cells"), "{spec}: {e}");
        }
        let sel = Selection::of(&s, &select(&s, "1..3").unwrap());
        assert!(sel.runs("m1", 0, 1) && sel.runs("m1", 1, 0) && !sel.runs("m1", 0, 0));
        assert!(sel.has_method("m1") && !sel.has_method("m2") && !sel.is_all());
        assert!(Selection::default().runs("m2", 1, 1));
    }
}
