//! The Llama-family decoder every method drives.
//!
//! Built from candle ops rather than taken from candle-transformers because the methods
//! need what stock decoders hide: logits at every position (speculative verification), an
//! explicit KV cache that can be snapshot and truncated (rollback, cached knowledge), and
//! positions passed explicitly (RoPE at arbitrary positions). Layout per layer:
//! RMSNorm → GQA attention with RoPE (rotate-half convention) → residual → RMSNorm →
//! SwiGLU FFN → residual; final RMSNorm; linear head.
//!
//! The KV cache concatenates per step (`Tensor::cat`), which copies: that makes a cache
//! clone an O(layers) snapshot that can never alias a later write.
//!
//! **Overhead model:** per token, 7 matmuls per layer plus the head; weights are read
//! once per forward, so single-sequence decode is memory-bandwidth bound:
//! tokens/s ≤ copy bandwidth ÷ weight bytes (the roofline the decode bench reports).

use candle_core::{DType, Device, Tensor};

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
    /// FFN inner width.
    pub ffn: usize,
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
        self.hidden / self.heads
    }

    /// Checks the shape is consistent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Model(m));
        if self.hidden == 0
            || self.layers == 0
            || self.heads == 0
            || self.kv_heads == 0
            || self.ffn == 0
            || self.vocab_size == 0
        {
            return bad("every model dimension must be at least 1".into());
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return bad(format!(
                "hidden ({}) must be a multiple of heads ({})",
                self.hidden, self.heads
            ));
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return bad(format!(
                "heads ({}) must be a multiple of kv_heads ({})",
                self.heads, self.kv_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "head width hidden/heads = {} must be even for RoPE",
                self.head_dim()
            ));
        }
        if self.max_seq < 2 {
            return bad("max_seq must be at least 2".into());
        }
        Ok(())
    }

    /// Parameter count (head not tied to the embedding).
    pub fn params(&self) -> usize {
        let kv = self.kv_heads * self.head_dim();
        let per_layer =
            2 * self.hidden * self.hidden + 2 * self.hidden * kv + 3 * self.hidden * self.ffn + 2 * self.hidden;
        2 * self.vocab_size * self.hidden + self.layers * per_layer + self.hidden
    }

    /// Bytes of weights read per decoded token in F32: every matrix once, plus one
    /// embedding row (the embedding table itself is gathered, not streamed).
    pub fn weight_bytes_per_token(&self) -> usize {
        4 * (self.params() - self.vocab_size * self.hidden + self.hidden)
    }
}

/// Weights of one decoder layer; projection matrices stored as (in, out).
pub struct Layer {
    pub(crate) attn_norm: Tensor,
    pub(crate) wq: Tensor,
    pub(crate) wk: Tensor,
    pub(crate) wv: Tensor,
    pub(crate) wo: Tensor,
    pub(crate) ffn_norm: Tensor,
    pub(crate) w_gate: Tensor,
    pub(crate) w_up: Tensor,
    pub(crate) w_down: Tensor,
}

/// Which logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position: (1, vocab).
    Last,
    /// Every position: (tokens, vocab).
    All,
}

/// Per-layer key/value cache for one sequence. Cloning it is a cheap, safe snapshot.
#[derive(Debug, Clone)]
pub struct KvCache {
    kv: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    /// An empty cache for `layers` layers.
    pub fn new(layers: usize) -> Self {
        Self {
            kv: vec![None; layers],
            len: 0,
        }
    }

    /// Tokens cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops every cached position from `len` on.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len >= self.len {
            return Ok(());
        }
        for slot in &mut self.kv {
            if let Some((k, v)) = slot.take()
                && len > 0
            {
                *slot = Some((k.narrow(1, 0, len)?, v.narrow(1, 0, len)?));
            }
        }
        self.len = len;
        Ok(())
    }

    /// Bytes held by the cache.
    pub fn bytes(&self) -> usize {
        self.kv
            .iter()
            .flatten()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
            .sum()
    }
}

/// A Llama-family decoder.
pub struct Decoder {
    pub(crate) cfg: LlamaConfig,
    pub(crate) embed: Tensor,
    pub(crate) layers: Vec<Layer>,
    pub(crate) norm: Tensor,
    pub(crate) head: Tensor,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

impl Decoder {
    /// Assembles a decoder; `embed` is (vocab, hidden), `head` is (hidden, vocab).
    pub fn new(
        cfg: LlamaConfig,
        embed: Tensor,
        layers: Vec<Layer>,
        norm: Tensor,
        head: Tensor,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let (cos, sin) = rope_tables(&cfg, device)?;
        Ok(Self {
            cfg,
            embed,
            layers,
            norm,
            head,
            cos,
            sin,
            device: device.clone(),
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs `tokens` after what `cache` holds, at positions `cache.len()..`, with a causal
    /// mask, appending their keys and values to the cache.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, logits: Logits) -> Result<Tensor> {
        let start = cache.len();
        let t = tokens.len();
        if t == 0 {
            return Err(Error::Request("forward needs at least one token".into()));
        }
        if start + t > self.cfg.max_seq {
            return Err(Error::Request(format!(
                "sequence of {} tokens exceeds the model's context of {}",
                start + t,
                self.cfg.max_seq
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&id| id as usize >= self.cfg.vocab_size) {
            return Err(Error::Request(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.cfg.vocab_size
            )));
        }
        let positions: Vec<u32> = (start as u32..(start + t) as u32).collect();
        let mask = if t > 1 {
            Some(causal_mask(start, t, &self.device)?)
        } else {
            None
        };
        self.forward_at(tokens, &positions, mask.as_ref(), cache, logits)
    }

    /// General forward: explicit positions and an optional additive mask of shape
    /// (tokens, cache.len() + tokens) (0 = attend, −∞ = blocked).
    ///
    /// The pass runs inside candle's device context (on CPU, its thread pool), so the many
    /// short parallel sections of a forward do not each hand off to another thread: on a
    /// 2-vCPU VM those hand-offs doubled decode time when the other vCPU was idle.
    pub fn forward_at(
        &self,
        tokens: &[u32],
        positions: &[u32],
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        logits: Logits,
    ) -> Result<Tensor> {
        self.device
            .clone()
            .with_context(|| self.forward_in_context(tokens, positions, mask, cache, logits))
    }

    fn forward_in_context(
        &self,
        tokens: &[u32],
        positions: &[u32],
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        logits: Logits,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (t, hd, h, kvh) = (tokens.len(), cfg.head_dim(), cfg.heads, cfg.kv_heads);
        let g = h / kvh;
        let ids = Tensor::new(tokens, &self.device)?;
        let pos = Tensor::new(positions, &self.device)?;
        let cos = self.cos.index_select(&pos, 0)?;
        let sin = self.sin.index_select(&pos, 0)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let eps = cfg.rms_eps as f32;

        let mut x = self.embed.index_select(&ids, 0)?;
        for (li, layer) in self.layers.iter().enumerate() {
            let hn = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let q = hn
                .matmul(&layer.wq)?
                .reshape((1, t, h, hd))?
                .transpose(1, 2)?
                .contiguous()?;
            let k = hn
                .matmul(&layer.wk)?
                .reshape((1, t, kvh, hd))?
                .transpose(1, 2)?
                .contiguous()?;
            let v = hn
                .matmul(&layer.wv)?
                .reshape((t, kvh, hd))?
                .transpose(0, 1)?
                .contiguous()?;
            let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?.squeeze(0)?;
            let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?.squeeze(0)?;
            let (k, v) = match &cache.kv[li] {
                Some((pk, pv)) => (Tensor::cat(&[pk, &k], 1)?, Tensor::cat(&[pv, &v], 1)?),
                None => (k, v),
            };
            let total = k.dim(1)?;
            // Grouped-query attention without copying K/V per head: fold the g query heads
            // sharing a KV head into the row dimension.
            let qg = q.reshape((kvh, g * t, hd))?;
            let mut att = qg.matmul(&k.t()?)?.affine(scale, 0.0)?;
            if let Some(m) = mask {
                att = att
                    .reshape((h, t, total))?
                    .broadcast_add(m)?
                    .reshape((kvh, g * t, total))?;
            }
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let y = att
                .matmul(&v)?
                .reshape((h, t, hd))?
                .transpose(0, 1)?
                .reshape((t, h * hd))?;
            x = (x + y.matmul(&layer.wo)?)?;
            cache.kv[li] = Some((k, v));

            let hn = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let gate = hn.matmul(&layer.w_gate)?.silu()?;
            let up = hn.matmul(&layer.w_up)?;
            x = (x + (gate * up)?.matmul(&layer.w_down)?)?;
        }
        cache.len += t;
        let x = match logits {
            Logits::Last => x.narrow(0, t - 1, 1)?,
            Logits::All => x,
        };
        let x = candle_nn::ops::rms_norm(&x, &self.norm, eps)?;
        Ok(x.matmul(&self.head)?)
    }
}

/// Additive causal mask for `t` new tokens after `start` cached ones: (t, start + t).
fn causal_mask(start: usize, t: usize, device: &Device) -> Result<Tensor> {
    let total = start + t;
    let m: Vec<f32> = (0..t)
        .flat_map(|i| (0..total).map(move |j| if j <= start + i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Ok(Tensor::from_vec(m, (t, total), device)?)
}

/// RoPE cos/sin tables, (max_seq, head_dim / 2), computed here (never read from weights).
fn rope_tables(cfg: &LlamaConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = cfg.head_dim() / 2;
    let mut cos = Vec::with_capacity(cfg.max_seq * half);
    let mut sin = Vec::with_capacity(cfg.max_seq * half);
    for p in 0..cfg.max_seq {
        for i in 0..half {
            let inv_freq = 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / cfg.head_dim() as f64);
            let a = p as f64 * inv_freq;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    let shape = (cfg.max_seq, half);
    Ok((
        Tensor::from_vec(cos, shape, device)?.to_dtype(DType::F32)?,
        Tensor::from_vec(sin, shape, device)?,
    ))
}
