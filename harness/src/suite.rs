//! The TOML suite: what to run, against which methods, for how long.
//!
//! ```toml
//! name = "quick"                       # optional; defaults to the file stem
//! [run]
//! seed = 42
//! requests = 90                        # or duration_s = 60 (exactly one)
//! warmup_s = 3.0                       # arrivals before this are recorded, not counted
//! cooldown_s = 2.0                     # nor are arrivals in the schedule's last 2 s
//! idle_gap_cap_s = 2.0                 # optional time compression
//! threads = 1                          # compute threads for methods (default: CPUs − 1)
//! timeout_s = 30.0                     # per request, from intended arrival (optional)
//! queue_bound = 16                     # waiting requests beyond idle workers (optional)
//! [slo]                                # optional: defines "good" requests for goodput
//! ttft_ms = 500.0
//! e2e_ms = 5000.0
//! [energy]                             # optional
//! idle_baseline_s = 30.0               # loaded idle before and after each method's replays (0: none)
//! prefill_weight = 1.0                 # c_p: work of a prefill token relative to a decode token
//! cpu_tdp_w = 65.0                     # modelled CPU meter follows a TDP curve instead
//! replay_timeline = "old/timeline.csv" # replay a recorded timeline instead of live meters
//! [carbon]                             # optional; see `oae_harness::carbon`
//! region = "DEU"
//! [[knowledge]]                        # optional: documents knowledge methods search or preload
//! name = "docs"                        # (see `oae_workloads::knowledge`)
//! path = "docs.jsonl"
//! [[workloads]]
//! name = "sporadic"
//! arrival = { process = "poisson", rate_qps = 3.0 }
//! input_tokens = { dist = "uniform", min = 16, max = 96 }
//! output_tokens = 32
//! [[methods]]
//! id = "dense"                         # registry id (`oae list methods`)
//! label = "dense-greedy"               # optional; defaults to id
//! temperature = 0.0                    # every other key is the method's own config
//! ```
//!
//! Every section is parsed with unknown keys rejected, and every error names the file, the
//! line and the key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use oae_core::ConfigError;
pub use oae_core::config::PositiveF64;
use oae_core::config::{ConfigTable, PositiveU32, PositiveU64, SourceFile, SpannedEntries, toml_error};
pub use oae_core::rundir::Slo;
use oae_workloads::workload::WorkloadEntry;
use oae_workloads::{KnowledgeBase, KnowledgeBases, Limit, WorkloadSpec};

use crate::runner::LoadControls;
use crate::{DeviceSpec, HarnessError, MethodSpec};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: Option<Spanned<String>>,
    description: Option<String>,
    run: Spanned<RunSection>,
    slo: Option<Spanned<Slo>>,
    #[serde(default)]
    energy: EnergySection,
    #[serde(default)]
    carbon: crate::carbon::CarbonSection,
    #[serde(default)]
    knowledge: Vec<Spanned<SpannedEntries>>,
    workloads: Vec<WorkloadEntry>,
    methods: Vec<Spanned<SpannedEntries>>,
    score: Option<Spanned<SpannedEntries>>,
    gate: Option<Spanned<SpannedEntries>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunSection {
    #[serde(default)]
    seed: u64,
    requests: Option<PositiveU64>,
    duration_s: Option<PositiveF64>,
    #[serde(default)]
    warmup_s: Option<Spanned<f64>>,
    #[serde(default)]
    cooldown_s: Option<Spanned<f64>>,
    idle_gap_cap_s: Option<PositiveF64>,
    #[serde(default)]
    device: Option<Spanned<String>>,
    sample_interval_ms: Option<PositiveF64>,
    confidence: Option<Spanned<f64>>,
    threads: Option<PositiveU32>,
    timeout_s: Option<PositiveF64>,
    queue_bound: Option<Spanned<i64>>,
    min_requests: Option<PositiveU64>,
    min_duration_s: Option<PositiveF64>,
    trials: Option<Spanned<i64>>,
    order: Option<Spanned<String>>,
    keep_output_chars: Option<u64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnergySection {
    idle_baseline_s: Option<Spanned<f64>>,
    prefill_weight: Option<PositiveF64>,
    cpu_tdp_w: Option<PositiveF64>,
    replay_timeline: Option<Spanned<String>>,
}

/// Default length of each loaded-idle baseline, s (energy-carbon methodology: ≥ 30 s).
pub const DEFAULT_IDLE_BASELINE_S: f64 = 30.0;

/// Energy settings from `[energy]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyConfig {
    /// Loaded-idle baseline measured before and after each method's replays; zero: none.
    pub idle_baseline: Duration,
    /// `c_p`: token-work weight of a prefill token relative to a decode token.
    pub prefill_weight: f64,
    /// What shapes the meters.
    pub meters: crate::meters::MeterConfig,
}

impl Default for EnergyConfig {
    fn default() -> Self {
        EnergyConfig {
            idle_baseline: Duration::from_secs_f64(DEFAULT_IDLE_BASELINE_S),
            prefill_weight: 1.0,
            meters: crate::meters::MeterConfig::default(),
        }
    }
}

fn energy_config(source: &SourceFile, e: EnergySection) -> Result<EnergyConfig, ConfigError> {
    let idle_baseline = match &e.idle_baseline_s {
        None => Duration::from_secs_f64(DEFAULT_IDLE_BASELINE_S),
        Some(v) if v.get_ref().is_finite() && (0.0..=3600.0).contains(v.get_ref()) => {
            Duration::from_secs_f64(*v.get_ref())
        }
        Some(v) => {
            return Err(source.error_at(
                v.span().start,
                "energy.idle_baseline_s",
                format!(
                    "must be a number of seconds from 0 (no baseline) to 3600, got {}",
                    v.get_ref()
                ),
            ));
        }
    };
    let replay_timeline = match &e.replay_timeline {
        None => None,
        Some(p) => {
            let path = source.resolve(p.get_ref());
            if !path.is_file() {
                return Err(source.error_at(
                    p.span().start,
                    "energy.replay_timeline",
                    format!(
                        "no timeline file at {}; give the timeline.csv of an earlier run",
                        path.display()
                    ),
                ));
            }
            // Parse it now: a malformed recording must stop the suite before anything runs,
            // not leave the run without an energy source.
            let text = std::fs::read_to_string(&path).map_err(|err| {
                source.error_at(
                    p.span().start,
                    "energy.replay_timeline",
                    format!("cannot read {}: {err}", path.display()),
                )
            })?;
            crate::meters::replay::parse(&path.display().to_string(), &text)
                .map_err(|err| source.error_at(p.span().start, "energy.replay_timeline", err))?;
            Some(path)
        }
    };
    Ok(EnergyConfig {
        idle_baseline,
        prefill_weight: e.prefill_weight.map(|w| w.get()).unwrap_or(1.0),
        meters: crate::meters::MeterConfig {
            cpu_tdp_w: e.cpu_tdp_w.map(|w| w.get()),
            replay_timeline,
        },
    })
}

/// Run-wide settings from `[run]`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Seed of every random choice in the run.
    pub seed: u64,
    /// Requests per workload, or replay duration.
    pub limit: Limit,
    /// Warm-up window by intended arrival time.
    pub warmup: Duration,
    /// Cool-down window: arrivals intended within this of the last arrival.
    pub cooldown: Duration,
    /// Idle gaps longer than this are compressed.
    pub idle_gap_cap: Option<Duration>,
    /// Device for every method.
    pub device: DeviceSpec,
    /// Energy sampler grid.
    pub sample_interval: Duration,
    /// Two-sided confidence level for every interval reported.
    pub confidence: f64,
    /// Compute threads for the methods (`None`: decided by the binary; see `oae run`).
    pub threads: Option<u32>,
    /// Per-request timeout and queue bound.
    pub controls: LoadControls,
    /// Fewest measured requests per cell for its statistics to count as valid.
    pub min_requests: Option<u64>,
    /// Shortest measured replay (after warm-up) per cell to count as valid, s.
    pub min_duration_s: Option<f64>,
    /// Replays of every cell (the run is the unit of replication: trials let the statistics
    /// and the gate see run-to-run variance).
    pub trials: u32,
    /// The order the suite asks for; `None`: the default for the number of trials
    /// ([`RunConfig::order`]).
    pub order_asked: Option<Order>,
    /// Characters of each answer kept in its record (0: none).
    pub keep_output_chars: usize,
}

impl RunConfig {
    /// In what order methods and trials take turns: as asked, else sequential for one trial
    /// and interleaved for more.
    pub fn order(&self) -> Order {
        match self.order_asked {
            Some(o) => o,
            None if self.trials > 1 => Order::Interleaved,
            None => Order::Sequential,
        }
    }
}

/// In what order a run's methods and trials take turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Each method alone: set up, all its trials back to back, then the next method (one model
    /// resident at a time). The default with one trial.
    Sequential,
    /// Every method set up first; then trial 1 of each method in suite order, trial 2, …
    /// (ABAB…), so drift of the machine hits every method alike. The default with trials.
    Interleaved,
    /// Like interleaved, with the methods of each trial in a seeded random order (recorded).
    Random,
}

impl Order {
    /// The name used in suites and files.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Sequential => "sequential",
            Order::Interleaved => "interleaved",
            Order::Random => "random",
        }
    }
}

/// Most trials a suite may ask for.
pub const MAX_TRIALS: u32 = 100;

/// A `[[methods]]` entry.
#[derive(Debug, Clone)]
pub struct MethodEntry {
    /// Registry id.
    pub id: String,
    /// Unique label in this suite.
    pub label: String,
    /// Parallel instances (workers) serving the FIFO queue.
    pub instances: u32,
    /// The method's own keys.
    pub config: ConfigTable,
    /// Byte offset of the `id` value, for errors about it.
    id_offset: usize,
}

/// A parsed, validated suite.
#[derive(Debug)]
pub struct Suite {
    /// Suite name (used in the default run directory).
    pub name: String,
    /// Free-text description.
    pub description: Option<String>,
    /// The source text and its label.
    pub source: Arc<SourceFile>,
    /// SHA-256 of the source text, hex.
    pub sha256: String,
    /// `[run]`.
    pub run: RunConfig,
    /// `[slo]`.
    pub slo: Slo,
    /// `[energy]`.
    pub energy: EnergyConfig,
    /// `[carbon]`.
    pub carbon: crate::carbon::CarbonConfig,
    /// `[[knowledge]]`: the knowledge bases its methods and task workloads share.
    pub knowledge: KnowledgeBases,
    /// `[[workloads]]`.
    pub workloads: Vec<WorkloadSpec>,
    /// `[[methods]]`.
    pub methods: Vec<MethodEntry>,
    /// `[score]` (the baseline method), checked by the scorecards, not here.
    pub score: Option<ConfigTable>,
    /// `[gate]` (regression thresholds), checked by the scorecards, not here.
    pub gate: Option<ConfigTable>,
    /// The cells this run replays (`oae run --cell`; default: all).
    pub selection: crate::cells::Selection,
}

impl Suite {
    /// One suite replaying both `base`'s and `current`'s methods interleaved on `base`'s
    /// workloads (`oae gate --paired`), labels prefixed with `prefixes` (baseline, current).
    /// The suites must replay the same traffic: same seed, limit, windows and workloads.
    pub fn paired(base: Suite, current: Suite, prefixes: (&str, &str)) -> Result<Suite, HarnessError> {
        let differ = |what: &str| {
            HarnessError::Invalid(format!(
                "{} and {}: the two suites of a paired gate must replay the same traffic, but their {what} differ",
                base.source.label, current.source.label
            ))
        };
        let (a, b) = (&base.run, &current.run);
        if a.seed != b.seed || a.limit != b.limit || a.warmup != b.warmup || a.cooldown != b.cooldown {
            return Err(differ("[run] seed, requests/duration_s or warm-up/cool-down windows"));
        }
        let described = |s: &Suite| -> Vec<(String, String)> {
            s.workloads
                .iter()
                .map(|w| (w.name.clone(), w.describe().to_string()))
                .collect()
        };
        if described(&base) != described(&current) {
            return Err(differ("[[workloads]]"));
        }
        let relabel = |m: &MethodEntry, p: &str| MethodEntry {
            label: format!("{p}{}", m.label),
            ..m.clone()
        };
        let methods = base
            .methods
            .iter()
            .map(|m| relabel(m, prefixes.0))
            .chain(current.methods.iter().map(|m| relabel(m, prefixes.1)))
            .collect();
        Ok(Suite {
            name: format!("paired-{}", base.name),
            description: Some(format!(
                "paired gate: {} (labels `{}…`) against {} (labels `{}…`), interleaved",
                base.source.label, prefixes.0, current.source.label, prefixes.1
            )),
            methods,
            // Each side's OAE-ratio baseline is its first dense (else first) method: a
            // `[score] baseline` label names no method of the paired suite.
            score: None,
            ..base
        })
    }

    /// Reads and parses a suite file.
    pub fn load(path: &Path) -> Result<Suite, HarnessError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HarnessError::io(path, e, "pass the path of a suite TOML file, e.g. suites/quick.toml"))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("suite").to_string();
        Ok(Suite::parse(&path.display().to_string(), &text, &stem)?)
    }

    /// Parses suite text; `label` names it in errors, `default_name` is used without `name`.
    pub fn parse(label: &str, text: &str, default_name: &str) -> Result<Suite, ConfigError> {
        let source = SourceFile::new(label, text);
        let file: SuiteFile = toml::from_str(text).map_err(|e| toml_error(&source, "", &e))?;
        let sha256 = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();

        let name = match &file.name {
            Some(n) => {
                let v = n.get_ref().trim();
                if v.is_empty() || v.contains(['/', '\\']) || v.starts_with('.') {
                    return Err(source.error_at(n.span().start, "name", "must be a non-empty name without slashes"));
                }
                v.to_string()
            }
            None => default_name.to_string(),
        };
        let run_at = file.run.span().start;
        let run = run_config(&source, file.run)?;
        let energy = energy_config(&source, file.energy)?;
        let carbon = crate::carbon::CarbonConfig::from_section(&source, file.carbon)?;

        let knowledge = knowledge(&source, file.knowledge)?;
        let workloads = workloads(&source, file.workloads, &knowledge)?;
        if let Some(slo) = &file.slo {
            check_quality_bar(&source, slo, &workloads)?;
        }
        check_model_scorers_keep_text(&source, run_at, &run, &workloads)?;
        let methods = methods(&source, file.methods)?;
        let score = file
            .score
            .map(|t| ConfigTable::new(source.clone(), "score", t.span(), t.into_inner()));
        let gate = file
            .gate
            .map(|t| ConfigTable::new(source.clone(), "gate", t.span(), t.into_inner()));
        Ok(Suite {
            name,
            description: file.description,
            source,
            sha256,
            run,
            slo: file.slo.map(Spanned::into_inner).unwrap_or_default(),
            energy,
            carbon,
            knowledge,
            workloads,
            methods,
            score,
            gate,
            selection: crate::cells::Selection::default(),
        })
    }

    /// Checks every method id against the registry, listing the valid ones on error.
    pub fn check_methods(&self, registry: &[&'static dyn MethodSpec]) -> Result<(), ConfigError> {
        for m in &self.methods {
            if !registry.iter().any(|s| s.id() == m.id) {
                let valid: Vec<_> = registry.iter().map(|s| s.id()).collect();
                return Err(self.source.error_at(
                    m.id_offset,
                    &m.config.key_path("id"),
                    format!("unknown method `{}`; valid ids: {}", m.id, valid.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

/// Removes a string key, returning (value, byte offset).
fn take_string(table: &mut ConfigTable, key: &str) -> Result<Option<(String, usize)>, ConfigError> {
    match table.take(key) {
        None => Ok(None),
        Some(v) => match v.get_ref().as_str() {
            Some(s) => Ok(Some((s.to_string(), v.span().start))),
            None => Err(table
                .source()
                .error_at(v.span().start, &table.key_path(key), "must be a string")),
        },
    }
}

fn run_config(source: &SourceFile, run: Spanned<RunSection>) -> Result<RunConfig, ConfigError> {
    let at = run.span().start;
    let run = run.into_inner();
    let limit = match (run.requests, run.duration_s) {
        (Some(n), None) => Limit::Count(n.get()),
        (None, Some(d)) => Limit::Duration(Duration::from_secs_f64(d.get())),
        (Some(_), Some(_)) => {
            return Err(source.error_at(at, "run", "set either `requests` or `duration_s`, not both"));
        }
        (None, None) => {
            return Err(source.error_at(
                at,
                "run",
                "set `requests = N` or `duration_s = S` to say how long to run",
            ));
        }
    };
    let window = |v: &Option<Spanned<f64>>, key: &str| match v {
        None => Ok(Duration::ZERO),
        Some(w) if w.get_ref().is_finite() && *w.get_ref() >= 0.0 => Ok(Duration::from_secs_f64(*w.get_ref())),
        Some(w) => Err(source.error_at(
            w.span().start,
            key,
            format!("must be a number of seconds >= 0, got {}", w.get_ref()),
        )),
    };
    let warmup = window(&run.warmup_s, "run.warmup_s")?;
    let cooldown = window(&run.cooldown_s, "run.cooldown_s")?;
    if let (Limit::Duration(d), Some(c)) = (limit, &run.cooldown_s)
        && warmup + cooldown >= d
    {
        return Err(source.error_at(
            c.span().start,
            "run.cooldown_s",
            format!(
                "warmup_s + cooldown_s ({} s) leave nothing of duration_s ({} s) to measure",
                (warmup + cooldown).as_secs_f64(),
                d.as_secs_f64()
            ),
        ));
    }
    let device = match run.device {
        None => DeviceSpec::Cpu,
        Some(d) => d
            .get_ref()
            .parse()
            .map_err(|e: String| source.error_at(d.span().start, "run.device", e))?,
    };
    let confidence = match run.confidence {
        None => crate::stats::CONFIDENCE,
        Some(c) if *c.get_ref() > 0.5 && *c.get_ref() < 1.0 => *c.get_ref(),
        Some(c) => {
            return Err(source.error_at(
                c.span().start,
                "run.confidence",
                format!("must be between 0.5 and 1 (e.g. 0.95), got {}", c.get_ref()),
            ));
        }
    };
    let queue_bound = match run.queue_bound {
        None => None,
        Some(b) if *b.get_ref() >= 0 => Some(*b.get_ref() as usize),
        Some(b) => {
            return Err(source.error_at(
                b.span().start,
                "run.queue_bound",
                format!("must be a number of waiting requests >= 0, got {}", b.get_ref()),
            ));
        }
    };
    let trials = match &run.trials {
        None => 1,
        Some(t) if (1..=i64::from(MAX_TRIALS)).contains(t.get_ref()) => *t.get_ref() as u32,
        Some(t) => {
            return Err(source.error_at(
                t.span().start,
                "run.trials",
                format!(
                    "must be a whole number of trials from 1 to {MAX_TRIALS}, got {}",
                    t.get_ref()
                ),
            ));
        }
    };
    let order_asked = match &run.order {
        None => None,
        Some(o) => Some(match o.get_ref().as_str() {
            "sequential" => Order::Sequential,
            "interleaved" => Order::Interleaved,
            "random" => Order::Random,
            other => {
                return Err(source.error_at(
                    o.span().start,
                    "run.order",
                    format!("unknown order `{other}`; one of: sequential, interleaved, random"),
                ));
            }
        }),
    };
    let sample_interval = Duration::from_secs_f64(run.sample_interval_ms.map(|m| m.get()).unwrap_or(100.0) / 1e3);
    if sample_interval < Duration::from_millis(1) {
        return Err(source.error_at(at, "run.sample_interval_ms", "must be at least 1 ms"));
    }
    Ok(RunConfig {
        seed: run.seed,
        limit,
        warmup,
        cooldown,
        idle_gap_cap: run.idle_gap_cap_s.map(|c| Duration::from_secs_f64(c.get())),
        device,
        sample_interval,
        confidence,
        threads: run.threads.map(|t| t.get()),
        controls: LoadControls {
            timeout: run.timeout_s.map(|t| Duration::from_secs_f64(t.get())),
            queue_bound,
        },
        min_requests: run.min_requests.map(|m| m.get()),
        min_duration_s: run.min_duration_s.map(|m| m.get()),
        trials,
        order_asked,
        keep_output_chars: run
            .keep_output_chars
            .map_or(crate::runner::DEFAULT_KEEP_OUTPUT_CHARS, |k| {
                k.min(usize::MAX as u64) as usize
            }),
    })
}

/// Model-backed scorers read the kept answer text after the replays: refuse a suite that
/// names one and keeps no text.
fn check_model_scorers_keep_text(
    source: &SourceFile,
    run_at: usize,
    run: &RunConfig,
    workloads: &[WorkloadSpec],
) -> Result<(), ConfigError> {
    if run.keep_output_chars > 0 {
        return Ok(());
    }
    for m in oae_quality::scorers::MODEL_SCORERS {
        if let Some(w) = workloads
            .iter()
            .find(|w| w.task.as_ref().is_some_and(|t| t.scores_any_answer_with(m.name)))
        {
            return Err(source.error_at(
                run_at,
                "run.keep_output_chars",
                format!(
                    "workload `{}` scores answers with `{}`, which reads the kept answer text after the replays; keep it (the default 2000 characters covers the model's 256 tokens)",
                    w.name, m.name
                ),
            ));
        }
    }
    Ok(())
}

/// Checks `[slo] quality` against the scorers and the workloads: the bar must be in [0, 1],
/// name a known scorer, and every workload must ask a task scored by it (a request with no
/// reference could never be right).
fn check_quality_bar(source: &SourceFile, slo: &Spanned<Slo>, workloads: &[WorkloadSpec]) -> Result<(), ConfigError> {
    let Some(bar) = &slo.get_ref().quality else {
        return Ok(());
    };
    let at = slo.span().start;
    if !oae_quality::scorers::known(&bar.scorer) {
        return Err(source.error_at(
            at,
            "slo.quality.scorer",
            format!(
                "unknown scorer `{}`; known: {}",
                bar.scorer,
                oae_quality::scorers::all_names()
            ),
        ));
    }
    if !(bar.min.is_finite() && (0.0..=1.0).contains(&bar.min)) {
        return Err(source.error_at(
            at,
            "slo.quality.min",
            format!("must be a score from 0 to 1, got {}", bar.min),
        ));
    }
    for w in workloads {
        match &w.task {
            None => {
                return Err(source.error_at(
                    at,
                    "slo.quality",
                    format!(
                        "workload `{}` has no task, so its answers cannot be judged; give it `task = {{ path = ... }}` or remove the quality bar",
                        w.name
                    ),
                ));
            }
            Some(t) if !t.scores_every_answer_with(&bar.scorer) => {
                return Err(source.error_at(
                    at,
                    "slo.quality.scorer",
                    format!(
                        "workload `{}` does not score every answer with `{}` (it uses {}); name it in its task's `scorers = [...]`",
                        w.name,
                        bar.scorer,
                        t.scorer_names()
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The `[[knowledge]]` bases: each read and checked, names unique.
fn knowledge(source: &Arc<SourceFile>, entries: Vec<Spanned<SpannedEntries>>) -> Result<KnowledgeBases, ConfigError> {
    let mut bases: Vec<Arc<KnowledgeBase>> = Vec::new();
    for (i, t) in entries.into_iter().enumerate() {
        let span = t.span();
        let table = ConfigTable::new(source.clone(), format!("knowledge[{i}]"), span.clone(), t.into_inner());
        let kb = KnowledgeBase::from_table(table)?;
        if bases.iter().any(|k| k.name == kb.name) {
            return Err(source.error_at(
                span.start,
                &format!("knowledge[{i}].name"),
                format!("duplicate knowledge name `{}`", kb.name),
            ));
        }
        bases.push(Arc::new(kb));
    }
    Ok(bases.into())
}

/// The `[[workloads]]`: each built, names unique, every `perturbs` naming a nominal one.
fn workloads(
    source: &Arc<SourceFile>,
    entries: Vec<WorkloadEntry>,
    knowledge: &KnowledgeBases,
) -> Result<Vec<WorkloadSpec>, ConfigError> {
    if entries.is_empty() {
        return Err(source.error_at(
            source.text.len(),
            "workloads",
            "the suite has no [[workloads]]; add at least one",
        ));
    }
    let mut workloads = Vec::new();
    let mut seen = BTreeMap::new();
    for (i, w) in entries.into_iter().enumerate() {
        let offset = w.name.span().start;
        let spec = WorkloadSpec::from_entry(w, source, i, knowledge)?;
        if seen.insert(spec.name.clone(), i).is_some() {
            return Err(source.error_at(
                offset,
                &format!("workloads[{i}].name"),
                format!("duplicate workload name `{}`", spec.name),
            ));
        }
        workloads.push(spec);
    }
    for (i, w) in workloads.iter().enumerate() {
        let Some((nominal, at)) = &w.perturbs else { continue };
        let key = format!("workloads[{i}].perturbs");
        match workloads.iter().find(|n| &n.name == nominal) {
            None => {
                let names: Vec<_> = workloads.iter().map(|n| n.name.as_str()).collect();
                return Err(source.error_at(
                    *at,
                    &key,
                    format!(
                        "no workload named `{nominal}`; name the nominal workload this one perturbs (one of: {})",
                        names.join(", ")
                    ),
                ));
            }
            Some(n) if n.name == w.name || n.perturbs.is_some() => {
                return Err(source.error_at(
                    *at,
                    &key,
                    format!("`{nominal}` is not a nominal workload; a perturbation must name an unperturbed workload"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(workloads)
}

/// The `[[methods]]`: id, unique label and instances taken out, the rest kept for the
/// method to decode.
fn methods(source: &Arc<SourceFile>, entries: Vec<Spanned<SpannedEntries>>) -> Result<Vec<MethodEntry>, ConfigError> {
    if entries.is_empty() {
        return Err(source.error_at(
            source.text.len(),
            "methods",
            "the suite has no [[methods]]; add at least one (see `oae list methods`)",
        ));
    }
    let mut methods = Vec::new();
    let mut labels = BTreeMap::new();
    for (i, m) in entries.into_iter().enumerate() {
        let span = m.span();
        let mut table = ConfigTable::new(source.clone(), format!("methods[{i}]"), span, m.into_inner());
        let id = take_string(&mut table, "id")?
            .ok_or_else(|| table.error("id", "missing key `id`; see `oae list methods`"))?;
        let label = take_string(&mut table, "label")?;
        let instances = match table.take("instances") {
            None => 1,
            Some(v) => match v.get_ref().as_integer() {
                Some(n) if (1..=1024).contains(&n) => n as u32,
                _ => {
                    return Err(source.error_at(
                        v.span().start,
                        &table.key_path("instances"),
                        "must be a whole number from 1 to 1024",
                    ));
                }
            },
        };
        let label_text = label.as_ref().map(|l| l.0.clone()).unwrap_or_else(|| id.0.clone());
        if label_text.trim().is_empty() || label_text.contains(['/', '\\']) || label_text.chars().any(char::is_control)
        {
            let at = label.as_ref().map(|l| l.1).unwrap_or(id.1);
            return Err(source.error_at(
                at,
                &table.key_path("label"),
                "must be a non-empty label without slashes or control characters",
            ));
        }
        if labels.insert(label_text.clone(), i).is_some() {
            let at = label.as_ref().map(|l| l.1).unwrap_or(id.1);
            return Err(source.error_at(
                at,
                &table.key_path("label"),
                format!("two methods are labelled `{label_text}`; give each a unique `label`"),
            ));
        }
        methods.push(MethodEntry {
            id: id.0,
            label: label_text,
            instances,
            config: table,
            id_offset: id.1,
        });
    }
    Ok(methods)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
[run]
seed = 7
requests = 10
warmup_s = 1.0

[[workloads]]
name = "w"
arrival = { process = "constant", rate_qps = 5 }
input_tokens = 8
output_tokens = 4

[[methods]]
id = "mock"
service_ms = 3
"#;

    fn err(text: &str) -> ConfigError {
        Suite::parse("s.toml", text, "s").unwrap_err()
    }

    #[test]
    fn parses_a_valid_suite() {
        let s = Suite::parse("s.toml", OK, "s").unwrap();
        assert_eq!(s.name, "s");
        assert_eq!(s.run.limit, Limit::Count(10));
        assert_eq!(s.methods[0].label, "mock");
        assert!(s.methods[0].config.contains("service_ms"));
        assert!(!s.methods[0].config.contains("id"));
    }

    #[test]
    fn perturbation_workloads_must_name_a_nominal_one() {
        let two = OK.replace(
            "[[methods]]",
            "[[workloads]]\nname = \"bursty\"\narrival = { process = \"constant\", rate_qps = 9 }\ninput_tokens = 8\noutput_tokens = 4\nperturbs = \"w\"\nperturbation = \"bursty arrivals\"\n\n[[methods]]",
        );
        let s = Suite::parse("s.toml", &two, "s").unwrap();
        assert_eq!(s.workloads[1].perturbs.as_ref().map(|p| p.0.as_str()), Some("w"));
        // Recorded typed in run.json (`perturbs`, `perturbation`), not inside the free-form config.
        assert_eq!(s.workloads[1].perturbation.as_deref(), Some("bursty arrivals"));
        assert!(s.workloads[0].perturbs.is_none() && s.workloads[0].perturbation.is_none());
        assert!(s.workloads[1].describe().get("perturbs").is_none());
        let e = err(&two.replace("perturbs = \"w\"", "perturbs = \"nominal\""));
        assert_eq!((e.line, e.key.as_str()), (18, "workloads[1].perturbs"), "{e}");
        assert!(
            e.message.contains("no workload named `nominal`") && e.message.contains("w, bursty"),
            "{e}"
        );
        let e = err(&two.replace("perturbs = \"w\"", "perturbs = \"bursty\""));
        assert!(e.message.contains("not a nominal workload"), "{e}");
        let e = err(&OK.replace("output_tokens = 4", "output_tokens = 4\nperturbation = \"noise\""));
        assert!(
            e.key == "workloads[0].perturbation" && e.message.contains("add `perturbs"),
            "{e}"
        );
    }

    #[test]
    fn score_and_gate_sections_are_kept_for_the_scorecards() {
        let s = Suite::parse(
            "s.toml",
            &format!("{OK}\n[score]\nbaseline = \"mock\"\n[gate]\nthreshold_pct = 3\n"),
            "s",
        )
        .unwrap();
        assert!(s.score.as_ref().unwrap().contains("baseline"));
        assert!(s.gate.as_ref().unwrap().contains("threshold_pct"));
        assert_eq!(s.gate.as_ref().unwrap().key_path("thresholds"), "gate.thresholds");
    }

    #[test]
    fn unknown_run_key_is_located() {
        let e = err(&OK.replace("seed = 7", "seed = 7\nsede = 8"));
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("unknown field") && e.message.contains("sede"), "{e}");
    }

    #[test]
    fn bad_values_are_located() {
        let e = err(&OK.replace("requests = 10", "requests = 0"));
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("greater than 0"));
        let e = err(&OK.replace("rate_qps = 5", "rate_qps = -1"));
        assert_eq!((e.line, e.key.as_str()), (9, "workloads[0].arrival.rate_qps"), "{e}");
        let e = err(&OK.replace("output_tokens = 4", "output_tokens = 0"));
        assert_eq!(e.line, 11, "{e}");
        let e = err(&OK.replace("warmup_s = 1.0", "warmup_s = -2.0"));
        assert_eq!((e.line, e.key.as_str()), (5, "run.warmup_s"), "{e}");
        let e = err(&OK.replace("warmup_s = 1.0", "warmup_s = 1.0\ncooldown_s = -1"));
        assert_eq!((e.line, e.key.as_str()), (6, "run.cooldown_s"), "{e}");
        let e = err(&OK
            .replace("requests = 10", "duration_s = 3")
            .replace("warmup_s = 1.0", "warmup_s = 1.0\ncooldown_s = 2"));
        assert_eq!((e.line, e.key.as_str()), (6, "run.cooldown_s"), "{e}");
        assert!(e.message.contains("nothing"), "{e}");
        let s = Suite::parse(
            "s.toml",
            &OK.replace("warmup_s = 1.0", "warmup_s = 1.0\ncooldown_s = 0.5"),
            "s",
        )
        .unwrap();
        assert_eq!(s.run.cooldown, Duration::from_millis(500));
    }

    #[test]
    fn load_controls_are_validated() {
        let s = Suite::parse(
            "s.toml",
            &OK.replace("seed = 7", "seed = 7\ntimeout_s = 2.5\nqueue_bound = 0"),
            "s",
        )
        .unwrap();
        assert_eq!(s.run.controls.queue_bound, Some(0));
        assert_eq!(s.run.controls.timeout, Some(Duration::from_millis(2500)));
        let e = err(&OK.replace("seed = 7", "seed = 7\nqueue_bound = -1"));
        assert_eq!((e.line, e.key.as_str()), (4, "run.queue_bound"), "{e}");
        let e = err(&OK.replace("seed = 7", "seed = 7\ntimeout_s = 0"));
        assert_eq!(e.line, 4, "{e}");
    }

    #[test]
    fn requests_xor_duration() {
        assert!(
            err(&OK.replace("requests = 10", "requests = 10\nduration_s = 5"))
                .message
                .contains("not both")
        );
        assert!(err(&OK.replace("requests = 10", "")).message.contains("requests = N"));
    }

    #[test]
    fn duplicate_labels_and_missing_sections() {
        let twice = format!("{OK}\n[[methods]]\nid = \"mock\"\n");
        assert!(err(&twice).message.contains("unique `label`"));
        let e = err("[run]\nrequests = 1\n[[methods]]\nid = \"x\"\n");
        assert!(e.message.contains("workloads"), "{e}");
    }

    #[test]
    fn a_malformed_replay_timeline_is_rejected_with_its_own_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.csv"),
            "t_s,domain,source,kind,energy_j,power_w\n0,cpu,x,measured,0,\n1,cpu,x,measured,oops,\n",
        )
        .unwrap();
        let label = dir.path().join("s.toml").display().to_string();
        let text = OK.replace("[run]", "[energy]\nreplay_timeline = \"t.csv\"\n[run]");
        let e = Suite::parse(&label, &text, "s").unwrap_err().to_string();
        assert!(
            e.contains("energy.replay_timeline") && e.contains("t.csv:3: field `energy_j`"),
            "{e}"
        );
        let missing = OK.replace("[run]", "[energy]\nreplay_timeline = \"nope.csv\"\n[run]");
        let e = Suite::parse(&label, &missing, "s").unwrap_err().to_string();
        assert!(e.contains("no timeline file"), "{e}");
    }

    #[test]
    fn malformed_toml_is_located() {
        let e = err(&OK.replace("seed = 7", "seed = = 7"));
        assert_eq!((e.file.as_str(), e.line), ("s.toml", 3));
    }
}
