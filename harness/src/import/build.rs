//! The run directory's contents from peer runs: records, per-cell summaries and histograms,
//! and run.json — with energy attributed when a metered timeline is given.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use oae_core::rundir::energy::{EnergyInfo, IdleBaseline, IdleDrift, Unavailable};
use oae_core::rundir::{
    CellSummary, Compression, HostFacts, LimitInfo, MethodInfo, ReplayInfo, RunJson, RunSettings, RunStatus,
    SCHEMA_VERSION, SuiteInfo, WorkloadInfo,
};

use super::energy::{Alignment, attribute, drift_of, place};
use super::records::to_records;
use super::{IMPORTED_ID, ImportOptions, PeerCell, PeerRun, hex};
use crate::carbon::{CarbonConfig, Hardware};
use crate::runner::Histograms;
use crate::session::CellHistograms;
use crate::summary::{CellInfo, fill_idle_before, summarize};
use crate::{HarnessError, RequestRecord};

/// One input, read: its file, label, run and the file's SHA-256.
pub(super) type Input = (PathBuf, String, PeerRun, String);

pub(super) struct Built {
    pub records: Vec<RequestRecord>,
    pub hists: Vec<CellHistograms>,
    pub summaries: Vec<CellSummary>,
    pub run: RunJson,
}

/// Everything the inputs give, cell by cell.
#[derive(Default)]
struct Parts {
    records: Vec<RequestRecord>,
    hists: Vec<CellHistograms>,
    summaries: Vec<CellSummary>,
    workloads: Vec<WorkloadInfo>,
    methods: Vec<MethodInfo>,
    replays: Vec<ReplayInfo>,
    unavailable: Vec<Unavailable>,
    provenance: Vec<Value>,
    drifts: Vec<IdleDrift>,
    timeout_s: Option<f64>,
    cancelled: Vec<String>,
}

pub(super) fn build(runs: &[Input], opts: &ImportOptions) -> Result<Built, HarnessError> {
    // This machine when told; else the one a timeline was recorded on (metering is local to
    // the peer); else unknown.
    let host = opts
        .host
        .clone()
        .or_else(|| opts.timeline.as_ref().map(|m| m.info.host.clone()))
        .unwrap_or_else(unknown_host);
    let hardware = Hardware {
        vcpus: host.logical_cpus,
        virtual_machine: host.virtual_machine,
        gpus: opts
            .timeline
            .iter()
            .flat_map(|m| &m.timeline.meters)
            .filter(|m| m.domain.starts_with("gpu"))
            .map(|m| m.domain.clone())
            .collect(),
    };
    let carbon = CarbonConfig::default().resolve(&Default::default(), &hardware);
    let alignment = opts.timeline.as_ref().map(Alignment::new);
    let mut p = Parts::default();
    let mut replay_start = 0.0;
    for (file, label, run, sha) in runs {
        for cell in &run.cells {
            let (mut recs, t0) = to_records(label, cell);
            fill_idle_before(&mut recs);
            let replay_s = recs
                .iter()
                .map(|r| r.finished_s.unwrap_or(r.dispatched_s))
                .fold(0.0, f64::max);
            let span = recs.last().map_or(0.0, |r| r.intended_s);
            let offered = if span > 0.0 && recs.len() > 1 {
                (recs.len() - 1) as f64 / span
            } else {
                0.0
            };
            // On a timeline the replay starts where the peer's did; otherwise cells follow
            // each other from 0.
            let (energy, start) = match &alignment {
                Some(a) => {
                    let at = place(a.metered, file, label, run, cell, t0, replay_s)?;
                    (
                        Some(attribute(a, &carbon, &mut recs, at, opts.confidence)),
                        at.window.t0_s,
                    )
                }
                None => (None, replay_start),
            };
            replay_start = start + replay_s;
            let info = CellInfo {
                method: label,
                method_id: IMPORTED_ID,
                workload: &cell.workload,
                replay_s,
                offered_rate_qps: offered,
                setup_s: 0.0,
                confidence: opts.confidence,
                warmup_s: 0.0,
                cooldown_s: 0.0,
                slo: &opts.slo,
                min_requests: None,
                min_duration_s: None,
            };
            let mut summary = summarize(&info, &recs);
            summary.replay_start_s = start;
            if let Some((e, c)) = energy {
                summary.energy = e;
                summary.carbon = c;
            }
            let mut h = Histograms::default();
            recs.iter().for_each(|r| h.record(r));
            p.hists.push(CellHistograms {
                method: label.clone(),
                workload: cell.workload.clone(),
                start_s: start,
                duration_s: replay_s,
                hists: h,
            });
            p.replays.push(ReplayInfo {
                method: label.clone(),
                workload: cell.workload.clone(),
                trial: 0,
                start_s: start,
            });
            match p.workloads.iter_mut().find(|w| w.name == cell.workload) {
                Some(w) => w.requests = w.requests.max(recs.len()),
                None => p.workloads.push(workload_info(run, cell, &recs, offered)),
            }
            p.summaries.push(summary);
            p.records.extend(recs);
        }
        method(&mut p, label, run, alignment.as_ref());
        if let Some(t) = run.timeout_s {
            p.timeout_s = Some(p.timeout_s.map_or(t, |x: f64| x.max(t)));
        }
        if let Some(why) = &run.cancelled {
            p.cancelled.push(format!("{} ({label}): {why}", file.display()));
        }
        p.provenance.push(json!({
            "label": label,
            "file": file.display().to_string(),
            "sha256": sha,
            "peer": run.tool,
            "peer_version": run.tool_version,
            "peer_command": run.command,
            "model": run.model,
            "server": run.target,
            "notes": run.notes,
        }));
    }
    let run = run_json(runs, opts, host, carbon.assumptions.clone(), alignment.as_ref(), &mut p);
    Ok(Built {
        records: p.records,
        hists: p.hists,
        summaries: p.summaries,
        run,
    })
}

/// run.json's entry for one input's method (and its idle baseline, when metered).
fn method(p: &mut Parts, label: &str, run: &PeerRun, alignment: Option<&Alignment<'_>>) {
    let version = run.tool_version.as_deref().unwrap_or("version not recorded");
    let idle_baseline = match alignment {
        Some(a) => {
            p.drifts.extend(drift_of(label, &a.metered.timeline.meters, &a.fits));
            a.baseline()
        }
        None => {
            p.unavailable.push(Unavailable {
                source: format!("{} ({label})", run.tool),
                reason: format!(
                    "imported from {} {version}: the peer measured no energy and no timeline was given (oae meter -- <peer command>, then oae import --timeline DIR), so records and cells carry none",
                    run.tool
                ),
            });
            IdleBaseline {
                before: None,
                after: None,
                meters: Vec::new(),
                note: Some("imported: the peer measured no idle power".into()),
            }
        }
    };
    p.methods.push(MethodInfo {
        label: label.to_string(),
        id: IMPORTED_ID.into(),
        instances: 1,
        setup_s: 0.0,
        setup_energy_j: None,
        setup_energy_estimated: false,
        setup_energy_by_domain: BTreeMap::new(),
        cold_start_s: None,
        weight_bytes: None,
        facts: [
            ("imported_from".to_string(), json!(run.tool)),
            ("peer_version".to_string(), json!(run.tool_version)),
            ("model".to_string(), json!(run.model)),
            ("server".to_string(), json!(run.target)),
        ]
        .into(),
        idle_baseline,
    });
}

fn run_json(
    runs: &[Input],
    opts: &ImportOptions,
    host: HostFacts,
    carbon: oae_core::rundir::CarbonAssumptions,
    alignment: Option<&Alignment<'_>>,
    p: &mut Parts,
) -> RunJson {
    let started_unix = runs
        .iter()
        .filter_map(|r| r.2.started_unix)
        .fold(f64::INFINITY, f64::min);
    let mut suite_hash = Sha256::new();
    for r in runs {
        suite_hash.update(r.3.as_bytes());
    }
    let tools: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.2.tool,
                r.2.tool_version.as_deref().unwrap_or("(version not recorded)")
            )
        })
        .collect();
    let empty = crate::meters::Timeline::default();
    let timeline = alignment.map_or(&empty, |a| &a.metered.timeline);
    let validity = crate::energy::validity::validity(timeline, &p.summaries, &p.drifts);
    let mut runtime: BTreeMap<String, Value> =
        [("imported".to_string(), Value::Array(std::mem::take(&mut p.provenance)))].into();
    if let Some(a) = alignment {
        let m = a.metered;
        p.unavailable.extend(m.info.unavailable.iter().cloned());
        runtime.insert(
            "timeline".to_string(),
            json!({
                "dir": m.dir.display().to_string(),
                "unix_start": m.info.unix_start,
                "started_utc": m.info.started_utc,
                "command": m.info.command,
                "exit_code": m.info.exit_code,
                "oae_version": m.info.oae_version,
            }),
        );
    }
    RunJson {
        schema_version: SCHEMA_VERSION,
        oae_version: crate::VERSION.to_string(),
        git_sha: opts.git_sha.clone(),
        command: opts.command.clone(),
        status: if p.cancelled.is_empty() {
            RunStatus::Complete
        } else {
            RunStatus::Aborted
        },
        abort_reason: (!p.cancelled.is_empty())
            .then(|| format!("the peer cut its run short: {}", p.cancelled.join("; "))),
        started_utc: if started_unix.is_finite() {
            crate::clock::utc_rfc3339(started_unix)
        } else {
            crate::clock::utc_now_rfc3339()
        },
        finished_utc: Some(crate::clock::utc_now_rfc3339()),
        suite: SuiteInfo {
            name: "import".into(),
            file: runs
                .iter()
                .map(|r| r.0.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            sha256: hex(&suite_hash.finalize()),
            description: Some(format!(
                "imported from {}; latencies re-measured from each request's intended arrival; {}",
                tools.join(", "),
                if alignment.is_some() {
                    "energy from a timeline `oae meter` recorded around the peer"
                } else {
                    "no energy"
                }
            )),
        },
        seed: runs.iter().find_map(|r| r.2.seed).unwrap_or(0),
        slo: opts.slo.clone(),
        overrides: BTreeMap::new(),
        runtime,
        scoring: Some(opts.scoring.clone()),
        dispatcher_priority: None,
        run: RunSettings {
            limit: LimitInfo::Requests {
                requests: p.workloads.iter().map(|w| w.requests as u64).max().unwrap_or(0),
            },
            warmup_s: 0.0,
            cooldown_s: 0.0,
            idle_gap_cap_s: None,
            device: "unknown (imported: the peer measured a server)".into(),
            sample_interval_ms: alignment.map_or(0.0, |a| a.metered.info.sample_interval_ms),
            confidence: opts.confidence,
            timeout_s: p.timeout_s,
            queue_bound: None,
            min_requests: None,
            min_duration_s: None,
            trials: 1,
            order: "sequential".into(),
        },
        host,
        carbon,
        workloads: std::mem::take(&mut p.workloads),
        knowledge: Vec::new(),
        methods: std::mem::take(&mut p.methods),
        not_applicable: Vec::new(),
        replays: std::mem::take(&mut p.replays),
        energy: EnergyInfo {
            meters: timeline.meters.clone(),
            unavailable: std::mem::take(&mut p.unavailable),
            sources_checked: Vec::new(),
            validity,
        },
        records: p.records.len(),
    }
}

/// Host facts when the peer's machine is not known.
fn unknown_host() -> HostFacts {
    HostFacts {
        cpu_model: "not recorded (imported; pass --host-here if the peer ran on this machine)".into(),
        physical_cores: None,
        logical_cpus: 0,
        memory_bytes: 0,
        os: None,
        kernel: None,
        arch: "unknown".into(),
        virtual_machine: false,
    }
}

fn workload_info(run: &PeerRun, cell: &PeerCell, recs: &[RequestRecord], offered: f64) -> WorkloadInfo {
    let span = recs.last().map_or(0.0, |r| r.intended_s);
    let mut hash = Sha256::new();
    for r in recs {
        hash.update(r.intended_s.to_le_bytes());
    }
    WorkloadInfo {
        name: cell.workload.clone(),
        process: cell.process.clone(),
        schedule_hash: hex(&hash.finalize()),
        requests: recs.len(),
        source_failed: 0,
        reordered_rows: 0,
        offered_rate_qps: offered,
        mean_rate_qps_before_compression: cell.rate_qps.or((offered > 0.0).then_some(offered)),
        perturbs: None,
        perturbation: None,
        config: json!({ "peer": run.tool, "peer_settings": cell.config }),
        compression: Compression {
            cap_s: None,
            gaps_shortened: 0,
            skipped_s: 0.0,
            original_span_s: span,
            replay_span_s: span,
            factor: 1.0,
        },
    }
}
