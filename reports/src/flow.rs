//! The scoring workflows behind `oae score`, `oae report`, `oae gate` and the end of
//! `oae run`, as library calls the binary only parses arguments for and renders: build the
//! scoring options from a site file and manifest overrides, score a run directory, write its
//! reports, gate two runs, and — after a complete run — report, gate against a saved
//! baseline and save a new one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oae_scorecards::gate::{self, GateConfig, GateReport};
use oae_scorecards::noise::{Noise, REFERENCE_NAME, REFERENCE_PAIRED_NAME};
use oae_scorecards::score::{self, Options, Scorecards};
use oae_scorecards::{Manifest, Metric, RunData, ScoreError, Scoring, Site};

use crate::baselines;

/// What scoring needs besides the run directory.
#[derive(Debug, Clone, Default)]
pub struct ScoringInputs {
    /// Site file (TOML).
    pub site: Option<PathBuf>,
    /// Manifest files that override the declared cost of the method each names.
    pub manifests: Vec<PathBuf>,
    /// Score a run that did not complete.
    pub allow_partial: bool,
    /// Baseline label (overrides the run's).
    pub against: Option<String>,
    /// Bootstrap resamples per cell.
    pub draws: Option<usize>,
    /// Cost every cell at this request rate instead of its workload's.
    pub rate_qps: Option<f64>,
    /// The scorer that defines an answer's quality `q` (instead of the default preference).
    pub quality: Option<String>,
    /// Every method's shipped manifest by id — (file label, TOML text) — for runs that did
    /// not record one.
    pub shipped: BTreeMap<String, (String, String)>,
}

fn read(path: &Path) -> Result<String, ScoreError> {
    std::fs::read_to_string(path).map_err(|e| ScoreError::io(path, e))
}

/// Scoring options: the site file (or the defaults) with the carbon keys it sets, manifest
/// overrides, baseline and draws. Bad files fail here, before any work.
pub fn options(inputs: &ScoringInputs) -> Result<Options, ScoreError> {
    let mut opts = Options {
        manifests: inputs.shipped.clone(),
        baseline: inputs.against.clone(),
        draws: inputs.draws,
        rate_qps: inputs.rate_qps,
        ..Options::default()
    };
    if let Some(path) = &inputs.site {
        let (label, text) = (path.display().to_string(), read(path)?);
        opts.site = Site::parse(&label, &text)?;
        opts.carbon_overrides = Site::carbon_keys(&label, &text)?;
        opts.site_source = label;
    }
    for path in &inputs.manifests {
        let m = Manifest::parse(&path.display().to_string(), &read(path)?)?;
        opts.manifest_overrides.insert(m.method.clone(), m);
    }
    Ok(opts)
}

/// Reads and scores `dir`.
pub fn score_dir(dir: &Path, inputs: &ScoringInputs) -> Result<(RunData, Scorecards), ScoreError> {
    let opts = options(inputs)?;
    let data = RunData::load_with(dir, inputs.allow_partial, inputs.quality.as_deref())?;
    let cards = score::score(&data, &opts)?;
    Ok((data, cards))
}

/// Writes scorecards.json into `dir`.
pub fn write_scorecards(cards: &Scorecards, dir: &Path) -> Result<PathBuf, ScoreError> {
    let path = dir.join("scorecards.json");
    let bytes = serde_json::to_vec_pretty(cards).map_err(|e| ScoreError::Usage(format!("scorecards.json: {e}")))?;
    crate::write_atomic(&path, &bytes)?;
    Ok(path)
}

/// Scores `dir` and writes scorecards.json and every report into `out`; returns the
/// scorecards and the files written.
pub fn report_dir(dir: &Path, out: &Path, inputs: &ScoringInputs) -> Result<(Scorecards, Vec<PathBuf>), ScoreError> {
    let (_, cards) = score_dir(dir, inputs)?;
    std::fs::create_dir_all(out).map_err(|e| ScoreError::io(out, e))?;
    let mut files = vec![write_scorecards(&cards, out)?];
    files.extend(crate::write_all(&cards, out)?);
    Ok((cards, files))
}

/// What a gate compares, and how strictly.
#[derive(Debug, Clone, Default)]
pub struct GateRequest {
    /// The reference run.
    pub baseline: PathBuf,
    /// The run under test.
    pub current: PathBuf,
    /// `METRIC=PCT` thresholds.
    pub thresholds: Vec<String>,
    /// Default threshold, percent.
    pub threshold_pct: Option<f64>,
    /// Metrics to gate (default: the current run's suite's).
    pub metrics: Vec<String>,
    /// Where gate.json and gate.md go.
    pub out: PathBuf,
    /// A noise calibration (`oae gate calibrate`): floors under the thresholds (default: the
    /// built-in reference floors, except in paired mode).
    pub noise: Option<PathBuf>,
    /// No noise floors at all: thresholds and intervals alone.
    pub no_noise_floor: bool,
    /// Let energy metrics fail the gate even when modelled or taken on a busy machine.
    pub strict_energy: bool,
}

/// Gate draws: enough for stable 95 % intervals, few enough to gate large runs quickly.
pub const GATE_DRAWS: usize = 400;

/// Compares two run directories; returns the report and the files written.
pub fn gate_dirs(req: &GateRequest, inputs: &ScoringInputs) -> Result<(GateReport, Vec<PathBuf>), ScoreError> {
    let base = score_dir(&req.baseline, inputs)?;
    let current = score_dir(&req.current, inputs)?;
    gate_scored((&base.0, &base.1), (&current.0, &current.1), req, false)
}

/// Prefix of the baseline side's method labels in a paired run.
pub const PAIRED_BASELINE: &str = "baseline:";
/// Prefix of the current side's.
pub const PAIRED_CURRENT: &str = "current:";

/// Gates the two sides of a paired run (`oae gate --paired`): the methods labelled
/// `baseline:…` against those labelled `current:…`, replayed interleaved in one run.
pub fn gate_paired(
    dir: &Path,
    req: &GateRequest,
    inputs: &ScoringInputs,
) -> Result<(GateReport, Vec<PathBuf>), ScoreError> {
    let opts = options(inputs)?;
    let data = RunData::load(dir, inputs.allow_partial)?;
    let prefixes = [PAIRED_BASELINE, PAIRED_CURRENT];
    let (bdata, cdata) = (
        data.side(PAIRED_BASELINE, &prefixes),
        data.side(PAIRED_CURRENT, &prefixes),
    );
    for (side, d) in [("baseline", &bdata), ("current", &cdata)] {
        if d.cells.is_empty() {
            return Err(ScoreError::Usage(format!(
                "{}: no `{side}:…` methods; is this a run written by `oae gate --paired`?",
                dir.display()
            )));
        }
    }
    let (bcards, ccards) = (score::score(&bdata, &opts)?, score::score(&cdata, &opts)?);
    gate_scored((&bdata, &bcards), (&cdata, &ccards), req, true)
}

/// Gates `current` against `base`; `paired` when both come from one interleaved run (no
/// run-to-run noise between them, so no reference floors).
fn gate_scored(
    base: (&RunData, &Scorecards),
    current: (&RunData, &Scorecards),
    req: &GateRequest,
    paired: bool,
) -> Result<(GateReport, Vec<PathBuf>), ScoreError> {
    let mut thresholds = Scoring::from_run(current.0)?.thresholds;
    let metrics: Vec<Metric> = if req.metrics.is_empty() {
        thresholds.metrics.clone()
    } else {
        req.metrics
            .iter()
            .map(|n| Metric::parse(n.trim()).map_err(|m| ScoreError::Usage(format!("--metrics: {m}"))))
            .collect::<Result<_, _>>()?
    };
    if let Some(p) = req.threshold_pct {
        if !(p.is_finite() && p >= 0.0) {
            return Err(ScoreError::Usage(format!(
                "--threshold-pct {p}: give a percentage >= 0"
            )));
        }
        thresholds.default_pct = p;
    }
    thresholds.apply_flags(&req.thresholds)?;
    let noise = match &req.noise {
        Some(path) => {
            let n = Noise::read(path)?;
            if n.paired != paired {
                return Err(ScoreError::Usage(format!(
                    "{} was calibrated on {} runs; it measures {} and fits only a {} gate — calibrate on {} runs for this one",
                    path.display(),
                    if n.paired { "paired" } else { "separate" },
                    if n.paired {
                        "how far two sides of one run drift apart"
                    } else {
                        "how far separate runs drift apart"
                    },
                    if n.paired { "--paired" } else { "non-paired" },
                    if paired {
                        "paired A/A (`oae gate --paired` with the same suite twice)"
                    } else {
                        "separate A/A"
                    }
                )));
            }
            Some((path.display().to_string(), n))
        }
        None if req.no_noise_floor => None,
        None if paired => Some((REFERENCE_PAIRED_NAME.to_string(), Noise::reference_paired())),
        None => Some((REFERENCE_NAME.to_string(), Noise::reference())),
    };
    let config = GateConfig {
        thresholds,
        metrics,
        draws: GATE_DRAWS,
        seed: 0x0AE,
        noise,
        paired,
        strict_energy: req.strict_energy,
    };
    let report = gate::compare(base, current, &config);
    let files = crate::gate::write(&report, &req.out)?;
    Ok((report, files))
}

/// Measures the run-to-run noise of every gate metric over A/A runs of one suite — or, when
/// the directories are paired runs (`oae gate --paired`), the drift between their two sides —
/// and writes it to `out` (JSON, for `oae gate --noise`).
pub fn calibrate_dirs(dirs: &[PathBuf], inputs: &ScoringInputs, k: f64, out: &Path) -> Result<Noise, ScoreError> {
    let mut loaded = Vec::new();
    for d in dirs {
        loaded.push(RunData::load(d, inputs.allow_partial)?);
    }
    let suites: Vec<&str> = loaded.iter().map(|d| d.run.suite.sha256.as_str()).collect();
    if suites.windows(2).any(|w| w[0] != w[1]) {
        return Err(ScoreError::Usage(
            "calibration runs must be A/A runs of the same suite file (their suite SHA-256 differ)".into(),
        ));
    }
    let opts = options(inputs)?;
    let prefixes = [PAIRED_BASELINE, PAIRED_CURRENT];
    let is_paired = |d: &RunData| prefixes.iter().all(|p| d.cells.iter().any(|c| c.method.starts_with(p)));
    let noise = if loaded.iter().all(is_paired) {
        let mut sides = Vec::new();
        for d in &loaded {
            let (b, c) = (d.side(PAIRED_BASELINE, &prefixes), d.side(PAIRED_CURRENT, &prefixes));
            let (bc, cc) = (score::score(&b, &opts)?, score::score(&c, &opts)?);
            sides.push(((b, bc), (c, cc)));
        }
        let runs: Vec<_> = sides.iter().map(|((b, bc), (c, cc))| ((b, bc), (c, cc))).collect();
        Noise::calibrate_paired(&runs, k)?
    } else if loaded.iter().any(is_paired) {
        return Err(ScoreError::Usage(
            "calibration runs mix paired runs (`oae gate --paired`) and separate ones; give one kind".into(),
        ));
    } else {
        let mut cards = Vec::new();
        for d in &loaded {
            cards.push(score::score(d, &opts)?);
        }
        let runs: Vec<(&RunData, &Scorecards)> = loaded.iter().zip(&cards).collect();
        Noise::calibrate(&runs, k)?
    };
    let bytes = serde_json::to_vec_pretty(&noise).map_err(|e| ScoreError::Usage(format!("noise file: {e}")))?;
    crate::write_atomic(out, &bytes)?;
    Ok(noise)
}

/// What `oae run` does after a complete run.
#[derive(Debug, Clone, Default)]
pub struct AfterRun {
    /// Write scorecards and reports into the run directory.
    pub report: bool,
    /// Copy the run to this named baseline (unless it fails its gate).
    pub save_baseline: Option<String>,
    /// Gate the run against this named baseline.
    pub baseline: Option<String>,
    /// Noise calibration for that gate.
    pub noise: Option<PathBuf>,
}

/// What happened after the run.
#[derive(Debug, Default)]
pub struct AfterRunOutcome {
    /// The scorecards, when reported.
    pub cards: Option<Scorecards>,
    /// The gate against the named baseline, and its files.
    pub gate: Option<(GateReport, Vec<PathBuf>)>,
    /// Where the baseline was saved.
    pub saved: Option<PathBuf>,
    /// A baseline was asked for but not saved: the run failed its gate.
    pub not_saved: Option<String>,
}

impl AfterRunOutcome {
    /// Whether the gate (if any) passed.
    pub fn passed(&self) -> bool {
        self.gate.as_ref().is_none_or(|(g, _)| g.passed)
    }
}

/// Reports, gates against a named baseline and saves a baseline, in that order. A run that
/// fails its gate is not saved over the reference it failed against.
pub fn after_run(dir: &Path, inputs: &ScoringInputs, after: &AfterRun) -> Result<AfterRunOutcome, ScoreError> {
    let mut outcome = AfterRunOutcome::default();
    if after.report {
        let (cards, _) = report_dir(dir, dir, inputs)?;
        outcome.cards = Some(cards);
    }
    if let Some(name) = &after.baseline {
        let req = GateRequest {
            baseline: baselines::existing(name)?,
            current: dir.to_path_buf(),
            out: dir.to_path_buf(),
            noise: after.noise.clone(),
            ..GateRequest::default()
        };
        outcome.gate = Some(gate_dirs(&req, inputs)?);
    }
    if let Some(name) = &after.save_baseline {
        if outcome.passed() {
            outcome.saved = Some(baselines::save(dir, name)?);
        } else {
            outcome.not_saved = Some(name.clone());
        }
    }
    Ok(outcome)
}

/// run.json's `scoring` record for a suite about to run: its `[score]` and `[gate]`
/// checked, the baseline resolved (`[score] baseline`, else the first `dense` method, else
/// the first method) and each method's shipped manifest. `methods` are (label, id);
/// `composed` are the manifests methods composed from their configuration, by label.
pub fn scoring_for_run(
    score: Option<&oae_core::config::ConfigTable>,
    gate: Option<&oae_core::config::ConfigTable>,
    methods: &[(String, String)],
    shipped: &BTreeMap<String, (String, String)>,
    composed: &BTreeMap<String, String>,
) -> Result<oae_core::rundir::ScoringSettings, oae_core::ConfigError> {
    let mut scoring = Scoring::from_suite(score, gate)?;
    match (&scoring.baseline, score) {
        (Some(b), Some(table)) if !methods.iter().any(|m| &m.0 == b) => {
            let labels: Vec<&str> = methods.iter().map(|m| m.0.as_str()).collect();
            return Err(table.error(
                "baseline",
                format!("no method labelled `{b}`; labels: {}", labels.join(", ")),
            ));
        }
        (Some(_), _) => {}
        (None, _) => {
            scoring.baseline = methods
                .iter()
                .find(|m| m.1 == "dense")
                .or(methods.first())
                .map(|m| m.0.clone());
        }
    }
    let used: BTreeMap<String, String> = methods
        .iter()
        .filter_map(|(_, id)| shipped.get(id).map(|(_, text)| (id.clone(), text.clone())))
        .collect();
    Ok(scoring.to_settings(&used, composed))
}
