//! Contains-answer: a normalised reference appears in the normalised answer as whole words.

use super::{Scorer, best};
use crate::{TaskItem, normalize};

/// 1 when the answer contains a reference (token sequence match after SQuAD normalisation).
pub struct Contains;

impl Scorer for Contains {
    fn name(&self) -> &'static str {
        "contains"
    }
    fn about(&self) -> &'static str {
        "1 when a reference appears in the answer as whole words after SQuAD normalisation"
    }
    fn score(&self, output: &str, item: &TaskItem) -> f64 {
        let out = normalize::tokens(output);
        best(item, |r| {
            let r = normalize::tokens(r);
            let hit = !r.is_empty() && out.windows(r.len()).any(|w| w == r.as_slice());
            f64::from(u8::from(hit))
        })
    }
}
