//! Answer scorers: each turns (generated text, task item) into a score in [0, 1].
//!
//! A scorer is one file here and one line in [`registry`]. Scorers run after a request has
//! completed, outside its timed path, on the harness's collecting thread.

use crate::TaskItem;

mod choice;
mod contains;
mod exact;
mod f1;
mod numeric;
pub mod pass_at_1;

/// Scores one answer against a task item's references.
pub trait Scorer: Sync {
    /// The name used in suites (`scorers = ["f1"]`, `[slo] quality = { scorer = "f1" }`) and
    /// records.
    fn name(&self) -> &'static str;
    /// One line for `oae list scorers`.
    fn about(&self) -> &'static str;
    /// The score of `output` for `item`, in [0, 1] (the best over its references).
    fn score(&self, output: &str, item: &TaskItem) -> f64;
}

/// A scorer backed by a model (sentence embeddings): loaded once before the run by the
/// binary, and run after a cell's replays over all its answers at once — milliseconds per
/// answer on a CPU, too slow to run between requests without delaying the next one and being
/// metered as the method's energy.
pub trait ModelScorer: Send {
    /// The name used in suites and records.
    fn name(&self) -> &'static str;
    /// The score of each (answer, item), in [0, 1], in order.
    fn score_batch(&mut self, answers: &[(&str, &TaskItem)]) -> Result<Vec<f64>, String>;
}

/// A model scorer's entry: its name and what it needs. The implementation lives where its
/// model code does (oae-methods), registered there with one line.
#[derive(Debug, Clone, Copy)]
pub struct ModelScorerSpec {
    /// Name in suites.
    pub name: &'static str,
    /// One line for `oae list scorers`.
    pub about: &'static str,
}

/// Every scorer that runs after a cell's replays rather than after each request: the
/// model-backed ones (implemented in oae-methods) and `pass@1`, whose Python processes would
/// otherwise be metered as the method's energy.
pub const MODEL_SCORERS: &[ModelScorerSpec] = &[
    ModelScorerSpec {
        name: "minilm",
        about: "cosine similarity of all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2 norm) of the answer and the closest reference, negatives as 0; needs `oae models fetch all-minilm-l6-v2`",
    },
    ModelScorerSpec {
        name: "pass@1",
        about: "HumanEval functional correctness: runs prompt + completion + the item's tests in a sandboxed python3 (no network, CPU/memory/time limits), after the cell's replays; needs OAE_ALLOW_CODE_EXECUTION=1",
    },
];

/// Whether `name` is a scorer (built-in or model-backed).
pub fn known(name: &str) -> bool {
    scorer(name).is_some() || MODEL_SCORERS.iter().any(|m| m.name == name)
}

/// Every scorer name, for messages.
pub fn all_names() -> String {
    registry()
        .iter()
        .map(|s| s.name())
        .chain(MODEL_SCORERS.iter().map(|m| m.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every built-in scorer.
pub fn registry() -> &'static [&'static dyn Scorer] {
    &[
        &exact::ExactMatch,
        &f1::TokenF1,
        &contains::Contains,
        &numeric::NumericFinal,
        &choice::ChoiceLetter,
    ]
}

/// The scorer called `name`.
pub fn scorer(name: &str) -> Option<&'static dyn Scorer> {
    registry().iter().copied().find(|s| s.name() == name)
}

/// The best score of `f` over the item's references.
pub(crate) fn best(item: &TaskItem, f: impl Fn(&str) -> f64) -> f64 {
    item.references.iter().map(|r| f(r)).fold(0.0, f64::max)
}
