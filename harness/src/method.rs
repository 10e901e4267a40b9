//! The method socket: what an inference method must provide to be benchmarked.
//!
//! A method is registered by a [`MethodSpec`] (one registry line in oae-methods) that builds
//! [`Method`] instances from a suite's `[[methods]]` table. The harness drives each
//! instance on its own worker thread: `prepare()` once (timed and metered as setup), then
//! `serve()` per request. Methods stream tokens to a [`TokenSink`] so the harness stamps
//! TTFT and every inter-token latency itself, and mark phases and counters on a [`Probe`]
//! so every method reports overhead in one schema.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use oae_core::config::ConfigTable;
use oae_workloads::Request;

use crate::MethodError;

/// Where a method runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The host CPU.
    Cpu,
    /// An NVIDIA GPU by ordinal (needs a build with the `cuda` feature).
    Cuda(usize),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device `{s}`; use `cpu`, `cuda` or `cuda:N`")),
        }
    }
}

/// What a method's builder gets besides its config table.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The device to run on.
    pub device: DeviceSpec,
    /// The suite seed (methods derive their own streams from it).
    pub seed: u64,
    /// The method's label in the suite.
    pub label: String,
    /// Which instance of the method this is (0-based), when `instances > 1`.
    pub instance: u32,
    /// The suite's `[[knowledge]]` bases (a knowledge method names one with `knowledge = …`).
    pub knowledge: oae_workloads::KnowledgeBases,
}

/// One configuration key of a method, for `oae list methods`.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    /// Key name.
    pub name: &'static str,
    /// Default value as written in TOML.
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// A registry entry for a method: its id, documentation and builder.
pub trait MethodSpec: Sync {
    /// The `id = "..."` used in suites.
    fn id(&self) -> &'static str;
    /// One line for `oae list methods`.
    fn about(&self) -> &'static str;
    /// The configuration keys this method accepts.
    fn keys(&self) -> &'static [ConfigKey];
    /// Builds an instance from the method's config table (cheap; heavy work goes in `prepare`).
    fn build(&self, config: &ConfigTable, ctx: &BuildContext) -> Result<Box<dyn Method>, MethodError>;
    /// The method's declared adoption cost: the text of the `manifest.toml` in its folder
    /// (schema in oae-scorecards), or `None` when it declares none.
    fn manifest(&self) -> Option<&'static str> {
        None
    }
    /// The declared adoption cost of one configuration of the method, when it differs from
    /// [`manifest`](Self::manifest) (a pipeline whose options add components and
    /// engineer-weeks); `None` to use the shipped manifest as it is.
    fn manifest_for(&self, _config: &ConfigTable) -> Option<String> {
        None
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `max_new_tokens` reached.
    Length,
    /// The model produced its end-of-sequence token.
    Eos,
    /// The harness asked the method to stop (timeout or run abort).
    Stopped,
}

/// What the harness answers to each token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a method must stop generating when told to"]
pub enum Flow {
    /// Keep generating.
    Continue,
    /// Stop now: the request timed out or the run is being aborted.
    Stop,
}

impl StopReason {
    /// The name written to records.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Length => "length",
            StopReason::Eos => "eos",
            StopReason::Stopped => "stopped",
        }
    }
}

/// What a method reports when a request completes.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Prompt tokens under the method's tokenizer (`None`: unknown, e.g. a server that
    /// reported no usage).
    pub input_tokens: Option<u32>,
    /// Tokens generated, when the units the method streamed to its [`TokenSink`] are not
    /// single tokens (an HTTP server's chunks); `None`: one token per sink call.
    pub output_tokens: Option<u32>,
    /// Why generation stopped.
    pub stop: StopReason,
}

impl Completion {
    /// A completion whose every sink call was one token.
    pub fn new(input_tokens: u32, stop: StopReason) -> Self {
        Self {
            input_tokens: Some(input_tokens),
            output_tokens: None,
            stop,
        }
    }
}

/// Receives generated tokens as they are produced.
///
/// Call [`Method::sync`]-equivalent device synchronisation before emitting, so the
/// harness's timestamp is when the token exists, not when its kernel was queued. When the
/// answer is [`Flow::Stop`], return promptly (with `StopReason::Stopped`): the request has
/// passed its deadline or the run is being aborted.
pub trait TokenSink {
    /// One generated token.
    fn token(&mut self, id: u32) -> Flow;

    /// Whether to go on, asked without a token: a method waiting on something outside it
    /// (a server's first chunk) polls this so a deadline or an abort ends the wait.
    fn poll(&mut self) -> Flow {
        Flow::Continue
    }
}

/// Phase timings and counters a method marks while serving one request.
///
/// Phases are exclusive: starting one closes the previous. Time spent in no phase is
/// simply unattributed. Names are shared across methods (`prefill`, `decode`, `draft`,
/// `verify`, `route`, `retrieve`, ...), so reports can compare them.
#[derive(Debug, Default)]
pub struct Probe {
    phases: Vec<(Cow<'static, str>, Duration)>,
    open: Option<(Cow<'static, str>, Instant)>,
    counters: Vec<(Cow<'static, str>, f64)>,
}

impl Probe {
    /// Starts `name`, closing any open phase.
    pub fn phase(&mut self, name: impl Into<Cow<'static, str>>) {
        let now = Instant::now();
        self.close(now);
        self.open = Some((name.into(), now));
    }

    /// Closes the open phase, if any.
    pub fn end(&mut self) {
        self.close(Instant::now());
    }

    fn close(&mut self, now: Instant) {
        if let Some((name, start)) = self.open.take() {
            let d = now.saturating_duration_since(start);
            match self.phases.iter_mut().find(|(n, _)| *n == name) {
                Some((_, total)) => *total += d,
                None => self.phases.push((name, d)),
            }
        }
    }

    /// Adds `delta` to counter `name`.
    pub fn add(&mut self, name: impl Into<Cow<'static, str>>, delta: f64) {
        let name = name.into();
        match self.counters.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v += delta,
            None => self.counters.push((name, delta)),
        }
    }

    /// Sets counter `name` to `value`.
    pub fn set(&mut self, name: impl Into<Cow<'static, str>>, value: f64) {
        let name = name.into();
        match self.counters.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.counters.push((name, value)),
        }
    }

    /// Closes any open phase and returns (phases in ms, counters).
    pub fn finish(mut self) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
        self.end();
        let phases = self
            .phases
            .into_iter()
            .map(|(n, d)| (n.into_owned(), d.as_secs_f64() * 1e3))
            .collect();
        let counters = self.counters.into_iter().map(|(n, v)| (n.into_owned(), v)).collect();
        (phases, counters)
    }
}

/// An inference method under test. One instance serves one request at a time.
///
/// Each implementation documents its **Overhead model**: what its setup and per-request work
/// cost, and which phases and counters expose them.
pub trait Method: Send {
    /// One-time setup (load or generate weights, build indexes, preload caches). The harness
    /// times and meters it as the method's setup cost, separate from serving.
    fn prepare(&mut self) -> Result<(), MethodError>;

    /// Serves one request, streaming tokens to `sink` and marking phases on `probe`.
    fn serve(
        &mut self,
        request: &Request,
        sink: &mut dyn TokenSink,
        probe: &mut Probe,
    ) -> Result<Completion, MethodError>;

    /// Clears per-request state after a failure (a panic or error mid-request).
    fn reset(&mut self) {}

    /// The run directory's folder for this method's own files (`methods/<label>/`: a
    /// launched server's log), told once before `prepare()`; the method creates it if it
    /// writes there.
    fn files_dir(&mut self, _dir: &std::path::Path) {}

    /// Seconds of `prepare()` spent making the model ready to serve (load, conversion,
    /// warm-up), when the method has a model; run.json records it beside `setup_s`.
    fn cold_start_s(&self) -> Option<f64> {
        None
    }

    /// Blocks until device work has finished; called before closing a timed span.
    fn sync(&mut self) -> Result<(), MethodError> {
        Ok(())
    }

    /// The text of generated token ids, for quality scoring and the record's
    /// `output_text`; called after a request's timed span. `None` when the method has no
    /// tokenizer to decode with.
    fn detokenize(&self, _ids: &[u32]) -> Option<String> {
        None
    }

    /// Facts for run.json (model shape, parameter count, sampling, ...).
    fn facts(&self) -> BTreeMap<String, serde_json::Value> {
        BTreeMap::new()
    }

    /// Bytes of weights resident while serving (all models the method keeps loaded, and
    /// any cache or index it keeps resident across requests), for the scorecards' memory
    /// term; `None` when unknown.
    fn weight_bytes(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_accumulates_phases_and_counters() {
        let mut p = Probe::default();
        p.phase("prefill");
        p.phase("decode");
        p.phase("prefill");
        p.add("drafted", 2.0);
        p.add("drafted", 3.0);
        p.set("kv_bytes_peak", 7.0);
        let (phases, counters) = p.finish();
        assert_eq!(phases.len(), 2);
        assert_eq!(counters["drafted"], 5.0);
        assert_eq!(counters["kv_bytes_peak"], 7.0);
    }

    #[test]
    fn device_parses() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:2".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(2));
        assert!("tpu".parse::<DeviceSpec>().is_err());
    }
}
