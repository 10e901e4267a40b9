//! HumanEval (`{"task_id", "prompt", "canonical_solution", "test", "entry_point"}` per line) →
//! code items with the prompt verbatim, the canonical solution as reference, and the unit tests
//! (`test`, `entry_point`) the `pass@1` scorer runs.

use serde::Deserialize;

use super::Converted;
use crate::{AnswerType, TaskItem};

#[derive(Deserialize)]
struct Problem {
    task_id: String,
    prompt: String,
    canonical_solution: String,
    test: String,
    entry_point: String,
}

/// Converts the problems file (already gunzipped).
pub fn convert(bytes: &[u8]) -> Result<Converted, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut out = Converted::default();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let p: Problem = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        out.items.push(TaskItem {
            id: p.task_id,
            question: None,
            prompt: Some(p.prompt),
            context: None,
            doc_ids: Vec::new(),
            references: vec![p.canonical_solution],
            answer_type: AnswerType::Code,
            choices: Vec::new(),
            group: None,
            tests: Some(crate::task::CodeTests {
                test: p.test,
                entry_point: p.entry_point,
            }),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_verbatim() {
        let src = r#"{"task_id": "HumanEval/0", "prompt": "def f():\n", "canonical_solution": "    return 1\n", "test": "", "entry_point": "f"}"#;
        let c = convert(src.as_bytes()).unwrap();
        assert_eq!(c.items[0].prompt.as_deref(), Some("def f():\n"));
        assert_eq!(c.items[0].answer_type, AnswerType::Code);
    }
}
