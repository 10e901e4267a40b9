//! SQuAD exact match: the normalised answer equals a normalised reference.

use super::{Scorer, best};
use crate::{TaskItem, normalize};

/// SQuAD v1.1 exact match.
pub struct ExactMatch;

impl Scorer for ExactMatch {
    fn name(&self) -> &'static str {
        "em"
    }
    fn about(&self) -> &'static str {
        "exact match after SQuAD normalisation (lower-case, no punctuation, no articles), best over references"
    }
    fn score(&self, output: &str, item: &TaskItem) -> f64 {
        let out = normalize::squad(output);
        best(item, |r| f64::from(u8::from(normalize::squad(r) == out)))
    }
}
