//! Resuming a run that was killed or aborted: its complete cells are kept, the rest run again
//! as cells of the same suite run, and the parts merge back into the run directory.
//!
//! A run directory DIR being resumed holds its parts under `DIR/parts/N`: part 0 is the run
//! as it was stopped, trimmed to its complete cells (a replay is complete when run.json lists
//! it — run.json is rewritten after each replay — and every one of its requests has a
//! record); each resume adds the next part, a cell run of the cells still missing. DIR itself
//! then gets the merge of the parts ([`crate::merge`]): run.json, summary.json, requests.jsonl,
//! histograms, as one run. A resume that is itself stopped leaves its part behind, and the
//! next resume keeps that part's complete cells too, so no request is replayed twice in the
//! result and none is lost.
//!
//! Energy: a run stopped by a signal wrote its finished cells' energy, which is kept; a run
//! killed outright (`kill -9`, a crash, a lost node) lost its energy samples with the process,
//! so its kept cells carry latency, quality and counts but no energy, and the merged run says
//! so in `energy.unavailable`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::json;

use oae_core::rundir::{
    HISTOGRAMS_HLOG, REQUESTS_JSONL, RUN_JSON, RunJson, RunStatus, SUMMARY_JSON, WorkloadInfo, read_run, read_summary,
};

use crate::cells::Cell;
use crate::rundir::write_atomic_in;
use crate::{HarnessError, RequestRecord};

/// The folder of a resumed run's parts.
pub const PARTS: &str = "parts";

/// A (method label, workload, trial) replay.
pub type Turn = (String, String, u32);

/// What a resume has to do.
#[derive(Debug)]
pub struct Resume {
    /// The run directory.
    pub dir: PathBuf,
    /// The run as first started (part 0's run.json, trimmed): its suite, seed and overrides.
    pub original: RunJson,
    /// Turns complete in some part.
    pub complete: BTreeSet<Turn>,
    /// Where the cells still missing run: `DIR/parts/N`.
    pub next_part: PathBuf,
    /// Records dropped because their replay had not finished.
    pub dropped: usize,
}

impl Resume {
    /// The cells of `all` (the suite's, as the original run numbered them) still to run:
    /// those the original run was to replay (all, or its `--cell` selection) that no part
    /// holds complete.
    pub fn missing<'a>(&self, all: &'a [Cell]) -> Vec<&'a Cell> {
        // What the run was asked to replay, as recorded when part 0 was first trimmed.
        let asked = match self.original.runtime.get("resumed") {
            Some(r) => r.get("asked").filter(|a| !a.is_null()),
            None => self.original.overrides.get("cells"),
        };
        let chosen: Option<BTreeSet<u64>> = asked.map(|c| {
            c.as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["index"].as_u64())
                .collect()
        });
        all.iter()
            .filter(|c| chosen.as_ref().is_none_or(|s| s.contains(&(c.index as u64))))
            .filter(|c| !self.complete.contains(&(c.method.clone(), c.workload.clone(), c.trial)))
            .collect()
    }

    /// The parts to merge, in order.
    pub fn parts(&self) -> Result<Vec<PathBuf>, HarnessError> {
        numbered_parts(&self.dir)
    }
}

fn io(path: &Path, e: std::io::Error, hint: &str) -> HarnessError {
    HarnessError::io(path, e, hint)
}

fn typed(e: oae_core::rundir::RunDirError) -> HarnessError {
    HarnessError::Invalid(e.to_string())
}

/// `DIR/parts/N` directories, by N.
fn numbered_parts(dir: &Path) -> Result<Vec<PathBuf>, HarnessError> {
    let parts = dir.join(PARTS);
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(&parts).map_err(|e| io(&parts, e, "cannot list the run's parts"))? {
        let e = e.map_err(|e| io(&parts, e, "cannot list the run's parts"))?;
        if let Some(n) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
            found.push((n, e.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// The run.json of the run as first started: `DIR/run.json`, or part 0's once resumed. It
/// says which suite (file, SHA-256), seed and overrides to rebuild the cells from.
pub fn original_run(dir: &Path) -> Result<RunJson, HarnessError> {
    let first = dir.join(PARTS).join("0");
    if first.join(RUN_JSON).exists() {
        return read_run(&first).map_err(typed);
    }
    if !dir.join(RUN_JSON).exists() {
        return Err(HarnessError::Invalid(format!(
            "{}: no run.json here — pass the directory of a run that `oae run` started",
            dir.display()
        )));
    }
    read_run(dir).map_err(typed)
}

/// Sets `DIR` up for a resume: the run as stopped becomes part 0 (the first time), a merged
/// result of an earlier resume is set aside (it is rebuilt), and every part is trimmed to its
/// complete cells. `all` are the suite's cells as the original run numbers them. Refuses a
/// complete run, and a directory that is no run.
pub fn prepare(dir: &Path, all: &[Cell]) -> Result<Resume, HarnessError> {
    let parts_dir = dir.join(PARTS);
    let top = dir.join(RUN_JSON);
    if top.exists() {
        let run = read_run(dir).map_err(typed)?;
        if run.status == RunStatus::Complete {
            return Err(HarnessError::Invalid(format!(
                "{}: the run is complete; there is nothing to resume",
                top.display()
            )));
        }
    } else if !parts_dir.exists() {
        return Err(HarnessError::Invalid(format!(
            "{}: no run.json here — pass the directory of a run that `oae run` started",
            dir.display()
        )));
    }
    if parts_dir.exists() {
        // The top level is an earlier merge of the parts: derived, rebuilt below.
        for e in std::fs::read_dir(dir).map_err(|e| io(dir, e, "cannot list the run directory"))? {
            let e = e.map_err(|e| io(dir, e, "cannot list the run directory"))?;
            if e.file_name() != PARTS && e.path().is_file() {
                std::fs::remove_file(e.path()).map_err(|x| io(&e.path(), x, "cannot remove the earlier merge"))?;
            }
        }
    } else {
        let first = parts_dir.join("0");
        std::fs::create_dir_all(&first).map_err(|e| io(&first, e, "cannot create the run's parts folder"))?;
        for e in std::fs::read_dir(dir).map_err(|e| io(dir, e, "cannot list the run directory"))? {
            let e = e.map_err(|e| io(dir, e, "cannot list the run directory"))?;
            if e.file_name() == PARTS {
                continue;
            }
            let to = first.join(e.file_name());
            std::fs::rename(e.path(), &to).map_err(|x| io(&e.path(), x, "cannot move it into parts/0"))?;
        }
    }
    let parts = numbered_parts(dir)?;
    let mut complete = BTreeSet::new();
    let mut dropped = 0;
    let mut original = None;
    for p in &parts {
        if !p.join(RUN_JSON).exists() {
            // A resume stopped before its part wrote anything: nothing to keep.
            std::fs::remove_dir_all(p).map_err(|e| io(p, e, "cannot remove an empty part"))?;
            continue;
        }
        let (run, turns, n) = trim(p, all)?;
        if let Some(t) = turns.iter().find(|t| complete.contains(*t)) {
            return Err(HarnessError::Invalid(format!(
                "{}: cell {} | {} | trial {} is complete in two parts; remove one of them",
                p.display(),
                t.0,
                t.1,
                t.2
            )));
        }
        complete.extend(turns);
        dropped += n;
        original.get_or_insert(run);
    }
    let original = original.ok_or_else(|| {
        HarnessError::Invalid(format!(
            "{}: no part holds a run.json; nothing to resume from",
            parts_dir.display()
        ))
    })?;
    let next = parts
        .iter()
        .filter_map(|p| p.file_name()?.to_str()?.parse::<u32>().ok())
        .max()
        .map_or(0, |n| n + 1);
    Ok(Resume {
        dir: dir.to_path_buf(),
        original,
        complete,
        next_part: parts_dir.join(next.to_string()),
        dropped,
    })
}

/// The requests each workload's schedule holds.
fn requests_of(workloads: &[WorkloadInfo]) -> BTreeMap<&str, usize> {
    workloads.iter().map(|w| (w.name.as_str(), w.requests)).collect()
}

/// Trims one part to its complete replays: records of others dropped (a torn last line
/// too), summaries of others dropped, histograms rebuilt from the records kept, and run.json
/// made a complete cell run of what it holds. Returns its run.json, its complete turns and
/// the records dropped. A part already trimmed comes out unchanged.
fn trim(part: &Path, all: &[Cell]) -> Result<(RunJson, BTreeSet<Turn>, usize), HarnessError> {
    let mut run = read_run(part).map_err(typed)?;
    let summary = read_summary(part, &run).map_err(typed)?;
    let file = part.join(REQUESTS_JSONL);
    let mut by_turn: BTreeMap<Turn, Vec<RequestRecord>> = BTreeMap::new();
    let mut dropped = 0;
    if file.exists() {
        let reader = BufReader::new(std::fs::File::open(&file).map_err(|e| io(&file, e, "cannot read"))?);
        let lines: Vec<String> = reader
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|e| io(&file, e, "cannot read"))?;
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<RequestRecord>(line) {
                Ok(r) => by_turn
                    .entry((r.method.clone(), r.workload.clone(), r.trial))
                    .or_default()
                    .push(r),
                // A kill mid-write tears at most the last line, a record of the replay that
                // was running: it goes with that replay.
                Err(_) if i == last => dropped += 1,
                Err(e) => {
                    return Err(HarnessError::Invalid(format!(
                        "{}:{}: not a request record ({e}); the run directory is damaged",
                        file.display(),
                        i + 1
                    )));
                }
            }
        }
    }
    let wanted = requests_of(&run.workloads);
    let replayed: BTreeSet<Turn> = run
        .replays
        .iter()
        .map(|r| (r.method.clone(), r.workload.clone(), r.trial))
        .collect();
    let complete: BTreeSet<Turn> = replayed
        .into_iter()
        .filter(|t| {
            let ids: BTreeSet<u64> = by_turn.get(t).into_iter().flatten().map(|r| r.request_id).collect();
            let rs = by_turn.get(t).map_or(&[][..], Vec::as_slice);
            // Every arrival recorded once, none cancelled by the stop.
            let whole = rs.iter().all(|r| r.outcome != crate::Outcome::Cancelled);
            wanted
                .get(t.1.as_str())
                .is_some_and(|&w| whole && rs.len() == w && ids.len() == w)
        })
        .collect();
    let mut kept: Vec<RequestRecord> = Vec::new();
    for (t, rs) in by_turn {
        if complete.contains(&t) {
            kept.extend(rs);
        } else {
            dropped += rs.len();
        }
    }
    let mut out = Vec::new();
    for r in &kept {
        serde_json::to_writer(&mut out, r).map_err(|e| HarnessError::Invalid(format!("serializing a record: {e}")))?;
        out.push(b'\n');
    }
    write_atomic_in(part, REQUESTS_JSONL, &out)?;

    // Histograms from the records kept, one interval per (method, workload).
    let bytes = crate::rundir::histograms_from_records(&kept, &run.replays)?;
    write_atomic_in(part, HISTOGRAMS_HLOG, &bytes)?;

    // Summaries only of (method, workload)s whose every trial is complete: a summary pools its
    // trials and cannot be split.
    if let Some(mut s) = summary {
        s.cells.retain(|c| {
            let trials: Vec<u32> = run
                .replays
                .iter()
                .filter(|p| p.method == c.method && p.workload == c.workload)
                .map(|p| p.trial)
                .collect();
            !trials.is_empty()
                && trials
                    .iter()
                    .all(|&t| complete.contains(&(c.method.clone(), c.workload.clone(), t)))
        });
        s.status = RunStatus::Complete;
        let mut bytes =
            serde_json::to_vec_pretty(&s).map_err(|e| HarnessError::Invalid(format!("summary.json: {e}")))?;
        bytes.push(b'\n');
        write_atomic_in(part, SUMMARY_JSON, &bytes)?;
    }

    // A complete cell run of what it holds.
    let held: Vec<&Cell> = all
        .iter()
        .filter(|c| complete.contains(&(c.method.clone(), c.workload.clone(), c.trial)))
        .collect();
    if !run.runtime.contains_key("resumed") {
        run.runtime.insert(
            "resumed".into(),
            json!({
                "asked": run.overrides.get("cells"),
                "status_when_stopped": run.status,
                "abort_reason": run.abort_reason,
                "records_dropped": dropped,
                "energy_lost": summary_missing(part),
            }),
        );
    }
    run.overrides.insert("cells".into(), json!(held));
    run.overrides.insert("cells_total".into(), json!(all.len()));
    run.status = RunStatus::Complete;
    run.abort_reason = None;
    run.replays
        .retain(|p| complete.contains(&(p.method.clone(), p.workload.clone(), p.trial)));
    run.records = kept.len();
    let mut bytes = serde_json::to_vec_pretty(&run).map_err(|e| HarnessError::Invalid(format!("run.json: {e}")))?;
    bytes.push(b'\n');
    write_atomic_in(part, RUN_JSON, &bytes)?;
    Ok((run, complete, dropped))
}

fn summary_missing(part: &Path) -> bool {
    !part.join(SUMMARY_JSON).exists()
}
