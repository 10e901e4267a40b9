//! `mock` — the harness's test double: no model, fixed service time, scripted failures.
//!
//! Serving a request sleeps `prefill_ms`, emits the first token, then emits one token every
//! `decode_ms_per_token` until `tokens` (default: the request's `max_new_tokens`). Failures
//! are scripted by request id so tests and CI can check that failed requests are recorded
//! and counted: `fail_every = N` fails ids N−1, 2N−1, ...; `fail_ids` and `panic_ids` list
//! ids to fail with an error or a panic; `fail_setup` makes `prepare()` fail.
//!
//! `think = N` makes a task answer a chain of thought: N tokens of working (`step `), one
//! `Answer: ` token, then the answer — so reasoning and answer tokens are known exactly.
//!
//! `cold_start_ms` scripts a first-call cost (what a GPU's context creation and kernel JIT
//! are to a real model): the first request served pays it — unless `warm_up = true`, when
//! `prepare()` pays it instead, as the model-backed methods' warm-up does.
//!
//! With `spin = true` the service time is spent busy-waiting on the worker's core instead of
//! sleeping: a compute-bound method's load on the machine, without a model (used to measure
//! the dispatcher's accuracy while a worker is busy, `suites/dispatch-rates.toml`).
//!
//! For task workloads, `answer = "reference"` answers each request with its first reference
//! answer (`"wrong"`: with a text no scorer accepts), and `wrong_every = N` answers ids
//! N−1, 2N−1, ... wrongly — a known quality for the quality layer's tests.
//!
//! **Overhead model:** none beyond the configured sleeps (which overshoot by the OS timer
//! slack, typically < 0.1 ms); use it to measure the harness itself.

use std::time::Duration;

use serde::Deserialize;

use crate::{BuildContext, Completion, ConfigKey, Flow, Method, MethodError, MethodSpec, Probe, StopReason, TokenSink};
use oae_core::config::{ConfigTable, PositiveU32};
use oae_workloads::Request;

/// The registry entry.
pub struct Spec;
/// The registry entry (the methods crate lists it in its registry).
pub static SPEC: Spec = Spec;

/// Configuration of the mock method.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    /// Time before the first token, ms.
    pub prefill_ms: f64,
    /// Time per later token, ms.
    pub decode_ms_per_token: f64,
    /// Tokens per request (default: the request's max_new_tokens).
    pub tokens: Option<PositiveU32>,
    /// Fail every Nth request (ids N−1, 2N−1, ...); 0 = never.
    pub fail_every: u64,
    /// Request ids that fail with an error.
    pub fail_ids: Vec<u64>,
    /// Request ids that panic.
    pub panic_ids: Vec<u64>,
    /// Setup time, ms.
    pub setup_ms: f64,
    /// Make setup fail.
    pub fail_setup: bool,
    /// Busy-wait instead of sleeping (occupies a core like a compute-bound method).
    pub spin: bool,
    /// What the mock answers a task request: `none` (no text), `reference`, `wrong`.
    pub answer: MockAnswer,
    /// With `answer = "reference"`, answer ids N−1, 2N−1, ... wrongly (0 = never).
    pub wrong_every: u64,
    /// A one-time cost of the first call, ms.
    pub cold_start_ms: f64,
    /// Pay `cold_start_ms` in `prepare()` rather than in the first request.
    pub warm_up: bool,
    /// Tokens of reasoning before a task answer's `Answer: ` token.
    pub think: u32,
}

/// What the mock answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MockAnswer {
    /// No text (the record has none, and no quality).
    #[default]
    None,
    /// The task item's first reference.
    Reference,
    /// A text no scorer accepts.
    Wrong,
}

/// The mock's wrong answer.
pub const WRONG_ANSWER: &str = "zzz";

impl MethodSpec for Spec {
    fn id(&self) -> &'static str {
        "mock"
    }
    fn manifest(&self) -> Option<&'static str> {
        Some(include_str!("manifest.toml"))
    }
    fn about(&self) -> &'static str {
        "test double: fixed service time and scripted failures, no model"
    }
    fn keys(&self) -> &'static [ConfigKey] {
        &[
            ConfigKey {
                name: "prefill_ms",
                default: "0",
                help: "time before the first token",
            },
            ConfigKey {
                name: "decode_ms_per_token",
                default: "0",
                help: "time per later token",
            },
            ConfigKey {
                name: "tokens",
                default: "max_new_tokens",
                help: "tokens per request",
            },
            ConfigKey {
                name: "fail_every",
                default: "0",
                help: "fail request ids N-1, 2N-1, ... (0 = never)",
            },
            ConfigKey {
                name: "fail_ids",
                default: "[]",
                help: "request ids that return an error",
            },
            ConfigKey {
                name: "panic_ids",
                default: "[]",
                help: "request ids that panic",
            },
            ConfigKey {
                name: "setup_ms",
                default: "0",
                help: "time spent in prepare()",
            },
            ConfigKey {
                name: "fail_setup",
                default: "false",
                help: "make prepare() fail",
            },
            ConfigKey {
                name: "spin",
                default: "false",
                help: "busy-wait the service time on the worker's core instead of sleeping",
            },
            ConfigKey {
                name: "answer",
                default: "none",
                help: "task requests: answer with the reference (\"reference\"), wrongly (\"wrong\") or with no text",
            },
            ConfigKey {
                name: "wrong_every",
                default: "0",
                help: "with answer = \"reference\": answer ids N-1, 2N-1, ... wrongly",
            },
            ConfigKey {
                name: "cold_start_ms",
                default: "0",
                help: "one-time cost of the first call (a GPU's context creation and JIT, scripted)",
            },
            ConfigKey {
                name: "think",
                default: "0",
                help: "with a task answer: N tokens of reasoning, an `Answer: ` token, then the answer",
            },
            ConfigKey {
                name: "warm_up",
                default: "false",
                help: "pay cold_start_ms in prepare() (setup) instead of in the first request",
            },
        ]
    }
    fn build(&self, config: &ConfigTable, _ctx: &BuildContext) -> Result<Box<dyn Method>, MethodError> {
        let cfg: MockConfig = config.decode()?;
        for (key, v) in [
            ("prefill_ms", cfg.prefill_ms),
            ("decode_ms_per_token", cfg.decode_ms_per_token),
            ("setup_ms", cfg.setup_ms),
            ("cold_start_ms", cfg.cold_start_ms),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(config
                    .error(key, format!("must be a number of milliseconds >= 0, got {v}"))
                    .into());
            }
        }
        Ok(Box::new(Mock::new(cfg)))
    }
}

/// A mock instance.
pub struct Mock {
    cfg: MockConfig,
    /// The text of the request served last.
    answer: Option<String>,
    /// Whether the first call's cost has been paid.
    warm: bool,
    /// Seconds the warm-up took in `prepare()`.
    warmed_s: Option<f64>,
}

impl Mock {
    /// A mock built directly from its config (for tests of the harness).
    pub fn new(cfg: MockConfig) -> Self {
        Self {
            cfg,
            answer: None,
            warm: false,
            warmed_s: None,
        }
    }

    /// Pays the first call's cost once.
    fn first_call(&mut self) {
        if !self.warm {
            self.warm = true;
            sleep_ms(self.cfg.cold_start_ms);
        }
    }
}

fn sleep_ms(ms: f64) {
    if ms > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(ms / 1e3));
    }
}

impl Mock {
    /// Waits `ms`: asleep, or spinning on the core with `spin = true`.
    fn wait(&self, ms: f64) {
        if !self.cfg.spin {
            return sleep_ms(ms);
        }
        let end = std::time::Instant::now() + Duration::from_secs_f64(ms.max(0.0) / 1e3);
        while std::time::Instant::now() < end {
            std::hint::spin_loop();
        }
    }
}

impl Method for Mock {
    fn detokenize(&self, ids: &[u32]) -> Option<String> {
        let answer = self.answer.as_ref()?;
        if self.cfg.think == 0 {
            return Some(answer.clone());
        }
        // Token i < think is a step of reasoning, token `think` the marker, then the answer.
        let n = self.cfg.think;
        Some(
            ids.iter()
                .map(|&i| match i.cmp(&n) {
                    std::cmp::Ordering::Less => "step ",
                    std::cmp::Ordering::Equal => "Answer: ",
                    std::cmp::Ordering::Greater if i == n + 1 => answer.as_str(),
                    std::cmp::Ordering::Greater => "",
                })
                .collect(),
        )
    }

    /// No model: nothing resident.
    fn weight_bytes(&self) -> Option<u64> {
        Some(0)
    }

    fn prepare(&mut self) -> Result<(), MethodError> {
        sleep_ms(self.cfg.setup_ms);
        if self.cfg.fail_setup {
            return Err(MethodError::failed("mock setup failed (fail_setup = true)"));
        }
        if self.cfg.warm_up {
            let started = std::time::Instant::now();
            self.first_call();
            self.warmed_s = Some(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    fn cold_start_s(&self) -> Option<f64> {
        self.warmed_s
    }

    fn serve(
        &mut self,
        request: &Request,
        sink: &mut dyn TokenSink,
        probe: &mut Probe,
    ) -> Result<Completion, MethodError> {
        let id = request.id;
        probe.phase("prefill");
        self.first_call();
        self.wait(self.cfg.prefill_ms);
        if self.cfg.panic_ids.contains(&id) {
            panic!("mock panic for request {id} (panic_ids)");
        }
        let every = self.cfg.fail_every;
        if self.cfg.fail_ids.contains(&id) || (every > 0 && (id + 1).is_multiple_of(every)) {
            return Err(MethodError::failed(format!("mock failure for request {id}")));
        }
        let n = self.cfg.tokens.map(|t| t.get()).unwrap_or(request.max_new_tokens);
        let wrong_now = self.cfg.wrong_every > 0 && (id + 1).is_multiple_of(self.cfg.wrong_every);
        self.answer = match (self.cfg.answer, &request.task) {
            (MockAnswer::Reference, Some(t)) if !wrong_now => t.item.references.first().cloned(),
            (MockAnswer::Reference | MockAnswer::Wrong, Some(_)) => Some(WRONG_ANSWER.to_string()),
            _ => None,
        };
        probe.phase("decode");
        let mut stop = StopReason::Length;
        for i in 0..n {
            if i > 0 {
                self.wait(self.cfg.decode_ms_per_token);
            }
            if sink.token(i) == Flow::Stop && i + 1 < n {
                stop = StopReason::Stopped;
                break;
            }
        }
        probe.end();
        Ok(Completion::new(request.prompt.len() as u32, stop))
    }
}
