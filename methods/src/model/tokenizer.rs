//! Tokenizers: the byte-level one of the embedded model.

/// Text ↔ token ids.
pub trait Tokenizer: Send + Sync {
    /// Encodes a prompt, including any begin marker.
    fn encode(&self, text: &str) -> Vec<u32>;
    /// Decodes generated ids (markers and ids outside the text range are skipped).
    fn decode(&self, ids: &[u32]) -> String;
    /// End-of-sequence id, if the tokenizer has one.
    fn eos(&self) -> Option<u32>;
    /// Short name for run.json.
    fn name(&self) -> &str;
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
    fn encode(&self, text: &str) -> Vec<u32> {
        std::iter::once(Self::BOS).chain(text.bytes().map(u32::from)).collect()
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = ByteTokenizer;
        let ids = t.encode("héllo 42");
        assert_eq!(ids[0], ByteTokenizer::BOS);
        assert_eq!(ids.len(), 1 + "héllo 42".len());
        assert_eq!(t.decode(&ids), "héllo 42");
    }
}
