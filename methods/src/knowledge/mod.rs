//! What the knowledge methods (`rag`, `cag`) share: chunking a suite's knowledge base with
//! the generator's tokenizer, the one prompt layout every knowledge configuration uses (so
//! closed-book, full-context, retrieval and cache-augmented answers differ only in which
//! passages precede the question), and the `knowledge` / `reserve_tokens` keys.
//!
//! The prompt of a question is `head ++ tail` in tokens: `head` = the chat template's
//! opening, the instruction and the passages; `tail` = the question and the template's
//! closing. Tokenized apart (`encode` for the head, `encode_more` for the tail), so CAG's
//! cached head is exactly the head a full-context prompt starts with.

use std::sync::Arc;

use oae_harness::MethodError;
use oae_workloads::{KnowledgeBase, Request};

use crate::generate::Generator;
use crate::model::LoadedModel;

/// Default of `reserve_tokens`: context kept free for the question and the answer when the
/// whole base is the context (`cag`, `rag` with `retriever = "all"`).
pub fn default_reserve() -> u32 {
    128
}

/// `reserve_tokens` in `oae list methods`.
pub const RESERVE_KEY: oae_harness::ConfigKey = oae_harness::ConfigKey {
    name: "reserve_tokens",
    default: "128",
    help: "with the whole base as context (cag, rag retriever = all): tokens kept free for question and answer; a bigger base is not applicable",
};

/// One chunk of a knowledge-base document.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Id of the document it comes from.
    pub doc_id: String,
    /// The document's title.
    pub title: String,
    /// Its text (the document's own text when the document fits in one chunk).
    pub text: String,
    /// Its length in the generator's tokens.
    pub tokens: usize,
}

/// Splits every document into windows of `chunk_tokens` tokens overlapping by
/// `chunk_overlap`, in document order; a document that fits is one chunk with its own text.
pub fn chunk(kb: &KnowledgeBase, m: &LoadedModel) -> Result<Vec<Chunk>, MethodError> {
    let step = kb.chunk_tokens - kb.chunk_overlap;
    let mut out = Vec::new();
    for d in &kb.documents {
        let ids = m.tokenizer.encode_more(&d.text)?;
        if ids.len() <= kb.chunk_tokens {
            out.push(Chunk {
                doc_id: d.id.clone(),
                title: d.title.clone(),
                text: d.text.clone(),
                tokens: ids.len(),
            });
            continue;
        }
        let mut start = 0;
        loop {
            let end = (start + kb.chunk_tokens).min(ids.len());
            out.push(Chunk {
                doc_id: d.id.clone(),
                title: d.title.clone(),
                text: m.tokenizer.decode(&ids[start..end]).trim().to_string(),
                tokens: end - start,
            });
            if end == ids.len() {
                break;
            }
            start += step;
        }
    }
    Ok(out)
}

/// The question a knowledge method answers: the request's prompt (a knowledge task
/// workload's prompt is the question alone).
pub fn question(request: &Request) -> &str {
    request.prompt.trim()
}

/// Instruction before passages.
const WITH_PASSAGES: &str = "Answer the question using the passages below. Reply with a short answer only.";
/// Instruction without passages (closed book).
const CLOSED_BOOK: &str = "Answer the question. Reply with a short answer only.";
/// Stands where the head ends inside the rendered template.
const SPLIT: &str = "\u{1}OAE-SPLIT\u{1}";

/// The user-turn text before the question: the instruction and the numbered passages.
pub fn head_text(passages: &[&Chunk]) -> String {
    if passages.is_empty() {
        return format!("{CLOSED_BOOK}\n\n");
    }
    let mut s = format!("{WITH_PASSAGES}\n\n");
    for (i, c) in passages.iter().enumerate() {
        s.push_str(&format!("[{}] {}\n{}\n\n", i + 1, c.title, c.text));
    }
    s
}

/// A prompt as (head ids, tail ids).
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// Template opening, instruction and passages (begins with the begin marker).
    pub head: Vec<u32>,
    /// The question and the template's closing.
    pub tail: Vec<u32>,
}

impl Prompt {
    /// Builds the prompt of `question` after `passages`.
    pub fn build(g: &Generator, m: &LoadedModel, passages: &[&Chunk], question: &str) -> Result<Self, MethodError> {
        let (head, tail) = split(g, m, &head_text(passages), question)?;
        Ok(Self {
            head: m.tokenizer.encode(&head)?,
            tail: m.tokenizer.encode_more(&tail)?,
        })
    }

    /// The tail alone (what follows any head): the question and the template's closing.
    pub fn tail(g: &Generator, m: &LoadedModel, question: &str) -> Result<Vec<u32>, MethodError> {
        Ok(m.tokenizer.encode_more(&split(g, m, "", question)?.1)?)
    }

    /// All ids, head then tail.
    pub fn ids(&self) -> Vec<u32> {
        let mut v = self.head.clone();
        v.extend_from_slice(&self.tail);
        v
    }

    /// Tokens in all.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The rendered prompt cut where the question begins: (head text, tail text).
fn split(g: &Generator, m: &LoadedModel, head: &str, question: &str) -> Result<(String, String), MethodError> {
    let rendered = g.render(m, &format!("{head}{SPLIT}Question: {question}"))?;
    let (h, t) = rendered
        .split_once(SPLIT)
        .ok_or_else(|| MethodError::failed("the chat template dropped the prompt's text"))?;
    Ok((h.to_string(), t.to_string()))
}

/// The knowledge base named by a method's `knowledge` key.
pub fn lookup(
    name: &str,
    config: &oae_core::config::ConfigTable,
    ctx: &oae_harness::BuildContext,
) -> Result<Arc<KnowledgeBase>, MethodError> {
    Ok(oae_workloads::knowledge::find(
        &ctx.knowledge,
        name,
        config,
        "knowledge",
    )?)
}

/// The error for a knowledge base whose whole text does not fit the model's context.
pub fn too_large(
    what: &str,
    kb: &KnowledgeBase,
    knowledge_tokens: usize,
    reserve: usize,
    max_seq: usize,
) -> MethodError {
    MethodError::not_applicable(format!(
        "{what} needs the whole knowledge base `{}` ({} documents, {knowledge_tokens} tokens with the prompt's instruction) plus {reserve} tokens for the question and answer = {} tokens, but the model's context is {max_seq} tokens; use a model with a longer context (raise its max_seq if it supports more), a smaller knowledge base (its subset/limit), or retrieval (`rag`)",
        kb.name,
        kb.documents.len(),
        knowledge_tokens + reserve
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_text_numbers_passages_and_closed_book_has_none() {
        let c = Chunk {
            doc_id: "d".into(),
            title: "T".into(),
            text: "x".into(),
            tokens: 1,
        };
        assert_eq!(head_text(&[]), format!("{CLOSED_BOOK}\n\n"));
        let h = head_text(&[&c, &c]);
        assert!(h.contains("[1] T\nx\n\n[2] T\nx\n\n"), "{h}");
    }
}
