//! Numeric final answer, by GSM8K conventions: the number after the last `####`, else after
//! the last "answer is", else the last number in the text; `$` and thousands commas dropped,
//! compared as numbers (`3.50` = `3.5`, `-4` ≠ `4`).

use super::{Scorer, best};
use crate::TaskItem;

/// GSM8K-style final-number accuracy.
pub struct NumericFinal;

/// The numbers in `text`, in order (`-1,234.5` → -1234.5; `$12` → 12; a trailing full stop
/// is punctuation).
pub fn numbers(text: &str) -> Vec<f64> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_number =
            chars[i].is_ascii_digit() || (chars[i] == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        if !starts_number {
            i += 1;
            continue;
        }
        // A minus sign directly before (or before a `$` directly before) makes it negative.
        let negative = matches!(
            (i.checked_sub(1).map(|j| chars[j]), i.checked_sub(2).map(|j| chars[j])),
            (Some('-'), _) | (Some('$'), Some('-'))
        );
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == ',' || chars[i] == '.') {
            i += 1;
        }
        let raw: String = chars[start..i].iter().collect();
        let raw = raw.trim_end_matches(['.', ',']);
        let cleaned: String = raw.chars().filter(|&c| c != ',').collect();
        if let Ok(v) = cleaned.parse::<f64>() {
            out.push(if negative { -v } else { v });
        }
    }
    out
}

/// The final answer of a worked solution, by the conventions above.
pub fn final_answer(text: &str) -> Option<f64> {
    if let Some(pos) = text.rfind("####") {
        return numbers(&text[pos + 4..]).first().copied();
    }
    let lower = text.to_lowercase();
    if let Some(pos) = lower.rfind("answer is")
        && let Some(v) = numbers(&lower[pos + "answer is".len()..]).first()
    {
        return Some(*v);
    }
    numbers(text).last().copied()
}

/// Whether two final answers agree (relative tolerance 1e-6).
fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

impl Scorer for NumericFinal {
    fn name(&self) -> &'static str {
        "numeric"
    }
    fn about(&self) -> &'static str {
        "GSM8K final answer: the number after `####` / \"answer is\" / the last number, commas and $ dropped, compared as a number"
    }
    fn score(&self, output: &str, item: &TaskItem) -> f64 {
        let Some(got) = final_answer(output) else {
            return 0.0;
        };
        best(item, |r| {
            f64::from(u8::from(final_answer(r).is_some_and(|want| same(got, want))))
        })
    }
}
