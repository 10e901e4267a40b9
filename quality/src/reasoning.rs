//! Reasoning: chain-of-thought against direct answers, and where an answer's reasoning ends.
//!
//! A task asks for `reasoning = "direct"` (the final answer only) or `"cot"` (work step by
//! step, then the final answer after a marker). Either way the text splits into the
//! **reasoning** — what came before the final answer — and the **answer**:
//!
//! 1. after the last `</think>` when the model wrote thinking tags (reasoning models whose
//!    chat template has them: Qwen3, DeepSeek-R1 and their distillations);
//! 2. else after the last final-answer marker: `####` (GSM8K's), `Answer:` or `answer is`
//!    (any case);
//! 3. else, for a chain-of-thought answer with no marker, everything is reasoning and the
//!    answer is empty (the budget ran out, or the model never concluded).
//!
//! A direct answer's only reasoning is a thinking block: its markers ("The answer is 4") are
//! part of the answer.
//!
//! The harness counts the tokens on each side (records' `reasoning_tokens`, `answer_tokens`)
//! and, with chain of thought, scores the answer part alone.

use serde::Serialize;

/// How a task asks for its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reasoning {
    /// The final answer only.
    Direct,
    /// Step-by-step reasoning, then the final answer after a marker.
    Cot,
}

impl Reasoning {
    /// Parses `direct` or `cot`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "direct" => Ok(Self::Direct),
            "cot" => Ok(Self::Cot),
            other => Err(format!(
                "unknown reasoning `{other}`; use \"direct\" (the final answer only) or \"cot\" (step by step, then the answer)"
            )),
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Cot => "cot",
        }
    }
}

/// How an answer splits, if at all: the mode its task asked for, else `direct` for a text
/// with thinking tags (the answer follows `</think>`), else `None` (the text is the answer).
pub fn mode(asked: Option<Reasoning>, text: &str) -> Option<Reasoning> {
    asked.or_else(|| text.contains(THINK_END).then_some(Reasoning::Direct))
}

/// What the scorers judge: the answer part under [`mode`], else the whole text.
pub fn scored_part(asked: Option<Reasoning>, text: &str) -> &str {
    match mode(asked, text) {
        Some(m) => answer(text, m),
        None => text,
    }
}

/// The end of a thinking block.
pub const THINK_END: &str = "</think>";

/// Final-answer markers, matched case-insensitively.
const MARKERS: &[&str] = &["####", "answer:", "answer is"];

/// The byte offset in `text` where the answer starts (just after the thinking block or the
/// last marker); `None` when the text has neither.
pub fn answer_start(text: &str) -> Option<usize> {
    if let Some(p) = text.rfind(THINK_END) {
        return Some(p + THINK_END.len());
    }
    let lower = text.to_lowercase();
    // Lowercasing can change byte lengths outside ASCII; markers are ASCII, so positions
    // found in `lower` are mapped back through the char boundaries they share.
    let best = MARKERS
        .iter()
        .filter_map(|m| lower.rfind(m).map(|p| (p, m.len())))
        .max_by_key(|&(p, _)| p)?;
    let (p, len) = best;
    if lower.len() == text.len() {
        return Some(p + len);
    }
    // Non-ASCII case changes: find the same marker occurrence by char count instead.
    let chars_before = lower[..p].chars().count();
    let start = text.char_indices().nth(chars_before).map_or(text.len(), |(i, _)| i);
    Some((start + len).min(text.len()))
}

/// The byte offset where the answer starts under `reasoning`: reasoning is `text[..offset]`.
/// A direct answer's only reasoning is a thinking block (its "The answer is 4" is all answer).
pub fn split(text: &str, reasoning: Reasoning) -> usize {
    match reasoning {
        Reasoning::Cot => answer_start(text).unwrap_or(text.len()),
        Reasoning::Direct => text.rfind(THINK_END).map_or(0, |p| p + THINK_END.len()),
    }
}

/// The answer part of `text` under `reasoning` (trimmed): what the scorers judge.
pub fn answer(text: &str, reasoning: Reasoning) -> &str {
    text[split(text, reasoning)..].trim()
}

/// Tokens of reasoning and of answer in a generation of `n` tokens whose text after `k`
/// tokens is `text_of(k)`: the fewest tokens whose text reaches the answer's start (found by
/// bisection, `O(log n)` detokenizations).
pub fn token_split(n: usize, full: &str, reasoning: Reasoning, text_of: impl Fn(usize) -> String) -> (u32, u32) {
    let at = split(full, reasoning);
    if at == 0 {
        return (0, n as u32);
    }
    if at >= full.len() {
        return (n as u32, 0);
    }
    let prefix = &full[..at];
    // The smallest k whose text starts with the whole reasoning prefix.
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if text_of(mid).starts_with(prefix) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    (lo as u32, (n - lo) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_follows_thinking_tags_else_the_last_marker() {
        let t = "<think>2 and 2 make 4. Answer: 5?</think> The answer is 4.";
        assert_eq!(answer(t, Reasoning::Cot), "The answer is 4.");
        assert_eq!(answer("Janet has 3. 3 * 2 = 6.\n#### 6", Reasoning::Cot), "6");
        assert_eq!(answer("First... Answer: Paris", Reasoning::Cot), "Paris");
        assert_eq!(answer("so the answer is 12", Reasoning::Cot), "12");
        assert_eq!(answer("I think, then think more", Reasoning::Cot), "", "no conclusion");
        assert_eq!(answer(" Paris ", Reasoning::Direct), "Paris");
        assert_eq!(
            answer("The answer is 4.", Reasoning::Direct),
            "The answer is 4.",
            "direct: all answer"
        );
        assert_eq!(answer("<think>hm</think>4", Reasoning::Direct), "4");
        assert_eq!(answer("ÉTAPE: x. ANSWER: Ça", Reasoning::Cot), "Ça", "non-ASCII text");
        assert!(Reasoning::parse("tree").unwrap_err().contains("cot"));
    }

    #[test]
    fn tokens_split_where_the_text_reaches_the_answer() {
        // Tokens as text pieces; the reasoning ends inside token 3 (`#### `).
        let pieces = ["Add ", "3 and 3", ".\n", "#### ", "6"];
        let text_of = |k: usize| pieces[..k].concat();
        let full = text_of(pieces.len());
        assert_eq!(token_split(pieces.len(), &full, Reasoning::Cot, text_of), (4, 1));
        assert_eq!(
            token_split(2, "Add 3 and 3", Reasoning::Cot, text_of),
            (2, 0),
            "all reasoning"
        );
        assert_eq!(
            token_split(1, "6", Reasoning::Direct, |_| "6".into()),
            (0, 1),
            "all answer"
        );
    }
}
