//! A request and its intended arrival.

use std::time::Duration;

/// One inference request: a prompt and how many tokens to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Position in its schedule, from 0.
    pub id: u64,
    /// The prompt text.
    pub prompt: String,
    /// Upper bound on generated tokens (generation may stop early at end-of-sequence).
    pub max_new_tokens: u32,
    /// Length the prompt was synthesized to, in bytes (= tokens of a byte-level tokenizer).
    /// A method's own tokenizer reports the real input token count per request.
    pub target_input_tokens: u32,
    /// The trace this request came from recorded it as failed (it is replayed, and flagged).
    pub source_failed: bool,
    /// The task item asked and its scorers, for a task workload (`None`: a synthetic prompt
    /// with no reference answer).
    pub task: Option<crate::task::TaskRef>,
}

/// A request with the time it is meant to arrive.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// Intended arrival, measured from the start of the replay (after time compression).
    pub at: Duration,
    /// Idle time removed from the gap before this arrival by time compression.
    pub skipped: Duration,
    /// The request itself.
    pub request: Request,
}
