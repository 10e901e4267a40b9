//! Synthetic run directories with known inputs: for tests of scoring, reports and the gate,
//! and for the score + report benchmark (a million records without a million real requests).
//!
//! The files are written through the same typed schema `oae run` writes
//! (`oae_core::rundir`), every field present; only the figures are made up. Everything is
//! seeded.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use oae_core::config::PositiveF64;
use oae_core::rundir::carbon::{Grid, PRECEDENCE, Pue};
use oae_core::rundir::energy::{EnergyInfo, EnergyValidity, IdleBaseline};
use oae_core::rundir::{
    CarbonAssumptions, CellSummary, Compression, Embodied, GateSettings, Goodput, HostFacts, LimitInfo, MethodInfo,
    Outcome, RequestRecord, RunJson, RunSettings, RunStatus, SCHEMA_VERSION, ScoringSettings, Slo, SuiteInfo,
    SummaryJson, TrialFigures, Validity, WorkloadInfo,
};
use oae_core::stats::{Estimate, Stat};

use crate::bootstrap::SplitMix;
use crate::metric::{DEFAULT_THRESHOLD_PCT, Metric};

/// One (method, workload) cell to synthesise.
#[derive(Debug, Clone)]
pub struct SynthCell {
    /// Method label.
    pub method: String,
    /// Registry id (selects the manifest).
    pub method_id: String,
    /// Workload.
    pub workload: String,
    /// Measured requests.
    pub requests: usize,
    /// Mean service time, s (exponentially distributed around it when `spread` > 0).
    pub service_s: f64,
    /// Relative spread of service time and energy (0: every request identical).
    pub spread: f64,
    /// Dynamic energy per request, J.
    pub dyn_j: f64,
    /// Loaded-idle power, W.
    pub idle_w: f64,
    /// Share of requests that fail.
    pub fail_share: f64,
    /// Weights, bytes.
    pub weight_bytes: u64,
    /// Energy as if from a measuring meter (default: modelled, flagged estimated).
    pub energy_measured: bool,
    /// Share of the machine's CPU other processes used during the replays (default 0).
    pub other_cpu_share: f64,
}

impl SynthCell {
    /// A cell with quiet defaults: 0.1 s service, 5 J, 20 W idle, no failures.
    pub fn new(method: &str, method_id: &str, workload: &str, requests: usize) -> Self {
        SynthCell {
            method: method.into(),
            method_id: method_id.into(),
            workload: workload.into(),
            requests,
            service_s: 0.1,
            spread: 0.0,
            dyn_j: 5.0,
            idle_w: 20.0,
            fail_share: 0.0,
            weight_bytes: 1_000_000_000,
            energy_measured: false,
            other_cpu_share: 0.0,
        }
    }
}

/// A synthetic workload.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthWorkload {
    /// Name.
    pub name: String,
    /// Its rate, req/s.
    pub rate_qps: f64,
    /// The nominal workload it perturbs.
    pub perturbs: Option<String>,
    /// The perturbation, in words.
    pub perturbation: Option<String>,
}

/// A synthetic run.
#[derive(Debug, Clone)]
pub struct SynthRun {
    /// Cells, written interleaved in record order.
    pub cells: Vec<SynthCell>,
    /// Workloads.
    pub workloads: Vec<SynthWorkload>,
    /// Complete or aborted.
    pub status: RunStatus,
    /// run.json `scoring` (baseline, gate, manifests).
    pub scoring: Option<ScoringSettings>,
    /// E2E SLO, ms.
    pub slo_e2e_ms: Option<f64>,
    /// Seed of the per-request noise.
    pub seed: u64,
    /// One entry per trial: the factor on that trial's service times and energy (run-to-run
    /// drift); default one trial at 1.
    pub trial_scales: Vec<f64>,
    /// run.json's suite hash (what makes two runs one benchmark definition); default empty.
    pub suite_sha256: String,
    /// run.json's CPU model (a hardware class); default `synthetic CPU`.
    pub cpu_model: String,
}

/// The carbon assumptions synthetic runs record: oae's defaults for a 2-vCPU VM (world
/// grid, Uptime PUE, 2/96 of a 2,500 kg node over 6 years).
pub fn default_carbon() -> CarbonAssumptions {
    CarbonAssumptions {
        grid: Grid {
            g_per_kwh: 480.6,
            source: "world average (synthetic run)".into(),
            year: None,
            series: None,
            note: None,
        },
        pue: Pue {
            value: 1.56,
            source: "default (synthetic run)".into(),
            default: true,
        },
        embodied: Embodied {
            kg: 2500.0 * 2.0 / 96.0,
            lifetime_years: 6.0,
            parts: vec!["node × 2/96 vCPUs".into()],
            source: "synthetic".into(),
        },
        precedence: PRECEDENCE.into(),
    }
}

/// run.json `scoring` for tests: a baseline, manifests by id, gate thresholds by metric name
/// (names are not checked here: scoring checks them when it reads the run).
pub fn scoring(baseline: Option<&str>, manifests: &[(&str, String)], thresholds: &[(&str, f64)]) -> ScoringSettings {
    ScoringSettings {
        baseline: baseline.map(str::to_string),
        gate: GateSettings {
            threshold_pct: DEFAULT_THRESHOLD_PCT,
            thresholds: thresholds.iter().map(|(m, v)| (m.to_string(), *v)).collect(),
            metrics: Metric::ALL.iter().map(|m| m.name().to_string()).collect(),
        },
        manifests: manifests.iter().map(|(id, t)| (id.to_string(), t.clone())).collect(),
        label_manifests: BTreeMap::new(),
    }
}

/// A measured record with the given figures (`None` figures: a failed request).
fn record(c: &SynthCell, id: u64, service_s: f64, ok: bool, dyn_j: f64, itl: &[f64]) -> RequestRecord {
    let e2e_ms = service_s * 1e3 * 1.02;
    let active = dyn_j + c.idle_w * service_s;
    let some = |v: f64| ok.then_some(v);
    RequestRecord {
        method: c.method.clone(),
        workload: c.workload.clone(),
        request_id: id,
        trial: 0,
        instance: Some(0),
        warmup: false,
        cooldown: false,
        intended_s: id as f64,
        dispatched_s: id as f64,
        started_s: Some(id as f64),
        first_token_s: some(id as f64 + e2e_ms * 0.2e-3),
        finished_s: Some(id as f64 + service_s),
        ttft_ms: some(e2e_ms * 0.2),
        e2e_ms: some(e2e_ms),
        queue_ms: Some(0.0),
        dispatch_lag_ms: 0.0,
        service_ms: Some(service_s * 1e3),
        tpot_ms: some(service_s * 1e3 / 20.0),
        itl_ms: if ok { itl.to_vec() } else { Vec::new() },
        input_tokens: Some(64),
        output_tokens: if ok { 33 } else { 0 },
        max_new_tokens: 33,
        stop_reason: ok.then(|| "length".to_string()),
        idle_skipped_s: 0.0,
        idle_before_s: Some(0.0),
        source_failed: false,
        outcome: if ok { Outcome::Ok } else { Outcome::Error },
        error: (!ok).then(|| "synthetic failure".to_string()),
        phases_ms: BTreeMap::new(),
        counters: BTreeMap::from([("kv_bytes_peak".to_string(), 1000.0)]),
        energy_dyn_j: Some(dyn_j),
        energy_active_j: Some(active),
        energy_amortized_j: Some(active * 2.0),
        energy_prefill_j: Some(active * 0.3),
        energy_decode_j: Some(active * 0.7),
        co2e_g: Some(active * 2.0 * 1.56 * 480.6 / 3.6e6),
        energy_source: Some("synthetic".into()),
        energy_estimated: !c.energy_measured,
        energy_by_domain: Default::default(),
        energy_process_cpu: None,
        task_id: None,
        output_text: None,
        output_truncated: false,
        quality: BTreeMap::new(),
        reasoning_tokens: None,
        answer_tokens: None,
    }
}

impl SynthRun {
    /// A complete run of `cells` on one workload at `rate_qps`.
    pub fn new(cells: Vec<SynthCell>, rate_qps: f64) -> Self {
        let mut workloads: Vec<SynthWorkload> = Vec::new();
        for c in &cells {
            if !workloads.iter().any(|w| w.name == c.workload) {
                workloads.push(SynthWorkload {
                    name: c.workload.clone(),
                    rate_qps,
                    perturbs: None,
                    perturbation: None,
                });
            }
        }
        SynthRun {
            cells,
            workloads,
            status: RunStatus::Complete,
            scoring: None,
            slo_e2e_ms: None,
            seed: 1,
            trial_scales: vec![1.0],
            suite_sha256: String::new(),
            cpu_model: "synthetic CPU".into(),
        }
    }

    fn slo(&self) -> Slo {
        Slo {
            e2e_ms: self.slo_e2e_ms.map(PositiveF64),
            ..Slo::default()
        }
    }

    /// Writes run.json, summary.json and requests.jsonl into `dir` (created).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let file = std::fs::File::create(dir.join("requests.jsonl"))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        // 32 inter-token latencies per record, like a real 33-token answer: records are as
        // long to parse as real ones.
        let itl: Vec<f64> = (0..32).map(|i| 0.9 + 0.013 * i as f64).collect();
        let slo = self.slo();
        let mut summaries = Vec::new();
        for (k, c) in self.cells.iter().enumerate() {
            let (mut e2e, mut good, mut figures) = (Vec::new(), 0usize, Vec::new());
            for (t, scale) in self.trial_scales.iter().enumerate() {
                let mut rng = SplitMix::new(self.seed, k as u64, t as u64);
                let mut unit = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let (mut trial_e2e, mut trial_good) = (Vec::with_capacity(c.requests), 0usize);
                for i in 0..c.requests {
                    // Exponential noise with mean 1 mixed in by `spread`.
                    let noise = (1.0 + c.spread * (-(1.0 - unit()).ln() - 1.0)).max(0.05) * scale;
                    let failed = unit() < c.fail_share;
                    let mut r = record(c, i as u64, c.service_s * noise, !failed, c.dyn_j * noise, &itl);
                    r.trial = t as u32;
                    trial_good += usize::from(r.good(&slo));
                    trial_e2e.extend(r.e2e_ms);
                    serde_json::to_writer(&mut out, &r)?;
                    out.write_all(b"\n")?;
                }
                figures.push(trial_figures(t as u32, c, &trial_e2e, trial_good));
                good += trial_good;
                e2e.push(trial_e2e);
            }
            summaries.push(self.summary(c, e2e, good, figures));
        }
        out.flush()?;
        let summary = SummaryJson {
            schema_version: SCHEMA_VERSION,
            status: self.status,
            cells: summaries,
        };
        std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(&summary)?)?;
        std::fs::write(dir.join("run.json"), serde_json::to_vec_pretty(&self.run_json())?)
    }

    fn summary(&self, c: &SynthCell, e2e: Vec<Vec<f64>>, good: usize, trials: Vec<TrialFigures>) -> CellSummary {
        // The pooled cell: every trial's requests.
        let c = &SynthCell {
            requests: c.requests * trials.len(),
            ..c.clone()
        };
        let rate = self
            .workloads
            .iter()
            .find(|w| w.name == c.workload)
            .map_or(1.0, |w| w.rate_qps);
        let ok = e2e.iter().map(Vec::len).sum::<usize>();
        let mut summary: CellSummary = CellSummary {
            method: c.method.clone(),
            method_id: c.method_id.clone(),
            workload: c.workload.clone(),
            requests: c.requests,
            measured: c.requests,
            warmup: 0,
            cooldown: 0,
            outcomes: BTreeMap::from([(Outcome::Ok, ok), (Outcome::Error, c.requests - ok)]),
            ok,
            failed: c.requests - ok,
            source_failed: 0,
            replay_start_s: 0.0,
            replay_s: c.requests as f64 / rate,
            offered_rate_qps: rate,
            achieved_rate_qps: rate,
            latency: BTreeMap::new(),
            quality: BTreeMap::new(),
            reasoning: None,
            output_tokens_per_s: None,
            output_tokens: 33 * ok as u64,
            input_tokens: 64 * ok as u64,
            phases_ms: BTreeMap::new(),
            counters: BTreeMap::new(),
            setup_s: 1.0,
            energy: None,
            carbon: None,
            wakeup: Vec::new(),
            goodput: Goodput {
                slo: self.slo(),
                good,
                measured: c.requests,
                fraction: Estimate {
                    value: good as f64 / c.requests.max(1) as f64,
                    ci_lo: None,
                    ci_hi: None,
                    insufficient: true,
                },
                goodput_qps: rate * good as f64 / c.requests.max(1) as f64,
            },
            validity: Validity {
                valid: true,
                measured_duration_s: c.requests as f64 / rate,
                reasons: Vec::new(),
            },
            trials,
            host_steal_s: None,
            host_other_cpu_s: Some(c.other_cpu_share * 2.0 * c.requests as f64 / rate),
        };
        if let Some(s) = Stat::from_groups(e2e, 0.95) {
            summary.latency.insert("e2e_ms".into(), s);
        }
        summary.energy = Some(synthetic_energy(c.idle_w, c.energy_measured));
        summary
    }

    fn run_json(&self) -> RunJson {
        let mut methods: Vec<MethodInfo> = Vec::new();
        for c in &self.cells {
            if !methods.iter().any(|m| m.label == c.method) {
                methods.push(MethodInfo {
                    label: c.method.clone(),
                    id: c.method_id.clone(),
                    instances: 1,
                    setup_s: 1.0,
                    setup_energy_j: Some(50.0),
                    cold_start_s: None,
                    setup_energy_estimated: true,
                    setup_energy_by_domain: Default::default(),
                    weight_bytes: Some(c.weight_bytes),
                    facts: BTreeMap::new(),
                    idle_baseline: IdleBaseline {
                        before: None,
                        after: None,
                        meters: Vec::new(),
                        note: None,
                    },
                });
            }
        }
        let records = self.cells.iter().map(|c| c.requests).sum();
        RunJson {
            schema_version: SCHEMA_VERSION,
            oae_version: "synthetic".into(),
            git_sha: None,
            command: Vec::new(),
            status: self.status,
            abort_reason: (self.status != RunStatus::Complete).then(|| "synthetic abort".into()),
            started_utc: "2026-01-01T00:00:00Z".into(),
            finished_utc: None,
            suite: SuiteInfo {
                name: "synthetic".into(),
                file: "synthetic".into(),
                sha256: self.suite_sha256.clone(),
                description: None,
            },
            seed: self.seed,
            slo: self.slo(),
            overrides: BTreeMap::new(),
            runtime: BTreeMap::new(),
            scoring: self.scoring.clone(),
            dispatcher_priority: None,
            run: RunSettings {
                limit: LimitInfo::Requests {
                    requests: self.cells.iter().map(|c| c.requests as u64).max().unwrap_or(0),
                },
                warmup_s: 0.0,
                cooldown_s: 0.0,
                idle_gap_cap_s: None,
                device: "cpu".into(),
                sample_interval_ms: 50.0,
                confidence: 0.95,
                timeout_s: None,
                queue_bound: None,
                min_requests: None,
                min_duration_s: None,
                trials: self.trial_scales.len() as u32,
                order: "interleaved".into(),
            },
            host: HostFacts {
                cpu_model: self.cpu_model.clone(),
                physical_cores: None,
                logical_cpus: 2,
                memory_bytes: 0,
                os: None,
                kernel: None,
                arch: "x86_64".into(),
                virtual_machine: true,
            },
            carbon: default_carbon(),
            workloads: self.workloads.iter().map(workload_info).collect(),
            knowledge: Vec::new(),
            methods,
            not_applicable: Vec::new(),
            replays: Vec::new(),
            energy: EnergyInfo {
                meters: Vec::new(),
                unavailable: Vec::new(),
                sources_checked: Vec::new(),
                validity: synthetic_validity(),
            },
            records,
        }
    }
}

/// One synthetic trial's figures.
fn trial_figures(trial: u32, c: &SynthCell, e2e: &[f64], good: usize) -> TrialFigures {
    let stat = Stat::from_samples(e2e.iter().copied(), 0.95);
    TrialFigures {
        trial,
        replay_start_s: 0.0,
        replay_s: 0.0,
        measured: c.requests,
        ok: e2e.len(),
        good,
        ttft_p50_ms: None,
        e2e_p50_ms: stat.as_ref().map(|s| s.p50.value),
        e2e_p95_ms: stat.as_ref().map(|s| s.p95.value),
        tpot_mean_ms: None,
        service_mean_ms: None,
        energy_amortized_j_mean: None,
    }
}

fn workload_info(w: &SynthWorkload) -> WorkloadInfo {
    WorkloadInfo {
        name: w.name.clone(),
        process: "synthetic".into(),
        schedule_hash: String::new(),
        requests: 0,
        source_failed: 0,
        reordered_rows: 0,
        offered_rate_qps: w.rate_qps,
        mean_rate_qps_before_compression: Some(w.rate_qps),
        perturbs: w.perturbs.clone(),
        perturbation: w.perturbation.clone(),
        config: serde_json::json!({ "kind": "arrival-process" }),
        compression: Compression {
            cap_s: None,
            gaps_shortened: 0,
            skipped_s: 0.0,
            original_span_s: 0.0,
            replay_span_s: 0.0,
            factor: 1.0,
        },
    }
}

fn synthetic_energy(idle_w: f64, measured: bool) -> oae_core::rundir::EnergySummary {
    oae_core::rundir::EnergySummary {
        source: "synthetic".into(),
        domain: "cpu".into(),
        kind: if measured {
            oae_core::rundir::EnergyKind::Measured
        } else {
            oae_core::rundir::EnergyKind::Estimated
        },
        estimated: !measured,
        valid: true,
        invalid_reasons: Vec::new(),
        fallbacks: Vec::new(),
        window_j: 0.0,
        mean_power_w: 0.0,
        busy_j: 0.0,
        gap_j: 0.0,
        idle_w: Some(idle_w),
        dyn_j: None,
        negative_dyn_j: None,
        compressed_idle_j: None,
        compressed_s: 0.0,
        dyn_j_per_request: None,
        active_j_per_request: None,
        amortized_j_per_request: None,
        sensitivity: oae_core::rundir::Sensitivity::default(),
        phases_j: BTreeMap::new(),
        band: None,
        conservation_error_j: 0.0,
        setup_j: Some(50.0),
        domains: Vec::new(),
        estimated_domains: Vec::new(),
        process_view: None,
    }
}

fn synthetic_validity() -> EnergyValidity {
    EnergyValidity {
        valid: true,
        invalid_cells: Vec::new(),
        flagged: false,
        estimated: true,
        sampler_max_gap_ms: 0.0,
        sampler_cpu_s: None,
        read_errors: 0,
        read_errors_by_kind: Vec::new(),
        meter_failures: Vec::new(),
        counter_monotonic: true,
        counter_vs_power_ratio: None,
        cross_checks: Vec::new(),
        idle_drift_pct: None,
        idle_drift_flagged: false,
        idle_drift_by_method: Vec::new(),
        source_resolution_ms: Vec::new(),
    }
}

/// A manifest TOML for tests: `weeks` to deploy, none to maintain, at `level`.
pub fn manifest(id: &str, level: &str, weeks: &str) -> String {
    format!(
        "method = \"{id}\"\nexpertise = \"{level}\"\ncomponents = []\ntuning_knobs = []\nevidence = \"synthetic\"\n[engineer_weeks]\ndeploy = {weeks}\nmaintain_per_year = 0\n"
    )
}
