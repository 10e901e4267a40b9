//! The run directory of a suite run cell by cell: the cells' records, summaries recomputed
//! over their union, and a run.json that says where each cell ran — a directory `oae score`,
//! `oae report` and `oae gate` read like a one-machine run's.
//!
//! Per (method, workload) the cells are its trials: records are concatenated, latency,
//! goodput, quality and reasoning statistics recomputed over all of them, energy and carbon
//! pooled as a one-machine run pools its trials (each cell's energy was attributed in its own
//! window, against its own node's idle baseline; a cell whose run was killed before it
//! attributed energy has none, and then the (method, workload) has no pooled energy and
//! run.json's `energy.unavailable` names the cells). A method's setup ran once per cell; the
//! merged run keeps the cell whose setup time is the median (lower median) as the method's
//! setup and idle baseline, and lists every cell's setup in `runtime.merged`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use oae_core::rundir::{
    CellSummary, MethodInfo, REQUESTS_JSONL, RecordReader, RunJson, RunStatus, SummaryJson, read_summary,
};

use super::typed;
use crate::summary::{CellInfo, summarize};
use crate::{HarnessError, RequestRecord};

/// A cell run, read.
pub(super) struct CellRun<'a> {
    pub dir: &'a Path,
    pub run: &'a RunJson,
    pub summary: Option<SummaryJson>,
}

impl<'a> CellRun<'a> {
    pub fn read(dir: &'a Path, run: &'a RunJson) -> Result<CellRun<'a>, HarnessError> {
        Ok(CellRun {
            dir,
            run,
            summary: read_summary(dir, run).map_err(typed)?,
        })
    }

    /// Its first cell's index (runs are merged in cell order, whatever order they are given).
    pub fn first_cell(&self) -> u64 {
        self.run.overrides["cells"]
            .as_array()
            .and_then(|c| c.iter().filter_map(|c| c["index"].as_u64()).min())
            .unwrap_or(u64::MAX)
    }
}

/// What the merged run says about its completeness.
pub(super) struct Coverage {
    /// Cells in the suite.
    pub total: Option<u64>,
    /// Cell indices no input holds.
    pub missing: Vec<u64>,
}

/// The method's setup from the cell whose setup time is the (lower) median, among the cells
/// that measured the method's loaded idle power (a cell killed before its idle baseline has
/// none) when any did.
fn median_setup<'a>(infos: &[&'a MethodInfo]) -> &'a MethodInfo {
    let measured: Vec<&MethodInfo> = infos
        .iter()
        .copied()
        .filter(|m| m.idle_baseline.before.is_some() || m.idle_baseline.after.is_some())
        .collect();
    let mut sorted = if measured.is_empty() { infos.to_vec() } else { measured };
    sorted.sort_by(|a, b| a.setup_s.total_cmp(&b.setup_s));
    sorted[(sorted.len() - 1) / 2]
}

/// Energy validity of the cells together: valid only if every cell's was.
fn merge_validity(runs: &[CellRun<'_>]) -> oae_core::rundir::energy::EnergyValidity {
    let mut v = runs[0].run.energy.validity.clone();
    for r in &runs[1..] {
        let o = &r.run.energy.validity;
        v.valid &= o.valid;
        v.invalid_cells.extend(o.invalid_cells.iter().cloned());
        v.flagged |= o.flagged;
        v.estimated |= o.estimated;
        v.sampler_max_gap_ms = v.sampler_max_gap_ms.max(o.sampler_max_gap_ms);
        v.sampler_cpu_s = v.sampler_cpu_s.zip(o.sampler_cpu_s).map(|(a, b)| a + b);
        v.read_errors += o.read_errors;
        for k in &o.read_errors_by_kind {
            match v
                .read_errors_by_kind
                .iter_mut()
                .find(|x| (&x.source, &x.domain, &x.kind) == (&k.source, &k.domain, &k.kind))
            {
                Some(x) => x.count += k.count,
                None => v.read_errors_by_kind.push(k.clone()),
            }
        }
        v.meter_failures.extend(o.meter_failures.iter().cloned());
        v.counter_monotonic &= o.counter_monotonic;
        // The cross-check farthest from agreement speaks for the merged run.
        v.counter_vs_power_ratio = match (v.counter_vs_power_ratio, o.counter_vs_power_ratio) {
            (Some(a), Some(b)) => Some(if (b - 1.0).abs() > (a - 1.0).abs() { b } else { a }),
            (a, b) => a.or(b),
        };
        v.cross_checks.extend(o.cross_checks.iter().cloned());
        v.idle_drift_pct = match (v.idle_drift_pct, o.idle_drift_pct) {
            (Some(a), Some(b)) => Some(if b.abs() > a.abs() { b } else { a }),
            (a, b) => a.or(b),
        };
        v.idle_drift_flagged |= o.idle_drift_flagged;
        v.idle_drift_by_method.extend(o.idle_drift_by_method.iter().cloned());
    }
    v
}

/// One cell run's share of a (method, workload): its summary of it, when it has one (a run
/// killed outright wrote none), and where its records are in the group's.
struct Share<'a> {
    summary: Option<&'a CellSummary>,
    records: std::ops::Range<usize>,
}

/// The `CellInfo` of a (method, workload) under `run`'s settings.
fn info<'a>(
    run: &'a RunJson,
    setup: &MethodInfo,
    s: (&'a str, &'a str, &'a str),
    offered: f64,
    replay_s: f64,
) -> CellInfo<'a> {
    let settings = &run.run;
    CellInfo {
        method: s.0,
        method_id: s.1,
        workload: s.2,
        replay_s,
        offered_rate_qps: offered,
        setup_s: setup.setup_s,
        confidence: settings.confidence,
        warmup_s: settings.warmup_s,
        cooldown_s: settings.cooldown_s,
        slo: &run.slo,
        min_requests: settings.min_requests,
        min_duration_s: settings.min_duration_s,
    }
}

/// One (method, workload)'s summary over its cells' records. Energy and carbon are pooled
/// only when every share has them: a share without (its run was killed before attributing
/// energy) would leave the pooled figures covering part of the requests.
fn summarize_group(run: &RunJson, setup: &MethodInfo, shares: &[Share<'_>], records: &[RequestRecord]) -> CellSummary {
    let settings = &run.run;
    let known: Vec<&CellSummary> = shares.iter().filter_map(|s| s.summary).collect();
    let r0 = &records[0];
    let method_id = setup.id.as_str();
    let offered = known.first().map_or(0.0, |p| p.offered_rate_qps);
    // A share without a summary: its replay lasted until its last request finished.
    let span = |rs: &[RequestRecord]| {
        rs.iter()
            .map(|r| r.finished_s.unwrap_or(r.dispatched_s))
            .fold(0.0, f64::max)
    };
    let replay_s: f64 = shares
        .iter()
        .map(|s| {
            s.summary
                .map_or_else(|| span(&records[s.records.clone()]), |p| p.replay_s)
        })
        .sum();
    let names = (r0.method.as_str(), method_id, r0.workload.as_str());
    let mut s = summarize(&info(run, setup, names, offered, replay_s), records);
    let whole = known.len() == shares.len();
    s.energy = whole
        .then(|| {
            crate::energy::cell::pool(
                known.iter().map(|p| p.energy.clone()).collect(),
                records,
                settings.confidence,
            )
        })
        .flatten();
    if let Some(e) = s.energy.as_mut() {
        e.setup_j = setup.setup_energy_j;
        for d in &mut e.domains {
            d.setup_j = setup.setup_energy_by_domain.get(&d.domain).copied().flatten();
        }
    }
    s.reasoning = crate::summary::reasoning(records, &run.slo, settings.confidence);
    let carbon: Vec<_> = known.iter().filter_map(|p| p.carbon.clone()).collect();
    s.carbon = (whole && carbon.len() == known.len())
        .then(|| crate::carbon::pool(carbon))
        .flatten();
    s.replay_start_s = known.iter().map(|p| p.replay_start_s).reduce(f64::min).unwrap_or(0.0);
    s.host_steal_s = if whole {
        known.iter().map(|p| p.host_steal_s).sum()
    } else {
        None
    };
    s.host_other_cpu_s = if whole {
        known.iter().map(|p| p.host_other_cpu_s).sum()
    } else {
        None
    };
    s.trials = Vec::new();
    for share in shares {
        match share.summary {
            Some(p) => s.trials.extend(p.trials.iter().cloned()),
            None => {
                let mut by_trial: BTreeMap<u32, Vec<RequestRecord>> = BTreeMap::new();
                for r in &records[share.records.clone()] {
                    by_trial.entry(r.trial).or_default().push(r.clone());
                }
                for (t, rs) in by_trial {
                    let one = summarize(&info(run, setup, names, offered, span(&rs)), &rs);
                    s.trials.push(crate::session::trial_figures(t, 0.0, &one, &rs));
                }
            }
        }
    }
    s.trials.sort_by_key(|t| t.trial);
    s
}

/// The merged suite run: its run.json and summaries (for the caller to write last, once
/// everything else is in place), and the records written.
pub(super) struct Built {
    pub run: RunJson,
    pub summaries: Vec<CellSummary>,
    pub records: usize,
}

/// Writes requests.jsonl of the merged suite run into `out` (records stream group by group:
/// one (method, workload)'s records are held at a time) and builds its run.json and
/// summaries. `cells` are sorted by their first cell index.
pub(super) fn build(
    cells: &[CellRun<'_>],
    coverage: &Coverage,
    out: &crate::rundir::RunDir,
    command: &[String],
) -> Result<Built, HarnessError> {
    use std::io::Write;
    let base = cells[0].run;
    // Groups in the order their first cell ran.
    let mut groups: Vec<(String, String)> = Vec::new();
    for c in cells {
        for r in &c.run.replays {
            let key = (r.method.clone(), r.workload.clone());
            if !groups.contains(&key) {
                groups.push(key);
            }
        }
    }
    let mut methods: Vec<MethodInfo> = Vec::new();
    let mut setups: Vec<Value> = Vec::new();
    let mut labels: Vec<&str> = Vec::new();
    for c in cells {
        for m in &c.run.methods {
            if !labels.contains(&m.label.as_str()) {
                labels.push(&m.label);
            }
        }
    }
    for label in &labels {
        let infos: Vec<&MethodInfo> = cells
            .iter()
            .flat_map(|c| c.run.methods.iter())
            .filter(|m| m.label == *label)
            .collect();
        methods.push(median_setup(&infos).clone());
        setups.push(json!({
            "method": label,
            "setup_s": infos.iter().map(|m| m.setup_s).collect::<Vec<_>>(),
            "kept": "median",
        }));
    }

    let tmp = out.path().join(format!("{REQUESTS_JSONL}.tmp"));
    let mut summaries = Vec::new();
    let mut lost: Vec<String> = Vec::new();
    let written = (|| -> Result<usize, HarnessError> {
        let file = std::fs::File::create(&tmp).map_err(|e| HarnessError::io(&tmp, e, "cannot create"))?;
        let mut w = std::io::BufWriter::new(file);
        let mut n = 0;
        for (method, workload) in &groups {
            let mut shares: Vec<Share<'_>> = Vec::new();
            // The group's records, each cell run's in one range (held once).
            let mut records: Vec<RequestRecord> = Vec::new();
            for c in cells {
                if !c
                    .run
                    .replays
                    .iter()
                    .any(|r| &r.method == method && &r.workload == workload)
                {
                    continue;
                }
                let from = records.len();
                for r in RecordReader::open(c.dir).map_err(typed)? {
                    let (_, r) = r.map_err(typed)?;
                    if &r.method == method && &r.workload == workload {
                        records.push(r);
                    }
                }
                let summary = c.summary.as_ref().and_then(|s| s.cell(method, workload));
                if summary.is_none() && records.len() > from {
                    lost.push(format!(
                        "{method} | {workload}, trial(s) {} in {}",
                        records[from..]
                            .iter()
                            .map(|r| r.trial)
                            .collect::<std::collections::BTreeSet<_>>()
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        c.dir.display()
                    ));
                }
                shares.push(Share {
                    summary,
                    records: from..records.len(),
                });
            }
            for r in &records {
                serde_json::to_writer(&mut w, r).map_err(|e| HarnessError::Invalid(e.to_string()))?;
                w.write_all(b"\n")
                    .map_err(|e| HarnessError::io(&tmp, e, "cannot write"))?;
            }
            n += records.len();
            if !records.is_empty() {
                let setup = methods.iter().find(|m| &m.label == method).ok_or_else(|| {
                    HarnessError::Invalid(format!(
                        "no cell run's run.json describes method `{method}` (its setup); the cell runs are damaged"
                    ))
                })?;
                summaries.push(summarize_group(base, setup, &shares, &records));
            }
        }
        w.into_inner()
            .map_err(|e| HarnessError::io(&tmp, e.into_error(), "cannot write"))?
            .sync_all()
            .map_err(|e| HarnessError::io(&tmp, e, "cannot write"))?;
        std::fs::rename(&tmp, out.path().join(REQUESTS_JSONL))
            .map_err(|e| HarnessError::io(&tmp, e, "cannot rename"))?;
        Ok(n)
    })();
    let records = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };

    let unfinished: Vec<String> = cells
        .iter()
        .filter(|c| c.run.status != RunStatus::Complete)
        .map(|c| format!("{} is `{}`", c.dir.display(), c.run.status.as_str()))
        .collect();
    let mut why = Vec::new();
    if !coverage.missing.is_empty() {
        let list: Vec<String> = coverage.missing.iter().map(u64::to_string).collect();
        why.push(format!(
            "merged without cells {} of {}",
            list.join(", "),
            coverage.total.unwrap_or(0)
        ));
    }
    why.extend(unfinished);
    let status = if why.is_empty() {
        RunStatus::Complete
    } else {
        RunStatus::Aborted
    };

    let mut run = base.clone();
    run.command = command.to_vec();
    run.status = status;
    run.abort_reason = (!why.is_empty()).then(|| why.join("; "));
    run.started_utc = cells
        .iter()
        .map(|c| c.run.started_utc.clone())
        .min()
        .unwrap_or_default();
    run.finished_utc = cells.iter().filter_map(|c| c.run.finished_utc.clone()).max();
    run.overrides.remove("cells");
    run.overrides.remove("cells_total");
    run.methods = methods;
    run.replays = cells.iter().flat_map(|c| c.run.replays.iter().cloned()).collect();
    run.energy.validity = merge_validity(cells);
    for l in lost {
        run.energy.unavailable.push(oae_core::rundir::energy::Unavailable {
            source: l,
            reason: "the run holding these cells was killed before it attributed their energy (kill -9, a crash, a lost node): their latency, quality and counts are kept, their energy is not".into(),
        });
    }
    run.records = records;
    let placements: Vec<Value> = cells
        .iter()
        .map(|c| {
            json!({
                "dir": c.dir.display().to_string(),
                "cells": c.run.overrides["cells"],
                "placement": c.run.runtime.get("placement"),
                "host": c.run.host,
                "gpus": c.run.gpus(),
                "git_sha": c.run.git_sha,
                "started_utc": c.run.started_utc,
            })
        })
        .collect();
    run.runtime.insert(
        "merged".into(),
        json!({
            "cells_total": coverage.total,
            "missing": coverage.missing,
            "from": placements,
            "setups": setups,
        }),
    );
    run.runtime.remove("placement");
    Ok(Built {
        run,
        summaries,
        records,
    })
}

/// The hosts the cells ran on, when they differ (CPU model, GPUs): a merged run compares
/// methods across machines only if the cells' hardware is alike.
pub(super) fn distinct_hardware(cells: &[CellRun<'_>]) -> Vec<String> {
    let mut seen: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for c in cells {
        let h = &c.run.host;
        let gpus: Vec<String> = c.run.gpus().into_iter().map(|g| g.name).collect();
        let key = format!(
            "{} ({} logical CPUs){}",
            h.cpu_model,
            h.logical_cpus,
            if gpus.is_empty() {
                String::new()
            } else {
                format!(", {}", gpus.join(" + "))
            }
        );
        seen.entry(key).or_default().push(c.dir.to_path_buf());
    }
    if seen.len() <= 1 {
        return Vec::new();
    }
    seen.into_iter()
        .map(|(k, dirs)| format!("{k}: {} cell run(s)", dirs.len()))
        .collect()
}
