//! A workload: where requests come from (an arrival process with length distributions, or a
//! trace file) and the schedule it generates.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use toml::Spanned;

use crate::arrivals::{self, ArrivalProcess, Limit};
use crate::config::{ConfigTable, PositiveF64, PositiveU32, SourceFile, SpannedEntries};
use crate::lengths::LengthDist;
use crate::rng::{open01, seeded};
use crate::traces::{self, TraceFormat};
use crate::{Arrival, ConfigError, Request, Schedule, TaskSpec};

/// A `[[workloads]]` entry as written in a suite: either `arrival` with `input_tokens` and
/// `output_tokens`, or `trace`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadEntry {
    /// Unique name, used in records and reports.
    pub name: Spanned<String>,
    /// `{ process = "poisson", rate_qps = 2.0 }`; the other keys belong to the process.
    pub arrival: Option<Spanned<SpannedEntries>>,
    /// Prompt length distribution, in tokens of a byte-level tokenizer.
    pub input_tokens: Option<LengthDist>,
    /// Generation length distribution (max new tokens).
    pub output_tokens: Option<LengthDist>,
    /// `{ path = "...", format = "burstgpt", ... }`: arrivals and lengths from a trace file.
    pub trace: Option<Spanned<SpannedEntries>>,
    /// `{ path = "tasks.jsonl", ... }`: prompts and reference answers from a task file
    /// (with `arrival` or `trace` for the timing).
    pub task: Option<Spanned<SpannedEntries>>,
    /// Name of the nominal workload this one perturbs (bursty arrivals, noisy prompts, long
    /// tails, constrained resources, faults): scorecards compare the two for robustness.
    pub perturbs: Option<Spanned<String>>,
    /// What the perturbation is, in words (defaults to the workload's name).
    pub perturbation: Option<String>,
}

/// Where a workload's requests come from.
#[derive(Debug)]
pub enum Source {
    /// A seeded arrival process and length distributions.
    Synthetic {
        /// The arrival process.
        arrival: Box<dyn ArrivalProcess>,
        /// Prompt lengths.
        input_tokens: LengthDist,
        /// Generation lengths.
        output_tokens: LengthDist,
    },
    /// A trace file.
    Trace(TraceSpec),
}

/// A trace replay: file, format, window, thinning, time scaling and length caps.
#[derive(Debug)]
pub struct TraceSpec {
    /// The file, resolved against the suite's directory.
    pub path: PathBuf,
    /// Its format.
    pub format: &'static TraceFormat,
    /// Window start, seconds after the trace's first request.
    pub start_s: f64,
    /// Window end (exclusive), seconds after the first request.
    pub end_s: Option<f64>,
    /// Target replay rate, reached by seeded thinning (never by duplicating requests).
    pub rate_qps: Option<f64>,
    /// Multiplies every gap: 0.5 replays twice as fast.
    pub time_scale: f64,
    /// Prompt lengths above this are cut to it.
    pub max_input_tokens: Option<u32>,
    /// Generation lengths above this are cut to it.
    pub max_output_tokens: Option<u32>,
    /// How far a timestamp may step back (kept in file order), s; 0: not at all.
    pub order: traces::Order,
    table: ConfigTable,
}

impl std::fmt::Debug for TraceFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceConfig {
    path: String,
    format: String,
    #[serde(default)]
    start_s: f64,
    end_s: Option<PositiveF64>,
    rate_qps: Option<PositiveF64>,
    time_scale: Option<PositiveF64>,
    max_input_tokens: Option<PositiveU32>,
    max_output_tokens: Option<PositiveU32>,
    reorder_tolerance_s: Option<f64>,
}

/// A workload ready to generate schedules.
#[derive(Debug)]
pub struct WorkloadSpec {
    /// Unique name within the suite.
    pub name: String,
    /// Where its requests come from.
    pub source: Source,
    /// The nominal workload this one perturbs, and where the name was written.
    pub perturbs: Option<(String, usize)>,
    /// What the perturbation is, in words.
    pub perturbation: Option<String>,
    /// The task its prompts and references come from, if any.
    pub task: Option<TaskSpec>,
}

impl WorkloadSpec {
    /// Builds the workload from its suite entry; `index` is its position in `[[workloads]]`.
    pub fn from_entry(
        entry: WorkloadEntry,
        source: &Arc<SourceFile>,
        index: usize,
        knowledge: &[Arc<crate::KnowledgeBase>],
    ) -> Result<Self, ConfigError> {
        let path = format!("workloads[{index}]");
        let at = entry.name.span().start;
        let name = entry.name.get_ref().trim().to_string();
        if name.is_empty() || name.contains(['/', '\\']) || name.chars().any(char::is_control) {
            return Err(source.error_at(
                at,
                &format!("{path}.name"),
                "must be a non-empty name without slashes or control characters",
            ));
        }
        let task = match entry.task {
            Some(t) => {
                if entry.input_tokens.is_some() {
                    return Err(source.error_at(
                        at,
                        &format!("{path}.input_tokens"),
                        "a task workload's prompts come from its task; remove input_tokens",
                    ));
                }
                let span = t.span();
                let table = ConfigTable::new(source.clone(), format!("{path}.task"), span, t.into_inner());
                Some(TaskSpec::from_table(table, knowledge)?)
            }
            None => None,
        };
        let src = match (entry.arrival, entry.trace) {
            (Some(arrival), None) => {
                let missing = |k: &str| {
                    source.error_at(
                        at,
                        &format!("{path}.{k}"),
                        format!("missing `{k}`: an `arrival` workload needs input_tokens and output_tokens"),
                    )
                };
                let (input_tokens, output_tokens) = match &task {
                    // The prompt's own length; the task's cap unless output_tokens is given.
                    Some(t) => (
                        LengthDist::Fixed { value: 1 },
                        entry.output_tokens.unwrap_or(LengthDist::Fixed {
                            value: t.max_new_tokens,
                        }),
                    ),
                    None => (
                        entry.input_tokens.ok_or_else(|| missing("input_tokens"))?,
                        entry.output_tokens.ok_or_else(|| missing("output_tokens"))?,
                    ),
                };
                let span = arrival.span();
                let table = ConfigTable::new(source.clone(), format!("{path}.arrival"), span, arrival.into_inner());
                Source::Synthetic {
                    arrival: arrivals::build(table)?,
                    input_tokens,
                    output_tokens,
                }
            }
            (None, Some(trace)) => {
                if entry.input_tokens.is_some() || entry.output_tokens.is_some() {
                    return Err(source.error_at(
                        at,
                        &format!("{path}.input_tokens"),
                        "a trace workload takes its lengths from the trace; remove input_tokens/output_tokens (cap them with max_input_tokens/max_output_tokens in `trace`)",
                    ));
                }
                let span = trace.span();
                let table = ConfigTable::new(source.clone(), format!("{path}.trace"), span, trace.into_inner());
                Source::Trace(trace_spec(table)?)
            }
            (Some(_), Some(_)) => {
                return Err(source.error_at(at, &path, "give either `arrival` or `trace`, not both"));
            }
            (None, None) => {
                return Err(source.error_at(
                    at,
                    &path,
                    "missing `arrival = { process = ... }` or `trace = { path = ..., format = ... }`",
                ));
            }
        };
        let perturbs = entry.perturbs.map(|p| (p.get_ref().trim().to_string(), p.span().start));
        let perturbation = match (&perturbs, entry.perturbation) {
            (None, Some(_)) => {
                return Err(source.error_at(
                    at,
                    &format!("{path}.perturbation"),
                    "`perturbation` describes a perturbed workload; add `perturbs = \"<nominal workload>\"` or remove it",
                ));
            }
            (Some(_), d) => Some(d.unwrap_or_else(|| name.clone())),
            (None, None) => None,
        };
        Ok(Self {
            name,
            source: src,
            perturbs,
            perturbation,
            task,
        })
    }

    /// Long-run mean arrival rate as configured (before compression), when known up front.
    pub fn mean_rate_qps(&self) -> Option<f64> {
        match &self.source {
            Source::Synthetic { arrival, .. } => Some(arrival.mean_rate_qps()),
            Source::Trace(t) => t.rate_qps,
        }
    }

    /// How the workload's arrivals are configured, for run.json (perturbations are recorded
    /// beside it, typed).
    pub fn describe(&self) -> serde_json::Value {
        let mut d = self.describe_source();
        if let (Some(t), Some(obj)) = (&self.task, d.as_object_mut()) {
            obj.insert("task".into(), t.describe());
            if obj.contains_key("input_tokens") {
                obj.insert("input_tokens".into(), json!("the task's prompts"));
            }
        }
        d
    }

    fn describe_source(&self) -> serde_json::Value {
        match &self.source {
            Source::Synthetic {
                arrival,
                input_tokens,
                output_tokens,
            } => json!({
                "kind": "arrival-process",
                "process": arrival.describe(),
                "mean_rate_qps": arrival.mean_rate_qps(),
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
            }),
            Source::Trace(t) => json!({
                "kind": "trace",
                "path": t.path.display().to_string(),
                "format": t.format.name,
                "start_s": t.start_s,
                "end_s": t.end_s,
                "rate_qps": t.rate_qps,
                "time_scale": t.time_scale,
                "max_input_tokens": t.max_input_tokens,
                "max_output_tokens": t.max_output_tokens,
                "reorder_tolerance_s": t.order.tolerance_s,
            }),
        }
    }

    /// Generates this workload's schedule: same `seed` ⇒ same schedule, bit for bit.
    ///
    /// Gaps longer than `idle_gap_cap` are shortened to it (time compression); the time
    /// removed is kept on each arrival so energy accounting can add the idle cost back.
    pub fn schedule(&self, seed: u64, limit: Limit, idle_gap_cap: Option<Duration>) -> Result<Schedule, ConfigError> {
        let mut shape_rng = seeded(seed, &["requests", &self.name]);
        let asked = self.task.as_ref().map(|t| (t, t.order(seed)));
        let (process, arrivals) = match &self.source {
            Source::Synthetic {
                arrival,
                input_tokens,
                output_tokens,
            } => {
                let mut arrival_rng = seeded(seed, &["arrivals", &self.name]);
                let arrivals = arrival
                    .offsets(&mut arrival_rng, limit)
                    .into_iter()
                    .enumerate()
                    .map(|(i, at)| {
                        let (prompt, input, task) = match &asked {
                            Some((spec, items)) => {
                                let item = &items[i % items.len()];
                                let p = spec.prompt(item, seed);
                                let len = p.len() as u32;
                                (p, len, Some(spec.reference(item)))
                            }
                            None => {
                                let input = input_tokens.sample(&mut shape_rng);
                                (crate::prompts::synthesize(&mut shape_rng, input as usize), input, None)
                            }
                        };
                        let output = output_tokens.sample(&mut shape_rng);
                        Arrival {
                            at,
                            skipped: Duration::ZERO,
                            request: Request {
                                id: i as u64,
                                prompt,
                                max_new_tokens: output,
                                target_input_tokens: input,
                                source_failed: false,
                                task,
                            },
                        }
                    })
                    .collect();
                (arrival.describe(), arrivals)
            }
            Source::Trace(t) => {
                let mut thin_rng = seeded(seed, &["thinning", &self.name]);
                let (mut arrivals, reordered) = t.arrivals(limit, &mut thin_rng, &mut shape_rng)?;
                if let Some((spec, items)) = &asked {
                    // The trace times the requests; the task asks them.
                    for (i, a) in arrivals.iter_mut().enumerate() {
                        let item = &items[i % items.len()];
                        a.request.prompt = spec.prompt(item, seed);
                        a.request.target_input_tokens = a.request.prompt.len() as u32;
                        a.request.task = Some(spec.reference(item));
                    }
                }
                let process = format!("trace({}, {})", t.format.name, t.path.display());
                let mut s = Schedule::new(self.name.clone(), process, arrivals, idle_gap_cap);
                s.reordered_rows = reordered;
                return Ok(s);
            }
        };
        Ok(Schedule::new(self.name.clone(), process, arrivals, idle_gap_cap))
    }
}

fn trace_spec(table: ConfigTable) -> Result<TraceSpec, ConfigError> {
    let c: TraceConfig = table.decode()?;
    let format = traces::format(&c.format).map_err(|m| table.error("format", m))?;
    if !(c.start_s.is_finite() && c.start_s >= 0.0) {
        return Err(table.error(
            "start_s",
            format!(
                "must be seconds >= 0 after the trace's first request, got {}",
                c.start_s
            ),
        ));
    }
    if let Some(end) = c.end_s
        && end.get() <= c.start_s
    {
        return Err(table.error(
            "end_s",
            format!("must be after start_s ({}), got {}", c.start_s, end.get()),
        ));
    }
    let tolerance_s = c.reorder_tolerance_s.unwrap_or(0.0);
    if !(tolerance_s.is_finite() && (0.0..=60.0).contains(&tolerance_s)) {
        return Err(table.error(
            "reorder_tolerance_s",
            format!("must be seconds from 0 to 60 that a timestamp may step back, got {tolerance_s}"),
        ));
    }
    // Relative paths are relative to the suite file.
    let path = table.source().resolve(&c.path);
    if !path.is_file() {
        return Err(table.error("path", format!("no trace file at {}", path.display())));
    }
    Ok(TraceSpec {
        path,
        format,
        start_s: c.start_s,
        end_s: c.end_s.map(|e| e.get()),
        rate_qps: c.rate_qps.map(|r| r.get()),
        time_scale: c.time_scale.map(|t| t.get()).unwrap_or(1.0),
        max_input_tokens: c.max_input_tokens.map(|m| m.get()),
        max_output_tokens: c.max_output_tokens.map(|m| m.get()),
        order: traces::Order { tolerance_s },
        table,
    })
}

/// Bytes of one Mooncake prefix block (one byte = one token of the byte tokenizer).
const BLOCK_TOKENS: usize = 512;

impl TraceSpec {
    fn label(&self) -> String {
        self.path.display().to_string()
    }

    /// Pass over the window: (rows, span s on the trace clock).
    fn window_stats(&self) -> Result<(u64, f64, f64), ConfigError> {
        let label = self.label();
        let (mut first, mut last, mut n, mut last_rel) = (None, 0.0, 0u64, 0.0f64);
        for row in traces::open(self.format, &self.path, &label, self.order)? {
            let row = row?;
            let t0 = *first.get_or_insert(row.t_s);
            let rel = row.t_s - t0;
            last_rel = rel;
            if rel < self.start_s || self.end_s.is_some_and(|e| rel >= e) {
                continue;
            }
            n += 1;
            last = rel;
        }
        Ok((n, last, last_rel))
    }

    fn arrivals(
        &self,
        limit: Limit,
        thin_rng: &mut crate::rng::SeededRng,
        shape_rng: &mut crate::rng::SeededRng,
    ) -> Result<(Vec<Arrival>, u64), ConfigError> {
        let (n, last_in_window, trace_span) = self.window_stats()?;
        if n == 0 {
            return Err(self.table.error(
                "start_s",
                format!(
                    "the window [{}, {}) s holds no requests; the trace spans 0–{trace_span:.1} s",
                    self.start_s,
                    self.end_s.map(|e| e.to_string()).unwrap_or_else(|| "end".into())
                ),
            ));
        }
        let keep = match self.rate_qps {
            None => 1.0,
            Some(target) => {
                let span = (self.end_s.unwrap_or(last_in_window).min(trace_span) - self.start_s).max(f64::MIN_POSITIVE);
                let replay_rate = n as f64 / (span * self.time_scale);
                if target > replay_rate * (1.0 + 1e-9) {
                    return Err(self.table.error(
                        "rate_qps",
                        format!("cannot thin up: the window replays at {replay_rate:.4} req/s; lower rate_qps or speed the trace up with time_scale < 1"),
                    ));
                }
                target / replay_rate
            }
        };
        let label = self.label();
        let mut out = Vec::new();
        let mut first = None;
        let mut reordered = 0u64;
        for row in traces::open(self.format, &self.path, &label, self.order)? {
            let row = row?;
            let t0 = *first.get_or_insert(row.t_s);
            let rel = row.t_s - t0;
            if rel < self.start_s || self.end_s.is_some_and(|e| rel >= e) {
                continue;
            }
            if keep < 1.0 && open01(thin_rng) >= keep {
                continue;
            }
            let at = Duration::from_secs_f64((rel - self.start_s) * self.time_scale);
            match limit {
                Limit::Count(c) if out.len() as u64 >= c => break,
                Limit::Duration(d) if at >= d => break,
                _ => {}
            }
            let input = row.input_tokens.min(self.max_input_tokens.unwrap_or(u32::MAX)).max(1);
            let output = row.output_tokens.min(self.max_output_tokens.unwrap_or(u32::MAX));
            let prompt = if row.blocks.is_empty() {
                crate::prompts::synthesize(shape_rng, input as usize)
            } else {
                prefix_prompt(&row.blocks, input as usize, shape_rng)
            };
            out.push(Arrival {
                at,
                skipped: Duration::ZERO,
                request: Request {
                    id: out.len() as u64,
                    prompt,
                    // A request that failed in the source still arrived and was prefilled:
                    // replay it with one token and keep the flag.
                    max_new_tokens: output.max(1),
                    target_input_tokens: input,
                    source_failed: row.source_failed,
                    task: None,
                },
            });
            reordered += u64::from(row.reordered);
        }
        Ok((out, reordered))
    }
}

/// A prompt whose 512-byte blocks are determined by their ids, so requests sharing block ids
/// share prompt prefixes byte for byte; cut or extended to `len` bytes.
fn prefix_prompt(blocks: &[u64], len: usize, rng: &mut crate::rng::SeededRng) -> String {
    let mut out = String::with_capacity(len);
    for &b in blocks {
        if out.len() >= len {
            break;
        }
        let mut block_rng = seeded(b, &["prefix-block"]);
        out.push_str(&crate::prompts::synthesize(&mut block_rng, BLOCK_TOKENS));
    }
    if out.len() < len {
        out.push_str(&crate::prompts::synthesize(rng, len - out.len()));
    }
    out.truncate(len);
    out
}
