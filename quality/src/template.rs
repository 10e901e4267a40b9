//! Prompt templates: how a task item becomes a prompt.
//!
//! Named templates cover the task types (`qa-context`, `qa-closed`, `math`, `choice`,
//! `verbatim`); `auto` (the default) picks one per item from its answer type and whether it
//! has a context; any other text containing `{question}` is a custom template with the
//! placeholders `{question}`, `{context}` and `{choices}`.

use crate::reasoning::Reasoning;
use crate::{AnswerType, TaskItem};

/// The lettered options of a multiple-choice item, one per line.
fn choices_of(item: &TaskItem) -> String {
    item.choices
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{}. {c}", TaskItem::letter(i)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A prompt template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// Picks per item: a verbatim `prompt` as is; extractive/short with a context →
    /// `QaContext`; without → `QaClosed`; numeric → `Math`; choice → `Choice`; code →
    /// `Verbatim`.
    Auto,
    /// Extractive QA with the passage in the prompt.
    QaContext,
    /// Closed-book QA: the question alone (any context is left out).
    QaClosed,
    /// A word problem with a final-answer instruction (`#### <number>`).
    Math,
    /// A multiple-choice question with lettered options.
    Choice,
    /// The item's `prompt` (or `question`) unchanged.
    Verbatim,
    /// A user template with `{question}`, `{context}`, `{choices}`.
    Custom(String),
}

/// The named templates, for help text.
pub const NAMES: &[&str] = &["auto", "qa-context", "qa-closed", "math", "choice", "verbatim"];

impl Template {
    /// Parses a name or a custom template.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => Self::Auto,
            "qa-context" => Self::QaContext,
            "qa-closed" => Self::QaClosed,
            "math" => Self::Math,
            "choice" => Self::Choice,
            "verbatim" => Self::Verbatim,
            t if t.contains("{question}") => Self::Custom(t.to_string()),
            other => {
                return Err(format!(
                    "unknown template `{other}`; use one of {} or a text containing {{question}} (and optionally {{context}}, {{choices}})",
                    NAMES.join(", ")
                ));
            }
        })
    }

    /// Its name for run.json.
    pub fn name(&self) -> &str {
        match self {
            Self::Auto => "auto",
            Self::QaContext => "qa-context",
            Self::QaClosed => "qa-closed",
            Self::Math => "math",
            Self::Choice => "choice",
            Self::Verbatim => "verbatim",
            Self::Custom(t) => t,
        }
    }

    /// Checks that every item can be rendered: the (item index, message) of the first that
    /// cannot.
    pub fn check(&self, items: &[TaskItem]) -> Result<(), (usize, String)> {
        for (i, item) in items.iter().enumerate() {
            let t = self.resolve(item);
            let needs_question = !matches!(t, Template::Verbatim);
            if needs_question && item.question.is_none() {
                return Err((
                    i,
                    format!(
                        "item `{}` has a verbatim `prompt`, which template `{}` cannot use; use template = \"verbatim\" or \"auto\", or give it a `question`",
                        item.id,
                        self.name()
                    ),
                ));
            }
            if matches!(t, Template::QaContext) && item.context.is_none() {
                return Err((
                    i,
                    format!(
                        "item `{}` has no `context` for template `qa-context`; use \"qa-closed\" or \"auto\"",
                        item.id
                    ),
                ));
            }
            if matches!(t, Template::Choice) && item.choices.is_empty() {
                return Err((i, format!("item `{}` has no `choices` for template `choice`", item.id)));
            }
        }
        Ok(())
    }

    /// The concrete template used for `item`.
    fn resolve<'a>(&'a self, item: &TaskItem) -> &'a Template {
        const QA_CONTEXT: Template = Template::QaContext;
        const QA_CLOSED: Template = Template::QaClosed;
        const MATH: Template = Template::Math;
        const CHOICE: Template = Template::Choice;
        const VERBATIM: Template = Template::Verbatim;
        match self {
            Template::Auto if item.prompt.is_some() => &VERBATIM,
            Template::Auto => match item.answer_type {
                AnswerType::Extractive | AnswerType::Short if item.context.is_some() => &QA_CONTEXT,
                AnswerType::Extractive | AnswerType::Short => &QA_CLOSED,
                AnswerType::Numeric => &MATH,
                AnswerType::Choice => &CHOICE,
                AnswerType::Code => &VERBATIM,
            },
            t => t,
        }
    }

    /// The prompt for `item` (call [`Template::check`] first; a missing part renders empty).
    pub fn render(&self, item: &TaskItem) -> String {
        self.render_for(item, None)
    }

    /// The prompt for `item` asking for `reasoning`: `direct` asks for the final answer alone
    /// (a word problem gets "give only the final answer"), `cot` for step-by-step reasoning
    /// ending in a final-answer line (`#### <number>` for math, `Answer: …` otherwise); `None`
    /// is each template's own wording (math reasons, the others answer directly). Custom and
    /// verbatim prompts are the user's and stay as written.
    pub fn render_for(&self, item: &TaskItem, reasoning: Option<Reasoning>) -> String {
        let q = item.question.as_deref().unwrap_or_default();
        let cot = "Think step by step, then give the final answer on its own last line as";
        match (self.resolve(item), reasoning) {
            (Template::Math, Some(Reasoning::Direct)) => {
                return format!(
                    "Give only the final answer, with no working, as \"#### <number>\".\n\nProblem: {q}\nAnswer: ####"
                );
            }
            (Template::QaClosed, Some(Reasoning::Cot)) => {
                return format!("{cot} \"Answer: <a few words>\".\n\nQuestion: {q}\nReasoning:");
            }
            (Template::QaContext, Some(Reasoning::Cot)) => {
                let context = item.context.as_deref().unwrap_or_default();
                return format!(
                    "{cot} \"Answer: <a short span copied from the passage>\".\n\nPassage: {context}\n\nQuestion: {q}\nReasoning:"
                );
            }
            (Template::Choice, Some(Reasoning::Cot)) => {
                return format!(
                    "Question: {q}\n{}\n{cot} \"Answer: <letter>\".\nReasoning:",
                    choices_of(item)
                );
            }
            _ => {}
        }
        self.render_plain(item)
    }

    fn render_plain(&self, item: &TaskItem) -> String {
        let q = item.question.as_deref().unwrap_or_default();
        let context = item.context.as_deref().unwrap_or_default();
        let choices = || choices_of(item);
        match self.resolve(item) {
            Template::QaContext => format!(
                "Answer the question with a short span copied from the passage.\n\nPassage: {context}\n\nQuestion: {q}\nAnswer:"
            ),
            Template::QaClosed => format!("Answer the question in a few words.\n\nQuestion: {q}\nAnswer:"),
            Template::Math => format!(
                "Solve the problem step by step. End with the final answer on its own line as \"#### <number>\".\n\nProblem: {q}\nSolution:"
            ),
            Template::Choice => format!(
                "Question: {q}\n{}\nAnswer with the letter of the correct option.\nAnswer:",
                choices()
            ),
            Template::Verbatim => item.prompt.clone().unwrap_or_else(|| q.to_string()),
            Template::Custom(t) => t
                .replace("{question}", q)
                .replace("{context}", context)
                .replace("{choices}", &choices()),
            Template::Auto => unreachable!("resolve never returns Auto"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::parse;

    #[test]
    fn auto_picks_by_answer_type_and_context() {
        let items = parse(
            concat!(
                r#"{"id":"a","question":"Who?","context":"Ann did.","references":["Ann"],"answer_type":"extractive"}"#,
                "\n",
                r#"{"id":"b","question":"Who?","references":["Ann"]}"#,
                "\n",
                r#"{"id":"c","question":"2+2?","references":["4"],"answer_type":"numeric"}"#,
                "\n",
                r#"{"id":"d","question":"Colour?","choices":["red","blue"],"references":["A"],"answer_type":"choice"}"#,
                "\n",
                r#"{"id":"e","prompt":"def f():","references":["pass"],"answer_type":"code"}"#,
            ),
            "t",
        )
        .unwrap();
        let t = Template::Auto;
        assert!(t.check(&items).is_ok());
        assert!(t.render(&items[0]).contains("Passage: Ann did."));
        assert!(!t.render(&items[1]).contains("Passage"));
        assert!(t.render(&items[2]).contains("####"));
        assert!(t.render(&items[3]).contains("A. red\nB. blue"));
        assert_eq!(t.render(&items[4]), "def f():");
        assert!(!Template::QaClosed.render(&items[0]).contains("Ann did"));
        let custom = Template::parse("Q: {question} C: {context}").unwrap();
        assert_eq!(custom.render(&items[0]), "Q: Who? C: Ann did.");
        assert!(Template::QaContext.check(&items[1..2]).is_err());
        assert!(
            Template::QaClosed
                .check(&items[4..])
                .unwrap_err()
                .1
                .contains("verbatim")
        );
        assert!(Template::parse("essay").unwrap_err().contains("qa-context"));
        // Reasoning modes: math direct asks for the number alone, QA and choice with chain
        // of thought end in an `Answer:` line, custom templates stay as written.
        let direct = t.render_for(&items[2], Some(Reasoning::Direct));
        assert!(
            direct.contains("only the final answer") && direct.ends_with("####"),
            "{direct}"
        );
        assert_eq!(t.render_for(&items[2], Some(Reasoning::Cot)), t.render(&items[2]));
        let cot = t.render_for(&items[1], Some(Reasoning::Cot));
        assert!(
            cot.contains("step by step") && cot.contains("Answer: <a few words>"),
            "{cot}"
        );
        assert!(
            t.render_for(&items[0], Some(Reasoning::Cot))
                .contains("Passage: Ann did.")
        );
        assert!(
            t.render_for(&items[3], Some(Reasoning::Cot))
                .contains("A. red\nB. blue")
        );
        assert_eq!(t.render_for(&items[1], Some(Reasoning::Direct)), t.render(&items[1]));
        assert_eq!(
            custom.render_for(&items[0], Some(Reasoning::Cot)),
            "Q: Who? C: Ann did."
        );
    }
}
