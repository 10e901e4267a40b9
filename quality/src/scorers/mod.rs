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
