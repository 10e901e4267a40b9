//! Tokenizers: the byte-level one of the embedded model, and Hugging Face `tokenizers`
//! pipelines read from `tokenizer.json` or rebuilt from GGUF metadata.

use crate::error::{Error, Result};

/// Text ↔ token ids.
pub trait Tokenizer: Send + Sync {
    /// Encodes a prompt, including any begin marker; special-token text such as
    /// `<|im_start|>` is recognised as the special token.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    /// Encodes text that continues a sequence: no begin marker (special-token text is still
    /// recognised). `encode(a) ++ encode_more(b)` is how a prompt is built from a cached
    /// prefix `a` and a per-request suffix `b`.
    fn encode_more(&self, text: &str) -> Result<Vec<u32>>;
    /// Decodes generated ids (markers and ids outside the text range are skipped).
    fn decode(&self, ids: &[u32]) -> String;
    /// End-of-sequence id, if the tokenizer has one.
    fn eos(&self) -> Option<u32>;
    /// Short name for run.json.
    fn name(&self) -> &str;
    /// Vocabulary size, special tokens included.
    fn vocab_size(&self) -> usize;
    /// The id of a token given by its text (special tokens such as `<|im_end|>`).
    fn token_id(&self, _token: &str) -> Option<u32> {
        None
    }
}

/// Bytes 0–255 are tokens 0–255; 256 begins a sequence, 257 ends it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteTokenizer;

impl ByteTokenizer {
    /// Begin-of-sequence id.
    pub const BOS: u32 = 256;
    /// End-of-sequence id.
    pub const EOS: u32 = 257;
    /// Smallest vocabulary that can hold it.
    pub const VOCAB: usize = 258;
}

impl Tokenizer for ByteTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(std::iter::once(Self::BOS).chain(text.bytes().map(u32::from)).collect())
    }
    fn encode_more(&self, text: &str) -> Result<Vec<u32>> {
        Ok(text.bytes().map(u32::from).collect())
    }
    fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().filter(|&&i| i < 256).map(|&i| i as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
    fn eos(&self) -> Option<u32> {
        Some(Self::EOS)
    }
    fn name(&self) -> &str {
        "byte"
    }
    fn vocab_size(&self) -> usize {
        Self::VOCAB
    }
}

/// A Hugging Face `tokenizers` pipeline.
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    eos: Option<u32>,
    name: String,
}

impl HfTokenizer {
    /// Wraps a pipeline; `eos` ends generation.
    pub fn new(inner: tokenizers::Tokenizer, eos: Option<u32>, name: impl Into<String>) -> Self {
        Self {
            inner,
            eos,
            name: name.into(),
        }
    }

    /// Reads `tokenizer.json`.
    pub fn from_file(path: &std::path::Path) -> Result<tokenizers::Tokenizer> {
        tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Model(format!("{}: not a usable tokenizer.json: {e}", path.display())))
    }

    /// The tokenizer of the GGUF file at `path` (its metadata only; no weights are read).
    pub fn from_gguf_file(path: &std::path::Path) -> Result<Self> {
        let mut f = std::fs::File::open(path).map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
        let content = candle_core::quantized::gguf_file::Content::read(&mut f)
            .map_err(|e| Error::Model(format!("{}: not a readable GGUF file: {e}", path.display())))?;
        Self::from_gguf(&content, path)
    }

    /// Writes the pipeline as a Hugging Face `tokenizer.json`.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        self.inner
            .save(path, false)
            .map_err(|e| Error::Model(format!("{}: cannot write: {e}", path.display())))
    }

    /// Rebuilds the tokenizer a GGUF file describes. candle's builder covers the Llama-3
    /// and Qwen2 pre-tokenizers; SmolLM's (`tokenizer.ggml.pre = "smollm"`: every digit on
    /// its own, then GPT-2 byte-level splitting) is set here, and plain GPT-2 splitting
    /// without the prefix space candle's default adds (llama.cpp adds none).
    pub fn from_gguf(content: &candle_core::quantized::gguf_file::Content, path: &std::path::Path) -> Result<Self> {
        use candle_core::quantized::tokenizer::TokenizerFromGguf;
        use tokenizers::pre_tokenizers::{byte_level::ByteLevel, digits::Digits, sequence::Sequence};
        let mut inner = tokenizers::Tokenizer::from_gguf(content).map_err(|e| {
            Error::Model(format!(
                "{}: cannot build the tokenizer from its metadata: {e}",
                path.display()
            ))
        })?;
        let pre = content
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        match pre.as_str() {
            "smollm" => {
                let seq = Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()]);
                inner.with_pre_tokenizer(Some(seq));
            }
            // candle's own pipelines match these tokenizer.json files.
            "qwen2" | "llama3" | "smaug-bpe" | "lfm2" => {}
            // GPT-2 byte level as llama.cpp applies it: no space prepended to the text.
            _ => {
                inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
            }
        }
        let eos = content
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.to_u32().ok());
        Ok(Self::new(
            inner,
            eos,
            format!("gguf:{}", if pre.is_empty() { "gpt2" } else { &pre }),
        ))
    }
}

impl Tokenizer for HfTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| Error::Request(format!("tokenization failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }
    fn encode_more(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Request(format!("tokenization failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }
    fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, true).unwrap_or_default()
    }
    fn eos(&self) -> Option<u32> {
        self.eos
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
    fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = ByteTokenizer;
        let ids = t.encode("héllo 42").unwrap();
        assert_eq!(ids[0], ByteTokenizer::BOS);
        assert_eq!(ids.len(), 1 + "héllo 42".len());
        assert_eq!(t.decode(&ids), "héllo 42");
    }
}
