//! The combined leaderboard of many runs: each run read and scored, its benchmark identity
//! (the definition its rows may be ranked within) and provenance, and one table of every
//! run's rows — the single-run columns ([`crate::table::COLUMNS`]) after a block of
//! identity, provenance and flag columns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use oae_core::rundir::{EnergyKind, RunJson, read_run};
use oae_scorecards::ScoreError;
use oae_scorecards::score::{Row, Scorecards};

use crate::flow::{ScoringInputs, score_dir};
use crate::table::{Column, Display, Values};

/// The shortest idle baseline the methodology accepts without a flag, s (the harness's
/// default `[energy] idle_baseline_s`).
pub const FULL_IDLE_BASELINE_S: f64 = 30.0;

/// One run, read and scored.
pub struct LoadedRun {
    /// The directory as given.
    pub dir: PathBuf,
    /// Its run.json.
    pub run: RunJson,
    /// Its scorecards (scored now, under the site assumptions asked for).
    pub cards: Scorecards,
    /// 12 hex digits of SHA-256 over its run.json: the run's id (its page is `runs/<id>/`).
    pub id: String,
    /// 12 hex digits of SHA-256 over what its rows measure: suite file, workloads' schedules
    /// (their arrivals, requests and tasks, so also the dataset and its hash), the run-directory
    /// schema and the scorecard schema. Rows of different definitions are never ranked together.
    pub definition: String,
}

fn hex12(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The benchmark identity of a run's rows.
pub fn definition_of(run: &RunJson, cards: &Scorecards) -> String {
    let mut text = format!(
        "suite {}\nrundir schema {}\nscorecards {}\n",
        run.suite.sha256, run.schema_version, cards.schema
    );
    let mut workloads: Vec<(&str, &str)> = run
        .workloads
        .iter()
        .map(|w| (w.name.as_str(), w.schedule_hash.as_str()))
        .collect();
    workloads.sort();
    for (name, hash) in workloads {
        text.push_str(&format!("workload {name} {hash}\n"));
    }
    hex12(text.as_bytes())
}

/// Reads and scores one run directory (partial runs too: their rows are flagged).
pub fn load(dir: &Path, inputs: &ScoringInputs) -> Result<LoadedRun, ScoreError> {
    let bytes = std::fs::read(dir.join("run.json")).map_err(|e| {
        ScoreError::Usage(format!(
            "{}: not a run directory (no readable run.json: {e}); pass directories written by `oae run`, `oae merge` or `oae import`",
            dir.display()
        ))
    })?;
    let run = read_run(dir).map_err(|e| ScoreError::Usage(format!("{}: {e}", dir.display())))?;
    let inputs = ScoringInputs {
        allow_partial: true,
        ..inputs.clone()
    };
    let (_, cards) = score_dir(dir, &inputs).map_err(|e| ScoreError::Usage(format!("{}: {e}", dir.display())))?;
    let definition = definition_of(&run, &cards);
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        id: hex12(&bytes),
        run,
        cards,
        definition,
    })
}

/// One row of the board: which run, which of its rows.
#[derive(Debug, Clone, Copy)]
pub struct At {
    /// Index of the run.
    pub run: usize,
    /// Index of its row.
    pub row: usize,
}

/// The hardware class of a row: its device class (device · CPU model and logical CPUs),
/// with the GPU model in front when the row ran on a GPU.
pub fn hardware(run: &RunJson, row: &Row) -> String {
    let names: Vec<String> = run.gpus().into_iter().map(|g| g.name).collect();
    if run.run.device.starts_with("cuda") && !names.is_empty() {
        format!("{} · {}", names.join(" + "), row.device_class)
    } else {
        row.device_class.clone()
    }
}

/// Energy sources per domain: `cpu: estimated (cpu-model); gpu:0: measured (nvml-counter)`.
pub fn energy_sources(run: &RunJson) -> String {
    let mut by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in &run.energy.meters {
        let kind = match m.kind {
            EnergyKind::Estimated => "estimated",
            _ => "measured",
        };
        by.entry(m.domain.as_str())
            .or_default()
            .push(format!("{kind} ({})", m.name));
    }
    by.into_iter()
        .map(|(d, v)| format!("{d}: {}", v.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether the method's loaded-idle baseline is shorter than the methodology's (or missing).
fn short_idle(run: &RunJson, method: &str) -> bool {
    let Some(m) = run.methods.iter().find(|m| m.label == method) else {
        return true;
    };
    let b = &m.idle_baseline;
    let spans: Vec<f64> = [&b.before, &b.after]
        .into_iter()
        .flatten()
        .map(|s| s.duration_s)
        .collect();
    spans.is_empty() || spans.iter().any(|&d| d < FULL_IDLE_BASELINE_S)
}

/// Whether a row's energy rests on an estimate (a modelled domain).
pub fn estimated_energy(r: &Row) -> bool {
    r.energy_per_request.amortized_j.estimated || !r.energy_per_request.estimated_domains.is_empty()
}

/// The order of the board: definition, workload, hardware, method, run.
pub fn order(runs: &[LoadedRun]) -> Vec<At> {
    let mut at: Vec<At> = runs
        .iter()
        .enumerate()
        .flat_map(|(i, r)| (0..r.cards.rows.len()).map(move |j| At { run: i, row: j }))
        .collect();
    at.sort_by(|a, b| {
        let key = |x: &At| {
            let r = &runs[x.run];
            let row = &r.cards.rows[x.row];
            (
                r.definition.clone(),
                row.workload.clone(),
                hardware(&r.run, row),
                row.method.clone(),
                r.id.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    at
}

/// Ranks within (definition, workload) by cost per 1,000 good requests, cheapest first;
/// rows of partial runs and invalid rows are not ranked.
pub fn ranks(runs: &[LoadedRun], at: &[At]) -> Vec<Option<f64>> {
    let mut groups: BTreeMap<(String, String), Vec<(usize, f64)>> = BTreeMap::new();
    for (i, a) in at.iter().enumerate() {
        let r = &runs[a.run];
        let row = &r.cards.rows[a.row];
        let cost = row.cost_per_1k_good_usd.value;
        if r.cards.run.partial || !row.valid || !cost.is_finite() {
            continue;
        }
        groups
            .entry((r.definition.clone(), row.workload.clone()))
            .or_default()
            .push((i, cost));
    }
    let mut out = vec![None; at.len()];
    for (_, mut g) in groups {
        g.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        for (rank, (i, _)) in g.into_iter().enumerate() {
            out[i] = Some((rank + 1) as f64);
        }
    }
    out
}

fn text(name: &'static str, heading: &'static str, headline: bool, v: Vec<String>) -> Column {
    Column {
        name,
        heading,
        unit: "",
        provenance: "",
        headline,
        display: Display::Text,
        values: Values::Text(v),
        estimated: Vec::new(),
    }
}

fn flag(name: &'static str, heading: &'static str, v: Vec<bool>) -> Column {
    Column {
        name,
        heading,
        unit: "",
        provenance: "",
        headline: false,
        display: Display::Flag,
        values: Values::Flag(v),
        estimated: Vec::new(),
    }
}

/// The identity, provenance and flag columns, one value per row of `at`.
fn board_columns(runs: &[LoadedRun], at: &[At]) -> Vec<Column> {
    let each = |f: &dyn Fn(&LoadedRun, &Row) -> String| -> Vec<String> {
        at.iter()
            .map(|a| f(&runs[a.run], &runs[a.run].cards.rows[a.row]))
            .collect()
    };
    let flags = |f: &dyn Fn(&LoadedRun, &Row) -> bool| -> Vec<bool> {
        at.iter()
            .map(|a| f(&runs[a.run], &runs[a.run].cards.rows[a.row]))
            .collect()
    };
    vec![
        text("definition", "definition", false, each(&|r, _| r.definition.clone())),
        Column {
            name: "rank",
            heading: "rank",
            unit: "",
            provenance: "",
            headline: true,
            display: Display::Number,
            values: Values::Num(ranks(runs, at)),
            estimated: Vec::new(),
        },
        text("run", "run", true, each(&|r, _| r.id.clone())),
        text("hardware", "hardware", true, each(&|r, row| hardware(&r.run, row))),
        text("suite", "suite", false, each(&|r, _| r.run.suite.name.clone())),
        text("run_date", "run date", true, each(&|r, _| r.run.started_utc.clone())),
        text("source_dir", "from", false, each(&|r, _| r.dir.display().to_string())),
        text("cpu_model", "CPU", false, each(&|r, _| r.run.host.cpu_model.clone())),
        text(
            "gpu",
            "GPU",
            false,
            each(&|r, _| r.run.gpus().into_iter().map(|g| g.name).collect::<Vec<_>>().join(", ")),
        ),
        text(
            "gpu_driver",
            "driver",
            false,
            each(&|r, _| {
                let mut d: Vec<String> = r.run.gpus().into_iter().map(|g| g.driver_version).collect();
                d.dedup();
                d.join(", ")
            }),
        ),
        text(
            "energy_sources",
            "energy sources",
            false,
            each(&|r, _| energy_sources(&r.run)),
        ),
        text("oae_version", "oae", false, each(&|r, _| r.run.oae_version.clone())),
        text(
            "git_sha",
            "commit",
            false,
            each(&|r, _| r.run.git_sha.clone().unwrap_or_default()),
        ),
        flag(
            "flag_estimated_energy",
            "estimated energy",
            flags(&|_, row| estimated_energy(row)),
        ),
        flag("flag_partial_run", "partial run", flags(&|r, _| r.cards.run.partial)),
        flag(
            "flag_short_idle_baseline",
            "short idle baseline",
            flags(&|r, row| short_idle(&r.run, &row.method)),
        ),
        flag("flag_invalid", "invalid cell", flags(&|_, row| !row.valid)),
        flag(
            "flag_declared_costs",
            "declared adoption cost",
            flags(&|_, row| row.declared.engineer_weeks.iter().any(|&w| w > 0.0)),
        ),
    ]
}

/// Every row's columns: the board's own, then the single-run leaderboard's.
pub fn columns(runs: &[LoadedRun], at: &[At]) -> Vec<Column> {
    let per_run: Vec<Vec<Column>> = runs.iter().map(|r| crate::table::columns(&r.cards)).collect();
    let mut out = board_columns(runs, at);
    let Some(first) = per_run.first() else {
        return out;
    };
    for (k, proto) in first.iter().enumerate() {
        // The board's `hardware` column is the device class.
        if proto.name == "device_class" {
            continue;
        }
        let values = match &proto.values {
            Values::Num(_) => Values::Num(
                at.iter()
                    .map(|a| match &per_run[a.run][k].values {
                        Values::Num(v) => v[a.row],
                        _ => None,
                    })
                    .collect(),
            ),
            Values::Text(_) => Values::Text(
                at.iter()
                    .map(|a| match &per_run[a.run][k].values {
                        Values::Text(v) => v[a.row].clone(),
                        _ => String::new(),
                    })
                    .collect(),
            ),
            Values::Flag(_) => Values::Flag(
                at.iter()
                    .map(|a| match &per_run[a.run][k].values {
                        Values::Flag(v) => v[a.row],
                        _ => false,
                    })
                    .collect(),
            ),
        };
        let estimated = if proto.estimated.is_empty() {
            Vec::new()
        } else {
            at.iter()
                .map(|a| per_run[a.run][k].estimated.get(a.row).copied().unwrap_or(false))
                .collect()
        };
        out.push(Column {
            values,
            estimated,
            ..proto.clone()
        });
    }
    out
}
