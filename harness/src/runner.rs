//! The open-loop runner: one dispatcher, a FIFO queue, one worker per method instance.
//!
//! The dispatcher releases each arrival at its intended instant (sleep, then spin the last
//! stretch) regardless of how busy the workers are, so a slow method accumulates queue
//! wait that shows up in TTFT and E2E — latencies are measured from the intended arrival,
//! never from when a worker got around to it. Workers serve FIFO. Completed records flow
//! to the calling thread, which appends each to requests.jsonl at once (see
//! [`crate::rundir`]) so a crash keeps everything finished so far.
//!
//! **Overhead model:** per request the harness takes four `Instant::now()` stamps plus one
//! per token, builds a [`RequestRecord`], records it into five HDR histograms and appends
//! one JSON line (one `write` syscall); `harness/benches/bookkeeping.rs` measures this. The
//! dispatcher busy-waits at most [`crate::clock::SPIN_MARGIN`] per release.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use oae_quality::reasoning::Reasoning;
use oae_workloads::{Arrival, Schedule};

use crate::clock::{secs_since, wait_until};
use crate::{Flow, HarnessError, Method, MethodError, Outcome, Probe, RequestRecord, TokenSink};

/// What one (method, workload, trial) replay needs.
pub struct CellPlan<'a> {
    /// Method label.
    pub method: &'a str,
    /// The schedule to replay.
    pub schedule: &'a Schedule,
    /// Arrivals intended before this are recorded but marked warm-up.
    pub warmup: Duration,
    /// Arrivals intended within this of the schedule's last arrival are recorded but marked
    /// cool-down.
    pub cooldown: Duration,
    /// Trial number.
    pub trial: u32,
    /// Timeout and queue bound.
    pub controls: LoadControls,
    /// Called by a worker as a request starts and as it finishes (the session uses it to
    /// ask the energy sampler for a reading at request boundaries; it must not block).
    pub boundary: Option<&'a (dyn Fn() + Sync)>,
    /// Characters of each answer kept in its record (0: none; scoring always sees all).
    pub keep_output_chars: usize,
}

/// Default of `[run] keep_output_chars`.
pub const DEFAULT_KEEP_OUTPUT_CHARS: usize = 2000;

/// The result of one replay.
pub struct CellRun {
    /// Every record, in completion order.
    pub records: Vec<RequestRecord>,
    /// The replay's start (its intended time zero).
    pub t0: Instant,
    /// When the last record completed.
    pub end: Instant,
    /// Whether the replay was stopped before every arrival was served.
    pub aborted: bool,
    /// The method instances, handed back for the next workload.
    pub instances: Vec<Box<dyn Method>>,
    /// What was done to the dispatcher thread's priority.
    pub dispatcher_priority: String,
    /// Why the replay stopped early, when something failed (the record sink, a worker).
    /// `records` still holds everything collected, so the caller can keep it.
    pub error: Option<String>,
}

/// Timestamps of one served request, as stamped by the worker.
#[derive(Debug, Clone)]
pub struct Stamps {
    /// Released into the queue.
    pub dispatched: Instant,
    /// Taken by a worker (`None` if never served).
    pub started: Option<Instant>,
    /// Each token's arrival at the sink.
    pub tokens: Vec<Instant>,
    /// Each token's id, in order.
    pub ids: Vec<u32>,
    /// Serving ended.
    pub finished: Option<Instant>,
}

/// What a worker learned about a request besides its timestamps.
#[derive(Debug, Clone)]
pub struct Served {
    /// Which instance served it.
    pub instance: Option<u32>,
    /// How it ended.
    pub outcome: Outcome,
    /// The error, when not ok.
    pub error: Option<String>,
    /// Prompt tokens under the method's tokenizer.
    pub input_tokens: Option<u32>,
    /// Tokens generated, when the method counted them apart from its sink calls (an HTTP
    /// stream's chunks are not tokens); `None`: one per sink call.
    pub output_tokens: Option<u32>,
    /// Why generation stopped.
    pub stop_reason: Option<String>,
    /// Phase times, ms.
    pub phases_ms: BTreeMap<String, f64>,
    /// Counters.
    pub counters: BTreeMap<String, f64>,
    /// The generated text, detokenized after the request's timed span.
    pub output_text: Option<String>,
    /// (reasoning, answer) output tokens, for a task that asks a reasoning mode or an answer
    /// with thinking tags.
    pub reasoning_split: Option<(u32, u32)>,
}

/// How a task request's answer splits into reasoning and answer (`oae_quality::reasoning::mode`).
fn reasoning_mode(arrival: &Arrival, text: &str) -> Option<Reasoning> {
    oae_quality::reasoning::mode(arrival.request.task.as_ref()?.reasoning, text)
}

/// The answer's scores by each of its task's scorers (empty without a task or an answer).
fn score(arrival: &Arrival, text: Option<&str>) -> BTreeMap<String, f64> {
    let (Some(task), Some(text)) = (&arrival.request.task, text) else {
        return BTreeMap::new();
    };
    // With a reasoning mode the scorers judge the final answer, not the working.
    let text = oae_quality::reasoning::scored_part(task.reasoning, text);
    task.scorers
        .iter()
        .filter_map(|name| oae_quality::scorer(name).map(|s| (name.clone(), s.score(text, &task.item))))
        .collect()
}

/// The first `keep` characters of `text`, and whether it was cut.
fn kept(text: Option<&str>, keep: usize) -> (Option<String>, bool) {
    match text {
        None => (None, false),
        Some(_) if keep == 0 => (None, false),
        Some(t) => match t.char_indices().nth(keep) {
            Some((cut, _)) => (Some(t[..cut].to_string()), true),
            None => (Some(t.to_string()), false),
        },
    }
}

/// Builds the record of one request from its timestamps (all relative to `t0`).
pub fn build_record(
    plan: &CellPlan<'_>,
    arrival: &Arrival,
    t0: Instant,
    stamps: &Stamps,
    served: Served,
) -> RequestRecord {
    let s = |t: Instant| secs_since(t0, t);
    let ms = |a: Instant, b: Instant| secs_since(a, b) * 1e3;
    let intended = t0 + arrival.at;
    let first = stamps.tokens.first().copied();
    // Tokens: the method's own count where its sink calls were not tokens (HTTP chunks).
    let n = served.output_tokens.map_or(stamps.tokens.len(), |t| t as usize);
    // Scored on the full answer, after the request's timed span (µs per answer for the
    // built-in scorers).
    let quality = score(arrival, served.output_text.as_deref());
    let (output_text, output_truncated) = kept(served.output_text.as_deref(), plan.keep_output_chars);
    RequestRecord {
        method: plan.method.to_string(),
        workload: plan.schedule.workload.clone(),
        request_id: arrival.request.id,
        trial: plan.trial,
        instance: served.instance,
        warmup: arrival.at < plan.warmup,
        cooldown: !plan.cooldown.is_zero()
            && plan
                .schedule
                .arrivals
                .last()
                .is_some_and(|last| arrival.at + plan.cooldown > last.at),
        intended_s: arrival.at.as_secs_f64(),
        dispatched_s: s(stamps.dispatched),
        started_s: stamps.started.map(s),
        first_token_s: first.map(s),
        finished_s: stamps.finished.map(s),
        ttft_ms: first.map(|f| ms(intended, f)),
        e2e_ms: stamps.finished.map(|f| ms(intended, f)),
        queue_ms: stamps.started.map(|st| ms(stamps.dispatched, st)),
        dispatch_lag_ms: ms(intended, stamps.dispatched),
        service_ms: stamps.started.zip(stamps.finished).map(|(a, b)| ms(a, b)),
        tpot_ms: match (first, stamps.finished) {
            (Some(f), Some(end)) if n > 1 => Some(ms(f, end) / (n - 1) as f64),
            _ => None,
        },
        itl_ms: stamps.tokens.windows(2).map(|w| ms(w[0], w[1])).collect(),
        input_tokens: served.input_tokens,
        output_tokens: n as u32,
        max_new_tokens: arrival.request.max_new_tokens,
        stop_reason: served.stop_reason,
        idle_skipped_s: arrival.skipped.as_secs_f64(),
        idle_before_s: None,
        source_failed: arrival.request.source_failed,
        outcome: served.outcome,
        error: served.error,
        phases_ms: served.phases_ms,
        counters: served.counters,
        energy_dyn_j: None,
        energy_active_j: None,
        energy_amortized_j: None,
        energy_prefill_j: None,
        energy_decode_j: None,
        co2e_g: None,
        energy_source: None,
        energy_estimated: false,
        energy_by_domain: Default::default(),
        energy_process_cpu: None,
        task_id: arrival.request.task.as_ref().map(|t| t.item.id.clone()),
        output_text,
        output_truncated,
        quality,
        reasoning_tokens: served.reasoning_split.map(|s| s.0),
        answer_tokens: served.reasoning_split.map(|s| s.1),
    }
}

/// Latency histograms of one cell, microseconds, 3 significant digits, 1 µs to 1 hour.
pub struct Histograms {
    /// (metric name, histogram), e.g. `ttft_us`.
    pub by_metric: Vec<(&'static str, Histogram<u64>)>,
}

impl Default for Histograms {
    fn default() -> Self {
        let h = || Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid");
        Self {
            by_metric: vec![
                ("ttft_us", h()),
                ("e2e_us", h()),
                ("itl_us", h()),
                ("queue_us", h()),
                ("dispatch_lag_us", h()),
            ],
        }
    }
}

impl Histograms {
    /// Records one measured (not warm-up, not cool-down) request (latencies of ok requests;
    /// lag of every request).
    pub fn record(&mut self, r: &RequestRecord) {
        if r.warmup || r.cooldown {
            return;
        }
        let us = |ms: f64| (ms * 1e3).round().max(1.0) as u64;
        let ok = r.outcome == Outcome::Ok;
        for (name, h) in &mut self.by_metric {
            match *name {
                "ttft_us" if ok => r.ttft_ms.into_iter().for_each(|v| h.saturating_record(us(v))),
                "e2e_us" if ok => r.e2e_ms.into_iter().for_each(|v| h.saturating_record(us(v))),
                "itl_us" if ok => r.itl_ms.iter().for_each(|&v| h.saturating_record(us(v))),
                "queue_us" => r.queue_ms.into_iter().for_each(|v| h.saturating_record(us(v))),
                "dispatch_lag_us" => h.saturating_record(us(r.dispatch_lag_ms)),
                _ => {}
            }
        }
    }
}

/// Limits applied to one replay.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadControls {
    /// Deadline per request, from its intended arrival. Expired while queued: recorded as
    /// `timeout` without being served. Expired while in service: the sink answers
    /// [`Flow::Stop`] and the request is recorded as `timeout`.
    pub timeout: Option<Duration>,
    /// Most requests allowed to wait (beyond idle workers); more are `rejected` on arrival.
    pub queue_bound: Option<usize>,
}

struct QueueState {
    jobs: VecDeque<(usize, Instant)>,
    closed: bool,
    idle_workers: usize,
}

/// A FIFO of released requests shared by the workers.
struct Queue {
    inner: Mutex<QueueState>,
    ready: Condvar,
}

impl Queue {
    fn new() -> Self {
        Self {
            inner: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                closed: false,
                idle_workers: 0,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enqueues `job` unless `bound` requests are already waiting beyond the idle workers.
    fn push(&self, job: (usize, Instant), bound: Option<usize>) -> bool {
        let mut g = self.lock();
        if let Some(b) = bound
            && g.jobs.len() >= b + g.idle_workers
        {
            return false;
        }
        g.jobs.push_back(job);
        self.ready.notify_one();
        true
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Next job, or `None` once closed and drained.
    fn pop(&self) -> Option<(usize, Instant)> {
        let mut g = self.lock();
        loop {
            if let Some(j) = g.jobs.pop_front() {
                return Some(j);
            }
            if g.closed {
                return None;
            }
            g.idle_workers += 1;
            g = self.ready.wait(g).unwrap_or_else(|p| p.into_inner());
            g.idle_workers -= 1;
        }
    }
}

/// Stamps each token and tells the method to stop at the deadline or on abort.
struct TimingSink<'a> {
    tokens: &'a mut Vec<Instant>,
    ids: &'a mut Vec<u32>,
    deadline: Option<Instant>,
    stop: &'a AtomicBool,
}

impl TimingSink<'_> {
    fn flow(&self, now: Instant) -> Flow {
        if self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| now >= d) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

impl TokenSink for TimingSink<'_> {
    fn token(&mut self, id: u32) -> Flow {
        let now = Instant::now();
        self.tokens.push(now);
        self.ids.push(id);
        self.flow(now)
    }

    fn poll(&mut self) -> Flow {
        self.flow(Instant::now())
    }
}

fn unserved(outcome: Outcome, error: String) -> Served {
    Served {
        instance: None,
        outcome,
        error: Some(error),
        input_tokens: None,
        output_tokens: None,
        stop_reason: None,
        phases_ms: BTreeMap::new(),
        counters: BTreeMap::new(),
        output_text: None,
        reasoning_split: None,
    }
}

/// Lead time between starting the threads and the replay's time zero.
const LEAD: Duration = Duration::from_millis(50);

/// The dispatcher thread's body: releases each arrival into the queue at its intended time
/// (a full queue rejects it, recorded); returns what was done to its scheduling priority.
fn dispatch(
    plan: &CellPlan<'_>,
    queue: &Queue,
    t0: Instant,
    stop: &AtomicBool,
    rejected: mpsc::Sender<RequestRecord>,
) -> String {
    let priority = crate::clock::raise_thread_priority();
    let controls = plan.controls;
    for (i, a) in plan.schedule.arrivals.iter().enumerate() {
        if !wait_until(t0 + a.at, stop) {
            break;
        }
        let now = Instant::now();
        if !queue.push((i, now), controls.queue_bound) {
            let bound = controls.queue_bound.unwrap_or_default();
            let served = unserved(
                Outcome::Rejected,
                format!("rejected: {bound} request(s) already waiting (queue_bound)"),
            );
            let stamps = Stamps {
                dispatched: now,
                started: None,
                tokens: Vec::new(),
                ids: Vec::new(),
                finished: None,
            };
            let _ = rejected.send(build_record(plan, a, t0, &stamps, served));
        }
    }
    queue.close();
    priority
}

/// A worker thread's body: serves queued requests FIFO until the queue closes (a request
/// whose deadline passed while queued times out; after a stop, the rest are cancelled), and
/// hands its method instance back.
fn work(
    plan: &CellPlan<'_>,
    queue: &Queue,
    t0: Instant,
    stop: &AtomicBool,
    (w, mut method): (u32, Box<dyn Method>),
    tx: mpsc::Sender<RequestRecord>,
) -> Box<dyn Method> {
    let controls = plan.controls;
    while let Some((i, dispatched)) = queue.pop() {
        let arrival = &plan.schedule.arrivals[i];
        let mut stamps = Stamps {
            dispatched,
            started: None,
            tokens: Vec::new(),
            ids: Vec::new(),
            finished: None,
        };
        let deadline = controls.timeout.map(|t| t0 + arrival.at + t);
        let served = if stop.load(Ordering::Relaxed) {
            unserved(Outcome::Cancelled, "run aborted before this request was served".into())
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            let t = controls.timeout.unwrap_or_default().as_secs_f64();
            unserved(
                Outcome::Timeout,
                format!("timed out after {t} s (timeout_s) while queued"),
            )
        } else {
            serve_one(method.as_mut(), w, arrival, &mut stamps, deadline, stop, plan.boundary)
        };
        if tx.send(build_record(plan, arrival, t0, &stamps, served)).is_err() {
            break;
        }
    }
    method
}

/// Replays `plan.schedule` against `instances`, calling `on_record` for each completed
/// request on the calling thread. Setting `stop` ends the replay early: requests not yet
/// released are not sent, released ones still queued are recorded as `cancelled`. A failing
/// `on_record` or a worker dying stops the replay the same way and is reported in
/// [`CellRun::error`] — never by discarding the records already collected.
pub fn run_cell(
    plan: &CellPlan<'_>,
    instances: Vec<Box<dyn Method>>,
    stop: &AtomicBool,
    on_record: &mut dyn FnMut(&RequestRecord) -> Result<(), HarnessError>,
) -> Result<CellRun, HarnessError> {
    if instances.is_empty() {
        return Err(HarnessError::Invalid(format!(
            "method `{}` has no instances to run",
            plan.method
        )));
    }
    let arrivals = &plan.schedule.arrivals;
    let queue = Queue::new();
    let (tx, rx) = mpsc::channel::<RequestRecord>();
    let t0 = Instant::now() + LEAD;
    let mut records = Vec::with_capacity(arrivals.len());
    let mut sink_error = None;

    let returned = std::thread::scope(|scope| {
        let queue = &queue;
        let rejected_tx = tx.clone();
        let dispatcher = scope.spawn(move || dispatch(plan, queue, t0, stop, rejected_tx));
        let workers: Vec<_> = instances
            .into_iter()
            .enumerate()
            .map(|(w, method)| {
                let tx = tx.clone();
                scope.spawn(move || work(plan, queue, t0, stop, (w as u32, method), tx))
            })
            .collect();
        drop(tx);
        for rec in rx {
            if sink_error.is_none()
                && let Err(e) = on_record(&rec)
            {
                stop.store(true, Ordering::Relaxed);
                sink_error = Some(e);
            }
            records.push(rec);
        }
        let priority = dispatcher.join().unwrap_or_else(|_| "dispatcher panicked".into());
        (workers.into_iter().map(|h| h.join()).collect::<Vec<_>>(), priority)
    });
    let (returned, dispatcher_priority) = returned;
    let end = Instant::now();
    let mut instances = Vec::new();
    let mut error = sink_error.map(|e| e.to_string());
    for r in returned {
        match r {
            Ok(m) => instances.push(m),
            Err(_) => {
                error.get_or_insert_with(|| format!("a worker of `{}` panicked outside a request", plan.method));
            }
        }
    }
    let aborted =
        error.is_some() || records.len() < arrivals.len() || records.iter().any(|r| r.outcome == Outcome::Cancelled);
    Ok(CellRun {
        records,
        t0,
        end,
        aborted,
        instances,
        dispatcher_priority,
        error,
    })
}

fn serve_one(
    method: &mut dyn Method,
    instance: u32,
    arrival: &Arrival,
    stamps: &mut Stamps,
    deadline: Option<Instant>,
    stop: &AtomicBool,
    boundary: Option<&(dyn Fn() + Sync)>,
) -> Served {
    let mut probe = Probe::default();
    stamps.started = Some(Instant::now());
    if let Some(b) = boundary {
        b();
    }
    let result = {
        let mut sink = TimingSink {
            tokens: &mut stamps.tokens,
            ids: &mut stamps.ids,
            deadline,
            stop,
        };
        catch_unwind(AssertUnwindSafe(|| {
            let r = method.serve(&arrival.request, &mut sink, &mut probe);
            method.sync().and(r)
        }))
    };
    stamps.finished = Some(Instant::now());
    if let Some(b) = boundary {
        b();
    }
    let (phases_ms, counters) = probe.finish();
    let mut served = Served {
        instance: Some(instance),
        outcome: Outcome::Ok,
        error: None,
        input_tokens: None,
        output_tokens: None,
        stop_reason: None,
        phases_ms,
        counters,
        output_text: None,
        reasoning_split: None,
    };
    // Detokenized outside the timed span (a text the method cannot give is left out).
    if !stamps.ids.is_empty() {
        served.output_text = catch_unwind(AssertUnwindSafe(|| method.detokenize(&stamps.ids)))
            .ok()
            .flatten();
    }
    if let Some(text) = &served.output_text
        && let Some(mode) = reasoning_mode(arrival, text)
    {
        let ids = &stamps.ids;
        served.reasoning_split = catch_unwind(AssertUnwindSafe(|| {
            oae_quality::reasoning::token_split(ids.len(), text, mode, |k| {
                method.detokenize(&ids[..k]).unwrap_or_default()
            })
        }))
        .ok();
    }
    match result {
        Ok(Ok(c)) => {
            served.input_tokens = c.input_tokens;
            served.output_tokens = c.output_tokens;
            served.stop_reason = Some(c.stop.as_str().to_string());
            let finished = stamps.finished.unwrap_or_else(Instant::now);
            if let Some(d) = deadline.filter(|&d| finished >= d) {
                served.outcome = Outcome::Timeout;
                served.error = Some(format!(
                    "exceeded timeout_s: finished {:.1} ms after the deadline",
                    secs_since(d, finished) * 1e3
                ));
            } else if c.stop == crate::StopReason::Stopped {
                served.outcome = Outcome::Cancelled;
                served.error = Some("stopped mid-generation because the run was aborted".into());
            }
        }
        Ok(Err(e)) => {
            served.outcome = match e {
                MethodError::Timeout(_) => Outcome::Timeout,
                MethodError::Rejected(_) => Outcome::Rejected,
                _ => Outcome::Error,
            };
            served.error = Some(e.to_string());
            method.reset();
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            served.outcome = Outcome::Error;
            served.error = Some(format!("method panicked: {msg}"));
            method.reset();
        }
    }
    served
}
