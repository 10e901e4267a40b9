//! The shape of a Llama-family model, its parameter counts and the bytes a decode step
//! streams.

use crate::error::{Error, Result};

/// Shape of a Llama-family model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Residual width.
    pub hidden: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (GQA when fewer than `heads`).
    pub kv_heads: usize,
    /// Width of one attention head (usually hidden / heads).
    pub head_dim: usize,
    /// FFN inner width (of each expert, for MoE).
    pub ffn: usize,
    /// Experts per MoE layer (0 = dense SwiGLU FFN).
    pub experts: usize,
    /// Experts each token is routed to (MoE only).
    pub top_k: usize,
    /// Whether q/k/v projections carry biases (Qwen2).
    pub qkv_bias: bool,
    /// Whether the output head is the embedding matrix.
    pub tied_embeddings: bool,
    /// Longest sequence (prompt + generation).
    pub max_seq: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
}

impl LlamaConfig {
    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Checks the shape is consistent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Model(m));
        if self.hidden == 0
            || self.layers == 0
            || self.heads == 0
            || self.kv_heads == 0
            || self.head_dim == 0
            || self.ffn == 0
            || self.vocab_size == 0
        {
            return bad("every model dimension must be at least 1".into());
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return bad(format!(
                "heads ({}) must be a multiple of kv_heads ({})",
                self.heads, self.kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!("head width {} must be even for RoPE", self.head_dim));
        }
        if self.experts > 0 && (self.top_k == 0 || self.top_k > self.experts) {
            return bad(format!(
                "top_k ({}) must be between 1 and the number of experts ({})",
                self.top_k, self.experts
            ));
        }
        if self.max_seq < 2 {
            return bad("max_seq must be at least 2".into());
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0 && self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return bad("rope_theta and rms_eps must be positive".into());
        }
        Ok(())
    }

    fn attn_params(&self) -> usize {
        let (q, kv) = (self.heads * self.head_dim, self.kv_heads * self.head_dim);
        let bias = if self.qkv_bias { q + 2 * kv } else { 0 };
        2 * self.hidden * q + 2 * self.hidden * kv + bias + 2 * self.hidden
    }

    fn ffn_params(&self, experts: usize) -> usize {
        let router = if self.experts > 0 {
            self.hidden * self.experts
        } else {
            0
        };
        router + experts * 3 * self.hidden * self.ffn
    }

    fn head_params(&self) -> usize {
        if self.tied_embeddings {
            0
        } else {
            self.vocab_size * self.hidden
        }
    }

    /// Parameter count, every expert included (what must be resident).
    pub fn params(&self) -> usize {
        let experts = self.experts.max(1);
        self.vocab_size * self.hidden
            + self.head_params()
            + self.layers * (self.attn_params() + self.ffn_params(experts))
            + self.hidden
    }

    /// Parameters one token touches (top-k experts for MoE; equals `params` when dense).
    pub fn active_params(&self) -> usize {
        let experts = if self.experts > 0 { self.top_k } else { 1 };
        self.vocab_size * self.hidden
            + self.head_params()
            + self.layers * (self.attn_params() + self.ffn_params(experts))
            + self.hidden
    }

    /// Bytes of F32 weights read per decoded token: every matrix a token touches once, plus
    /// one embedding row (the embedding table is gathered, not streamed — unless it is also
    /// the head).
    pub fn weight_bytes_per_token(&self) -> usize {
        let gathered = if self.tied_embeddings {
            0
        } else {
            self.vocab_size * self.hidden - self.hidden
        };
        4 * (self.active_params() - gathered)
    }

    /// Bytes one cached position holds (keys and values of every layer) in elements of
    /// `elem` bytes: what attention reads per position of context at each decoded token.
    pub fn kv_bytes_per_position(&self, elem: usize) -> usize {
        2 * self.layers * self.kv_heads * self.head_dim() * elem
    }
}
