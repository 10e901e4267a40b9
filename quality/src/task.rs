//! oae's task format: one JSON object per line.
//!
//! ```json
//! {"id": "q1", "question": "Which river flows through Paris?", "context": "Paris lies on the Seine…",
//!  "references": ["the Seine", "Seine"], "answer_type": "extractive", "group": "Paris"}
//! ```
//!
//! | field | required | meaning |
//! |---|---|---|
//! | `id` | yes | unique within the file |
//! | `question` or `prompt` | one of them | a question (rendered by the workload's template) or a verbatim prompt |
//! | `context` | no | a passage the answer may be drawn from (extractive QA with context) |
//! | `doc_ids` | no | ids of supporting documents in a knowledge base |
//! | `references` | yes, ≥ 1 | acceptable answers (for `choice`: the letter or the choice text) |
//! | `answer_type` | no (`short`) | `extractive`, `short`, `numeric`, `choice` or `code` |
//! | `choices` | for `choice` | the options, lettered A, B, C… in the prompt |
//! | `group` | no | the article, topic or source a subset is drawn by |
//!
//! Errors name the file, the line and the field, and say how to fix them.

use std::path::Path;

use oae_core::ConfigError;
use serde::{Deserialize, Serialize};

/// What kind of answer a task expects; picks the default scorers and prompt template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerType {
    /// A span of the context (SQuAD): exact match and token F1.
    Extractive,
    /// A short free-form answer: contains-answer and token F1.
    #[default]
    Short,
    /// A number at the end of a worked answer (GSM8K): numeric final answer.
    Numeric,
    /// One of lettered options: the multiple-choice letter.
    Choice,
    /// Code completed from a prompt (HumanEval); scored by no built-in scorer yet.
    Code,
}

impl AnswerType {
    /// Its name in task files.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerType::Extractive => "extractive",
            AnswerType::Short => "short",
            AnswerType::Numeric => "numeric",
            AnswerType::Choice => "choice",
            AnswerType::Code => "code",
        }
    }

    /// The scorers a task of this type gets unless its workload names others.
    pub fn default_scorers(self) -> &'static [&'static str] {
        match self {
            AnswerType::Extractive => &["em", "f1"],
            AnswerType::Short => &["contains", "f1"],
            AnswerType::Numeric => &["numeric"],
            AnswerType::Choice => &["choice"],
            AnswerType::Code => &[],
        }
    }
}

/// One task item: what is asked and what counts as right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskItem {
    /// Unique id within its file.
    pub id: String,
    /// The question, rendered by a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// A verbatim prompt (used as is, no template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// A passage the answer may come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Supporting documents in a knowledge base.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub doc_ids: Vec<String>,
    /// Acceptable answers.
    pub references: Vec<String>,
    /// The kind of answer expected.
    #[serde(default)]
    pub answer_type: AnswerType,
    /// Options of a multiple-choice item, lettered A, B, C… in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// Article, topic or source (subsets are drawn by group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// For code items: the unit tests the `pass@1` scorer runs the completion against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<CodeTests>,
}

/// A code item's tests, HumanEval's way: a `check(candidate)` function and the name of the
/// function the prompt asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeTests {
    /// Python source defining `check(candidate)`, which asserts on the candidate's results.
    pub test: String,
    /// The function to pass to `check`.
    pub entry_point: String,
}

/// Most options a multiple-choice item may have (letters A–Z).
pub const MAX_CHOICES: usize = 26;

impl TaskItem {
    /// The letter of option `i` (0 → `A`).
    pub fn letter(i: usize) -> char {
        (b'A' + (i as u8).min(25)) as char
    }

    /// Checks what serde cannot: the (field, message) of the first problem.
    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.id.trim().is_empty() {
            return Err(("id", "must be a non-empty string".into()));
        }
        match (&self.question, &self.prompt) {
            (None, None) => {
                return Err((
                    "question",
                    "missing: give `question` (rendered by the workload's template) or `prompt` (used verbatim)".into(),
                ));
            }
            (Some(_), Some(_)) => return Err(("prompt", "give `question` or `prompt`, not both".into())),
            (Some(q), _) | (_, Some(q)) if q.trim().is_empty() => {
                let f = if self.question.is_some() { "question" } else { "prompt" };
                return Err((f, "must not be empty".into()));
            }
            _ => {}
        }
        if self.references.is_empty() {
            return Err(("references", "needs at least one reference answer".into()));
        }
        if let Some(i) = self.references.iter().position(|r| r.trim().is_empty()) {
            return Err(("references", format!("reference {i} is empty")));
        }
        match self.answer_type {
            AnswerType::Choice => {
                if !(2..=MAX_CHOICES).contains(&self.choices.len()) {
                    return Err((
                        "choices",
                        format!(
                            "a `choice` item needs 2 to {MAX_CHOICES} options, got {}",
                            self.choices.len()
                        ),
                    ));
                }
                for r in &self.references {
                    if self.choice_index(r).is_none() {
                        return Err((
                            "references",
                            format!(
                                "`{r}` is neither a letter A–{} nor the text of an option",
                                Self::letter(self.choices.len() - 1)
                            ),
                        ));
                    }
                }
            }
            _ if !self.choices.is_empty() => {
                return Err((
                    "choices",
                    format!(
                        "only `choice` items have options; set \"answer_type\": \"choice\" or remove `choices` (this item is `{}`)",
                        self.answer_type.as_str()
                    ),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The option a reference or answer names: a letter (`B`, `(b)`) or an option's text.
    pub fn choice_index(&self, answer: &str) -> Option<usize> {
        let a = answer.trim().trim_matches(|c: char| "().:".contains(c)).trim();
        if a.len() == 1 {
            let c = a.chars().next()?.to_ascii_uppercase();
            let i = (c as usize).checked_sub('A' as usize)?;
            return (i < self.choices.len()).then_some(i);
        }
        let norm = crate::normalize::squad(a);
        self.choices.iter().position(|c| crate::normalize::squad(c) == norm)
    }
}

impl crate::jsonl::Row for TaskItem {
    const WHAT: &'static str = "task item";
    fn id(&self) -> &str {
        &self.id
    }
    fn check(&self) -> Result<(), (&'static str, String)> {
        TaskItem::check(self)
    }
}

/// Parses a task file's text; `label` names it in errors.
pub fn parse(text: &str, label: &str) -> Result<Vec<TaskItem>, ConfigError> {
    crate::jsonl::parse(text, label)
}

/// Reads and parses a task file.
pub fn load(path: &Path) -> Result<Vec<TaskItem>, ConfigError> {
    crate::jsonl::load(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<TaskItem, ConfigError> {
        parse(line, "t.jsonl").map(|mut v| v.remove(0))
    }

    #[test]
    fn reads_every_field() {
        let t = one(r#"{"id":"a","question":"Q?","context":"C.","doc_ids":["d1"],"references":["x","y"],"answer_type":"extractive","group":"g"}"#).unwrap();
        assert_eq!(t.answer_type, AnswerType::Extractive);
        assert_eq!(t.references, ["x", "y"]);
        assert_eq!(t.doc_ids, ["d1"]);
        assert_eq!(t.group.as_deref(), Some("g"));
        let t = one(r#"{"id":"b","prompt":"def f():","references":["pass"],"answer_type":"code"}"#).unwrap();
        assert_eq!(t.prompt.as_deref(), Some("def f():"));
    }

    #[test]
    fn bad_rows_name_file_line_and_field() {
        let text = "{\"id\":\"a\",\"question\":\"q\",\"references\":[\"r\"]}\n\n{\"id\":\"b\",\"question\":\"q\",\"references\":[\"r\"],\"answer_type\":\"essay\"}\n";
        let e = parse(text, "t.jsonl").unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.line, e.key.as_str()),
            ("t.jsonl", 3, "answer_type"),
            "{e}"
        );
        assert!(e.message.contains("essay"), "{e}");

        let e = one(r#"{"id":"a","question":"q","references":[]}"#).unwrap_err();
        assert_eq!(e.key, "references");
        let e = one(r#"{"id":"a","references":["r"]}"#).unwrap_err();
        assert_eq!(e.key, "question");
        assert!(e.message.contains("prompt"));
        let e = one(r#"{"id":"a","question":"q","references":["r"],"colour":1}"#).unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
        let e = one(r#"{"id":"a","question":"q","references":[3]}"#).unwrap_err();
        assert_eq!(e.key, "references[0]", "{e}");
        let e = parse("{\"id\":\"a\",\"question\":\"q\",\"references\":[\"r\"]}\n{\"id\":\"a\",\"question\":\"q\",\"references\":[\"r\"]}", "t").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "id"));
        assert!(e.message.contains("line 1"));
        assert!(parse("\n\n", "t").unwrap_err().message.contains("no task items"));
        assert_eq!(one("{not json").unwrap_err().line, 1);
    }

    #[test]
    fn choice_items_check_their_options() {
        let t = one(r#"{"id":"a","question":"q","choices":["red","green"],"references":["B"],"answer_type":"choice"}"#)
            .unwrap();
        assert_eq!(t.choice_index("(b)"), Some(1));
        assert_eq!(t.choice_index("Green"), Some(1));
        assert_eq!(t.choice_index("C"), None);
        let e = one(r#"{"id":"a","question":"q","choices":["red","green"],"references":["C"],"answer_type":"choice"}"#)
            .unwrap_err();
        assert_eq!(e.key, "references");
        let e = one(r#"{"id":"a","question":"q","choices":["red"],"references":["A"],"answer_type":"choice"}"#)
            .unwrap_err();
        assert_eq!(e.key, "choices");
        let e = one(r#"{"id":"a","question":"q","choices":["red","blue"],"references":["A"]}"#).unwrap_err();
        assert_eq!(e.key, "choices");
    }
}
