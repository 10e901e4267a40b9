//! SQuAD token F1: overlap of normalised tokens (as a multiset) with a reference.

use std::collections::HashMap;

use super::{Scorer, best};
use crate::{TaskItem, normalize};

/// SQuAD v1.1 token F1.
pub struct TokenF1;

/// Token F1 of `prediction` against one `reference` (0 when they share no token, as in
/// SQuAD v1.1 — also when both are empty).
pub fn f1(prediction: &[String], reference: &[String]) -> f64 {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in reference {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in prediction {
        if let Some(c) = counts.get_mut(t.as_str())
            && *c > 0
        {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / prediction.len() as f64;
    let recall = same as f64 / reference.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

impl Scorer for TokenF1 {
    fn name(&self) -> &'static str {
        "f1"
    }
    fn about(&self) -> &'static str {
        "token F1 after SQuAD normalisation, best over references"
    }
    fn score(&self, output: &str, item: &TaskItem) -> f64 {
        let out = normalize::tokens(output);
        best(item, |r| f1(&out, &normalize::tokens(r)))
    }
}
