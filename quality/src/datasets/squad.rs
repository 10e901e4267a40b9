//! SQuAD v1.1 (`{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
//! "answers": [{"text"}]}]}]}]}`) → extractive items grouped by article, with the paragraph
//! as context and as a knowledge-base document (`<title>#<paragraph>`).

use serde::Deserialize;

use super::Converted;
use crate::kb::Document;
use crate::{AnswerType, TaskItem};

#[derive(Deserialize)]
struct File {
    data: Vec<Article>,
}

#[derive(Deserialize)]
struct Article {
    title: String,
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    context: String,
    qas: Vec<Qa>,
}

#[derive(Deserialize)]
struct Qa {
    id: String,
    question: String,
    answers: Vec<Answer>,
}

#[derive(Deserialize)]
struct Answer {
    text: String,
}

/// Converts a SQuAD v1.1 JSON file.
pub fn convert(bytes: &[u8]) -> Result<Converted, String> {
    let file: File = serde_json::from_slice(bytes).map_err(|e| format!("not SQuAD v1.1 JSON: {e}"))?;
    let mut out = Converted::default();
    for a in file.data {
        for (pi, p) in a.paragraphs.into_iter().enumerate() {
            let doc_id = format!("{}#{pi}", a.title);
            for qa in p.qas {
                let mut references: Vec<String> = Vec::new();
                for ans in qa.answers {
                    if !ans.text.trim().is_empty() && !references.contains(&ans.text) {
                        references.push(ans.text);
                    }
                }
                if references.is_empty() {
                    return Err(format!("question {} has no answer", qa.id));
                }
                out.items.push(TaskItem {
                    id: qa.id,
                    question: Some(qa.question),
                    prompt: None,
                    context: Some(p.context.clone()),
                    doc_ids: vec![doc_id.clone()],
                    references,
                    answer_type: AnswerType::Extractive,
                    choices: Vec::new(),
                    group: Some(a.title.clone()),
                    tests: None,
                });
            }
            out.docs.push(Document {
                id: doc_id,
                title: a.title.replace('_', " "),
                text: p.context,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_become_groups_and_paragraphs_documents() {
        let json = r#"{"version": "1.1", "data": [{"title": "Super_Bowl_50", "paragraphs": [
            {"context": "The Denver Broncos won.", "qas": [{"id": "q1", "question": "Who won?",
              "answers": [{"answer_start": 4, "text": "Denver Broncos"}, {"answer_start": 4, "text": "Denver Broncos"}, {"answer_start": 0, "text": "The Denver Broncos"}]}]}]}]}"#;
        let c = convert(json.as_bytes()).unwrap();
        assert_eq!(c.items.len(), 1);
        let i = &c.items[0];
        assert_eq!(
            i.references,
            ["Denver Broncos", "The Denver Broncos"],
            "duplicates dropped, order kept"
        );
        assert_eq!(i.group.as_deref(), Some("Super_Bowl_50"));
        assert_eq!(i.doc_ids, ["Super_Bowl_50#0"]);
        assert_eq!(c.docs[0].title, "Super Bowl 50");
        assert!(convert(b"{}").is_err());
    }
}
