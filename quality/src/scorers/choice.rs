//! Multiple-choice letter: which option the answer picks, compared with the reference.

use super::{Scorer, best};
use crate::{TaskItem, normalize};

/// Multiple-choice accuracy.
pub struct ChoiceLetter;

/// The option (0-based) an answer picks, in order of evidence: a parenthesised letter
/// `(B)`; a letter after "answer is" / "answer:"; a letter opening the answer (`B`, `B.`,
/// `B)`, `B:`); else the one option whose text the answer contains.
pub fn picked(output: &str, item: &TaskItem) -> Option<usize> {
    let n = item.choices.len();
    let letter = |c: char| {
        let i = (c as usize).checked_sub('A' as usize)?;
        (c.is_ascii_uppercase() && i < n).then_some(i)
    };
    let chars: Vec<char> = output.chars().collect();
    for w in chars.windows(3) {
        if w[0] == '('
            && w[2] == ')'
            && let Some(i) = letter(w[1].to_ascii_uppercase())
        {
            return Some(i);
        }
    }
    let lower = output.to_lowercase();
    for key in ["answer is", "answer:"] {
        if let Some(pos) = lower.rfind(key) {
            let rest = lower[pos + key.len()..].trim_start();
            let mut it = rest.chars();
            if let Some(c) = it.next()
                && it.next().is_none_or(|d| !d.is_alphanumeric())
                && let Some(i) = letter(c.to_ascii_uppercase())
            {
                return Some(i);
            }
        }
    }
    let trimmed = output.trim_start();
    let mut it = trimmed.chars();
    if let Some(c) = it.next()
        && it
            .next()
            .is_none_or(|d| matches!(d, '.' | ')' | ':' | ' ' | '\n' | ','))
        && let Some(i) = letter(c)
    {
        return Some(i);
    }
    let out = format!(" {} ", normalize::squad(output));
    let hits: Vec<usize> = item
        .choices
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            let c = normalize::squad(c);
            !c.is_empty() && out.contains(&format!(" {c} "))
        })
        .map(|(i, _)| i)
        .collect();
    (hits.len() == 1).then(|| hits[0])
}

impl Scorer for ChoiceLetter {
    fn name(&self) -> &'static str {
        "choice"
    }
    fn about(&self) -> &'static str {
        "multiple choice: the option the answer picks — (B), \"answer is B\", a leading B, or the one option text it contains"
    }
    fn score(&self, output: &str, item: &TaskItem) -> f64 {
        let Some(got) = picked(output, item) else {
            return 0.0;
        };
        best(item, |r| f64::from(u8::from(item.choice_index(r) == Some(got))))
    }
}
