//! The Llama-family decoder every method drives.
//!
//! Built from candle ops rather than taken from candle-transformers because the methods
//! need what stock decoders hide: logits at every position (speculative verification), an
//! explicit KV cache that can be snapshot, truncated and re-indexed (rollback, cached
//! knowledge, beams), positions and masks passed explicitly (RoPE at arbitrary positions,
//! tree attention), a sparse mixture-of-experts FFN, and early exit after any layer
//! (self-speculative drafts). Layout per layer: RMSNorm → GQA attention with RoPE
//! (rotate-half convention, optional q/k/v biases as in Qwen2) → residual → RMSNorm →
//! SwiGLU FFN or top-k MoE of SwiGLU experts → residual; final RMSNorm; linear head
//! (possibly tied to the embedding).
//!
//! A decode step (one token) runs fused where the model allows: as six kernels per layer on a
//! CUDA device (`cuda/`), on slices without candle's per-op glue on the CPU in F32
//! (`cpu_step`); every other pass runs the candle ops below. The KV cache's buffers are
//! written in place by the CPU's F32 path and the fused CUDA step, and replaced by
//! concatenation (`Tensor::cat`) elsewhere; a clone copies them before its first write in place
//! ([`KvCache`]), so a snapshot never sees another's writes.
//!
//! **Overhead model:** per token, 7 matmuls per layer plus the head (MoE: the router plus
//! top-k experts' 3 matmuls each); weights are read once per forward, so single-sequence
//! decode is memory-bandwidth bound: tokens/s ≤ copy bandwidth ÷ weight bytes (the roofline
//! the decode bench reports).

use std::sync::Mutex;
use std::time::Instant;

use std::collections::BTreeMap;

use candle_core::{DType, Device, IndexOp, Tensor};

pub use super::config::LlamaConfig;
pub use super::kv_cache::KvCache;
use super::matvec::matmul as mm;
use super::weight::tally_tensor;
pub use super::weight::{Table, Weight, WeightFormat};
use crate::error::{Error, Result};

/// A SwiGLU feed-forward block; gate and up side by side in one (in, 2·ffn) weight so a
/// token's two input projections are one product (one pass over the weights on CPU, one
/// kernel on a GPU).
#[derive(Clone)]
pub struct Mlp {
    gate_up: Weight,
    down: Weight,
}

impl Mlp {
    /// The block from its three (in, out) projections.
    pub fn new(gate: Weight, up: Weight, down: Weight) -> Result<Self> {
        Ok(Self {
            gate_up: Weight::concat_out(&[&gate, &up])?,
            down,
        })
    }

    fn ffn(&self) -> usize {
        self.down.dims().0
    }

    /// The gate projection as a dense (in, ffn) tensor.
    pub fn gate(&self) -> Result<Tensor> {
        self.gate_up.columns(0, self.ffn())
    }

    /// The up projection as a dense (in, ffn) tensor.
    pub fn up(&self) -> Result<Tensor> {
        self.gate_up.columns(self.ffn(), self.ffn())
    }

    /// The down projection as a dense (ffn, out) tensor.
    pub fn down(&self) -> Result<Tensor> {
        self.down.columns(0, self.down.dims().1)
    }

    /// The fused gate + up weight and the down weight, as held.
    pub fn weights(&self) -> (&Weight, &Weight) {
        (&self.gate_up, &self.down)
    }

    /// A copy with its own memory.
    pub fn deep_copy(&self) -> Result<Self> {
        self.map(&|w| w.deep_copy())
    }

    /// The block with both weights mapped by `f`.
    fn map(&self, f: &impl Fn(&Weight) -> Result<Weight>) -> Result<Self> {
        Ok(Self {
            gate_up: f(&self.gate_up)?,
            down: f(&self.down)?,
        })
    }

    fn tally(&self, into: &mut BTreeMap<String, usize>) {
        self.gate_up.tally(into);
        self.down.tally(into);
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let f = self.ffn();
        let gu = self.gate_up.matmul(x)?;
        self.down.matmul(&super::swiglu::swiglu(&gu, f)?)
    }
}

/// A sparse mixture-of-experts block (Mixtral layout): softmax router, top-k experts per
/// token, their weights renormalised to sum to 1.
#[derive(Clone)]
pub struct Moe {
    /// (hidden, experts).
    pub(crate) router: Tensor,
    pub(crate) experts: Vec<Mlp>,
    pub(crate) top_k: usize,
}

/// A layer's feed-forward block.
#[derive(Clone)]
pub enum Ffn {
    /// One SwiGLU MLP.
    Dense(Mlp),
    /// Top-k routed experts.
    Moe(Moe),
}

/// Weights of one decoder layer.
#[derive(Clone)]
pub struct Layer {
    pub(crate) attn_norm: Tensor,
    /// Q, K and V side by side, (in, q + 2·kv): one product per token.
    pub(crate) qkv: Weight,
    /// Their biases side by side (Qwen2).
    pub(crate) qkv_bias: Option<Tensor>,
    /// Widths of Q and of K (= V).
    pub(crate) q_kv: (usize, usize),
    pub(crate) wo: Weight,
    pub(crate) ffn_norm: Tensor,
    pub(crate) ffn: Ffn,
}

impl Layer {
    /// A layer from its norms, its Q/K/V/O projections (in, out), their optional Q/K/V
    /// biases and its feed-forward block; Q, K and V are fused into one weight.
    pub fn new(
        attn_norm: Tensor,
        [wq, wk, wv]: [Weight; 3],
        wo: Weight,
        bias: Option<(Tensor, Tensor, Tensor)>,
        ffn_norm: Tensor,
        ffn: Ffn,
    ) -> Result<Self> {
        let q_kv = (wq.dims().1, wk.dims().1);
        Ok(Self {
            attn_norm,
            qkv: Weight::concat_out(&[&wq, &wk, &wv])?,
            qkv_bias: bias.map(|(q, k, v)| Tensor::cat(&[q, k, v], 0)).transpose()?,
            q_kv,
            wo,
            ffn_norm,
            ffn,
        })
    }

    /// Every weight mapped by `f`, every vector by `g`.
    fn map(&self, f: &impl Fn(&Weight) -> Result<Weight>, g: &impl Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        Ok(Self {
            attn_norm: g(&self.attn_norm)?,
            qkv: f(&self.qkv)?,
            qkv_bias: self.qkv_bias.as_ref().map(g).transpose()?,
            q_kv: self.q_kv,
            wo: f(&self.wo)?,
            ffn_norm: g(&self.ffn_norm)?,
            ffn: match &self.ffn {
                Ffn::Dense(m) => Ffn::Dense(m.map(f)?),
                Ffn::Moe(moe) => Ffn::Moe(Moe {
                    router: g(&moe.router)?,
                    experts: moe.experts.iter().map(|m| m.map(f)).collect::<Result<_>>()?,
                    top_k: moe.top_k,
                }),
            },
        })
    }

    /// Bytes per weight type; `per_token` counts the experts a token reaches on average.
    fn tally(&self, into: &mut BTreeMap<String, usize>, per_token: bool) {
        for t in [&self.attn_norm, &self.ffn_norm].into_iter().chain(&self.qkv_bias) {
            tally_tensor(t, into);
        }
        self.qkv.tally(into);
        self.wo.tally(into);
        match &self.ffn {
            Ffn::Dense(m) => m.tally(into),
            Ffn::Moe(moe) => {
                tally_tensor(&moe.router, into);
                let mut experts = BTreeMap::new();
                for m in &moe.experts {
                    m.tally(&mut experts);
                }
                let n = moe.experts.len().max(1);
                for (k, v) in experts {
                    *into.entry(k).or_default() += if per_token { v * moe.top_k / n } else { v };
                }
            }
        }
    }
}

/// The output projection.
#[derive(Clone)]
pub enum Head {
    /// The embedding matrix, transposed (tied embeddings).
    Tied,
    /// Its own (hidden, vocab) matrix.
    Matrix(Weight),
}

/// The attention mask of a forward pass.
#[derive(Clone, Copy)]
enum Mask<'a> {
    /// Each new row sees the cache and the new rows up to itself.
    Causal,
    /// The caller's additive mask (none: every row sees everything).
    Given(Option<&'a Tensor>),
}

/// Which logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position: (1, vocab).
    Last,
    /// Every position: (tokens, vocab).
    All,
}

/// Routing counters of the MoE layers, accumulated until taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MoeCounters {
    /// Tokens routed to each expert, per layer: `[layer][expert]` (a token counts once per
    /// expert it is sent to).
    pub tokens_per_expert: Vec<Vec<u64>>,
    /// Time spent computing router scores and choosing experts.
    pub router_s: f64,
}

impl MoeCounters {
    /// Tokens per expert summed over layers.
    pub fn per_expert(&self) -> Vec<u64> {
        let e = self.tokens_per_expert.first().map_or(0, Vec::len);
        (0..e)
            .map(|i| self.tokens_per_expert.iter().map(|l| l[i]).sum())
            .collect()
    }

    /// Load-balance coefficient: the mean over layers of the coefficient of variation of the
    /// tokens each expert received (0 = perfectly balanced; √(E−1) = all to one expert).
    pub fn load_cv(&self) -> f64 {
        let cvs: Vec<f64> = self
            .tokens_per_expert
            .iter()
            .filter(|l| l.iter().any(|&n| n > 0))
            .map(|l| {
                let n = l.len() as f64;
                let mean = l.iter().sum::<u64>() as f64 / n;
                let var = l.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
                var.sqrt() / mean
            })
            .collect();
        if cvs.is_empty() {
            0.0
        } else {
            cvs.iter().sum::<f64>() / cvs.len() as f64
        }
    }
}

/// A Llama-family decoder.
pub struct Decoder {
    pub(crate) cfg: LlamaConfig,
    pub(crate) embed: Table,
    pub(crate) layers: Vec<Layer>,
    pub(crate) norm: Tensor,
    pub(crate) head: Head,
    pub(super) cos: Tensor,
    pub(super) sin: Tensor,
    device: Device,
    moe: Mutex<MoeCounters>,
    /// The KV cache's element type when set ([`with_kv_dtype`](Self::with_kv_dtype)); else
    /// [`kv_dtype`](Self::kv_dtype)'s default.
    kv: Option<DType>,
}

/// Whether a KV cache in `kv` can serve a model computing in `dtype` (on the CPU when `cpu`):
/// f16 or f32 for an f32 model on the CPU (attention widens f16 as it reads it), elsewhere only
/// the model's own dtype (the GPU paths and the generic attention compute in the cache's type).
pub fn kv_dtype_allowed(cpu: bool, dtype: DType, kv: DType) -> bool {
    kv == dtype || (cpu && dtype == DType::F32 && kv == DType::F16)
}

impl Decoder {
    /// Assembles a decoder; `embed` is (vocab, hidden), a head matrix is (hidden, vocab).
    pub fn new(
        cfg: LlamaConfig,
        embed: Table,
        layers: Vec<Layer>,
        norm: Tensor,
        head: Head,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        if layers.len() != cfg.layers {
            return Err(Error::Model(format!(
                "{} layers given for a {}-layer configuration",
                layers.len(),
                cfg.layers
            )));
        }
        let (cos, sin) = rope_tables(&cfg, device)?;
        let experts = cfg.experts;
        Ok(Self {
            cfg,
            embed,
            layers,
            norm,
            head,
            cos,
            sin,
            device: device.clone(),
            moe: Mutex::new(MoeCounters {
                tokens_per_expert: if experts > 0 {
                    vec![vec![0; experts]; cfg.layers]
                } else {
                    Vec::new()
                },
                router_s: 0.0,
            }),
            kv: None,
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

    /// Returns and resets the MoE routing counters (empty for a dense model).
    pub fn take_moe_counters(&self) -> MoeCounters {
        let mut m = self.moe.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = MoeCounters {
            tokens_per_expert: vec![vec![0; self.cfg.experts]; if self.cfg.experts > 0 { self.cfg.layers } else { 0 }],
            router_s: 0.0,
        };
        std::mem::replace(&mut *m, fresh)
    }

    /// The same model with every layer's feed-forward block replaced by `f(layer, block)`
    /// (MoE upcycling); `experts`/`top_k` describe the new blocks.
    pub fn map_ffn(
        &self,
        experts: usize,
        top_k: usize,
        mut f: impl FnMut(usize, &Ffn) -> Result<Ffn>,
    ) -> Result<Decoder> {
        let cfg = LlamaConfig {
            experts,
            top_k,
            ..self.cfg
        };
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Ok(Layer {
                    ffn: f(i, &l.ffn)?,
                    ..l.clone()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Decoder::new(
            cfg,
            self.embed.clone(),
            layers,
            self.norm.clone(),
            self.head.clone(),
            &self.device,
        )
        .map(|d| Decoder { kv: self.kv, ..d })
    }

    /// Bytes of resident weights per type (`f32`, `q4_1`, …), every expert included.
    pub fn weight_types(&self) -> BTreeMap<String, usize> {
        self.tally(false)
    }

    fn tally(&self, per_token: bool) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        tally_tensor(&self.norm, &mut m);
        for l in &self.layers {
            l.tally(&mut m, per_token);
        }
        match &self.head {
            Head::Matrix(w) => w.tally(&mut m),
            Head::Tied => {
                // The embedding is streamed as the head; gathering rows reads almost nothing.
                self.embed.tally(&mut m).expect("a transposed view of the table");
            }
        }
        if !per_token && matches!(self.head, Head::Matrix(_)) {
            self.embed.tally(&mut m).expect("a transposed view of the table");
        }
        m
    }

    /// Bytes of resident weights (every expert included).
    pub fn weight_bytes(&self) -> usize {
        self.weight_types().values().sum()
    }

    /// Bytes of weights one decoded token reads: every matrix it passes once (MoE: the
    /// experts' average share, top-k of E), the head, and one embedding row.
    pub fn weight_bytes_per_token(&self) -> usize {
        let row = if matches!(self.head, Head::Matrix(_)) {
            self.embed.row_bytes()
        } else {
            0
        };
        self.tally(true).values().sum::<usize>() + row
    }

    /// The element type of the activations (f32 when the weights are quantized).
    pub fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    /// The element type the KV cache holds keys and values in: the one chosen with
    /// [`with_kv_dtype`](Self::with_kv_dtype), else f16 for an f32 model on the CPU (half the
    /// bytes a decode step's attention reads, as llama.cpp's default cache; attention computes
    /// in f32 whatever the cache holds) and the model's dtype elsewhere.
    pub fn kv_dtype(&self) -> DType {
        self.kv
            .unwrap_or(if self.device.is_cpu() && self.dtype() == DType::F32 {
                DType::F16
            } else {
                self.dtype()
            })
    }

    /// The same model with its KV cache held in `dtype`: f16 or f32 for an f32 model on the
    /// CPU; elsewhere only the model's own dtype (the GPU paths and the generic attention
    /// compute in the cache's type).
    pub fn with_kv_dtype(mut self, dtype: DType) -> Result<Decoder> {
        if !kv_dtype_allowed(self.device.is_cpu(), self.dtype(), dtype) {
            return Err(Error::Model(format!(
                "a KV cache in {dtype:?} is not supported for a {:?} model on {}: the cache is f16 or f32 for an f32 model on the CPU, and the model's dtype otherwise",
                self.dtype(),
                if self.device.is_cpu() { "the CPU" } else { "a GPU" },
            )));
        }
        self.kv = Some(dtype);
        Ok(self)
    }

    pub(super) fn map_weights(
        &self,
        f: impl Fn(&Weight) -> Result<Weight>,
        g: impl Fn(&Tensor) -> Result<Tensor>,
        embed: Table,
    ) -> Result<Decoder> {
        // A KV cache type chosen for one dtype does not carry over to another.
        let embed_dtype = embed.dtype();
        let layers = self.layers.iter().map(|l| l.map(&f, &g)).collect::<Result<Vec<_>>>()?;
        let head = match &self.head {
            Head::Tied => Head::Tied,
            Head::Matrix(w) => Head::Matrix(f(w)?),
        };
        Ok(Decoder {
            moe: Mutex::new(self.moe.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            cfg: self.cfg,
            embed,
            layers,
            norm: g(&self.norm)?,
            head,
            cos: g(&self.cos)?,
            sin: g(&self.sin)?,
            device: self.device.clone(),
            kv: self.kv.filter(|_| embed_dtype == self.dtype()),
        })
    }

    /// The same model with every weight (and the RoPE tables) in `dtype`; activations and
    /// the KV cache follow the weights, logits are returned in F32 whatever the dtype.
    /// Quantized weights refuse any dtype but f32.
    pub fn to_dtype(&self, dtype: DType) -> Result<Decoder> {
        self.map_weights(
            |w| w.to_dtype(dtype),
            |t| Ok(t.to_dtype(dtype)?),
            self.embed.to_dtype(dtype)?,
        )
    }

    /// The same model with its matrices held as `format` asks (on this decoder's device).
    pub fn convert_weights(&self, format: WeightFormat) -> Result<Decoder> {
        let device = self.device.clone();
        if format == WeightFormat::Q8_0 && !device.is_cpu() {
            return Err(Error::Model(
                "weights = \"q8_0\" runs on the CPU only; use weights = \"f32\" (or \"as-file\") on a GPU".into(),
            ));
        }
        let named = |e: Error| match format {
            WeightFormat::Q8_0 => Error::Model(format!(
                "weights = \"q8_0\": {e}; use weights = \"f32\" or \"as-file\" for this model"
            )),
            _ => e,
        };
        let embed = self.embed.convert(format, &device).map_err(named)?;
        if embed.dtype() != self.dtype() {
            // Dequantized blocks are f32; a bf16 model keeps its dtype.
            return self
                .map_weights(|w| w.convert(format, &device), |t| Ok(t.clone()), embed)
                .map_err(named)?
                .to_dtype(self.dtype());
        }
        self.map_weights(|w| w.convert(format, &device), |t| Ok(t.clone()), embed)
            .map_err(named)
    }

    /// Runs `tokens` after what `cache` holds, at positions `cache.len()..`, with a causal
    /// mask, appending their keys and values to the cache.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, logits: Logits) -> Result<Tensor> {
        self.forward_depth(tokens, cache, logits, self.cfg.layers)
    }

    /// Like [`forward`](Self::forward) but through the first `depth` layers only, then the
    /// final norm and head (early exit: the self-speculative draft). `cache` needs at least
    /// `depth` layers.
    pub fn forward_depth(&self, tokens: &[u32], cache: &mut KvCache, logits: Logits, depth: usize) -> Result<Tensor> {
        let start = cache.len();
        let t = tokens.len();
        if start + t > self.cfg.max_seq {
            return Err(Error::Request(format!(
                "sequence of {} tokens exceeds the model's context of {}",
                start + t,
                self.cfg.max_seq
            )));
        }
        let positions: Vec<u32> = (start as u32..(start + t) as u32).collect();
        self.forward_masked(tokens, &positions, Mask::Causal, cache, logits, depth)
    }

    /// General forward: explicit positions and an optional additive mask of shape
    /// (tokens, cache.len() + tokens) (0 = attend, −∞ = blocked).
    pub fn forward_at(
        &self,
        tokens: &[u32],
        positions: &[u32],
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        logits: Logits,
    ) -> Result<Tensor> {
        self.forward_at_depth(tokens, positions, mask, cache, logits, self.cfg.layers)
    }

    /// The general forward through the first `depth` layers.
    ///
    /// The pass runs inside candle's device context (on CPU, its thread pool), so the many
    /// short parallel sections of a forward do not each hand off to another thread: on a
    /// 2-vCPU VM those hand-offs doubled decode time when the other vCPU was idle.
    pub fn forward_at_depth(
        &self,
        tokens: &[u32],
        positions: &[u32],
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        logits: Logits,
        depth: usize,
    ) -> Result<Tensor> {
        self.forward_masked(tokens, positions, Mask::Given(mask), cache, logits, depth)
    }

    fn forward_masked(
        &self,
        tokens: &[u32],
        positions: &[u32],
        mask: Mask,
        cache: &mut KvCache,
        logits: Logits,
        depth: usize,
    ) -> Result<Tensor> {
        if tokens.is_empty() {
            return Err(Error::Request("forward needs at least one token".into()));
        }
        if positions.len() != tokens.len() {
            return Err(Error::Request(format!(
                "{} positions given for {} tokens",
                positions.len(),
                tokens.len()
            )));
        }
        if let Some(&p) = positions.iter().find(|&&p| p as usize >= self.cfg.max_seq) {
            return Err(Error::Request(format!(
                "position {p} exceeds the model's context of {}",
                self.cfg.max_seq
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&id| id as usize >= self.cfg.vocab_size) {
            return Err(Error::Request(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.cfg.vocab_size
            )));
        }
        if depth == 0 || depth > self.cfg.layers {
            return Err(Error::Request(format!(
                "exit depth {depth} must be between 1 and the model's {} layers",
                self.cfg.layers
            )));
        }
        if cache.layers() < depth {
            return Err(Error::Request(format!(
                "the cache holds {} layers but the pass runs {depth}",
                cache.layers()
            )));
        }
        // The pass may run on a pool's thread: it takes this thread's fused-path choice along.
        let chosen = super::fused::chosen();
        let mut pass = || {
            super::fused::within(chosen, || {
                self.forward_in_context(tokens, positions, mask, cache, logits, depth)
            })
        };
        let (out, fused_steps) = self.device.clone().with_context(|| {
            // Only CPU passes have parallel products to start; on a GPU the spinning would be
            // CPU energy spent for nothing.
            if tokens.len() <= super::awake::SHORT_PASS && self.device.is_cpu() {
                super::awake::with_workers_awake(pass)
            } else {
                pass()
            }
        });
        super::fused::adopt(fused_steps);
        out
    }

    fn forward_in_context(
        &self,
        tokens: &[u32],
        positions: &[u32],
        mask: Mask,
        cache: &mut KvCache,
        logits: Logits,
        depth: usize,
    ) -> Result<Tensor> {
        if tokens.len() == 1
            && matches!(mask, Mask::Causal)
            && let Some(logits) = super::fused::decode_step(self, tokens[0], positions[0] as usize, cache, depth)?
        {
            cache.len += 1;
            return Ok(logits);
        }
        let cfg = &self.cfg;
        let (t, hd, h, kvh) = (tokens.len(), cfg.head_dim, cfg.heads, cfg.kv_heads);
        let g = h / kvh;
        let pos = Tensor::new(positions, &self.device)?;
        let cos = self.cos.index_select(&pos, 0)?;
        let sin = self.sin.index_select(&pos, 0)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let eps = cfg.rms_eps as f32;
        let kv_dtype = self.kv_dtype();

        // Causal attention on the CPU in F32 is one op computed alike for any number of rows;
        // otherwise a mask is added to the scores (the causal one built here, in the
        // model's dtype).
        let fused = matches!(mask, Mask::Causal) && self.device.is_cpu() && self.dtype() == DType::F32;
        let mask = match mask {
            Mask::Causal if fused || t == 1 => None,
            Mask::Causal => Some(std::borrow::Cow::Owned(
                causal_mask(cache.len(), t, &self.device)?.to_dtype(self.dtype())?,
            )),
            Mask::Given(Some(m)) if m.dtype() != self.dtype() => {
                Some(std::borrow::Cow::Owned(m.to_dtype(self.dtype())?))
            }
            Mask::Given(m) => m.map(std::borrow::Cow::Borrowed),
        };
        let mut x = self.embed.lookup(tokens, &self.device)?;
        for (li, layer) in self.layers.iter().take(depth).enumerate() {
            let hn = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let mut qkv = layer.qkv.matmul(&hn)?;
            if let Some(b) = &layer.qkv_bias {
                qkv = qkv.broadcast_add(b)?;
            }
            let (q, k, v) = (
                qkv.narrow(1, 0, h * hd)?,
                qkv.narrow(1, h * hd, kvh * hd)?,
                qkv.narrow(1, (h + kvh) * hd, kvh * hd)?,
            );
            let q = q.reshape((1, t, h, hd))?.transpose(1, 2)?.contiguous()?;
            let k = k.reshape((1, t, kvh, hd))?.transpose(1, 2)?.contiguous()?;
            let v = v.reshape((t, kvh, hd))?.transpose(0, 1)?.contiguous()?;
            let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?.squeeze(0)?;
            let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?.squeeze(0)?;
            // The fused CPU path writes the new keys and values into the cache in place (in
            // the cache's type) and reads them there; the others build whole tensors, stored
            // in the cache's type and computed with in the model's (the same values).
            let (k, v) = if fused {
                cache.append(li, &k, &v, kv_dtype)?
            } else {
                let (k, v) = (k.to_dtype(kv_dtype)?, v.to_dtype(kv_dtype)?);
                let (k, v) = match cache.view(li)? {
                    Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 1)?, Tensor::cat(&[&pv, &v], 1)?),
                    None => (k, v),
                };
                cache.set(li, k.clone(), v.clone());
                (k.to_dtype(self.dtype())?, v.to_dtype(self.dtype())?)
            };
            let total = k.dim(1)?;
            if let Some(m) = &mask
                && m.dims() != [t, total]
            {
                return Err(Error::Request(format!(
                    "mask shape {:?} does not match (tokens {t}, cached + new {total})",
                    m.dims()
                )));
            }

            let y = if fused {
                super::attention::attend(&q, &k, &v, scale)?
            } else {
                // Grouped-query attention without copying K/V per head: fold the g query
                // heads sharing a KV head into the row dimension.
                let qg = q.reshape((kvh, g * t, hd))?;
                let mut att = qg.matmul(&k.t()?)?.affine(scale, 0.0)?;
                if let Some(m) = &mask {
                    att = att
                        .reshape((h, t, total))?
                        .broadcast_add(m.as_ref())?
                        .reshape((kvh, g * t, total))?;
                }
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                att.matmul(&v)?
                    .reshape((h, t, hd))?
                    .transpose(0, 1)?
                    .reshape((t, h * hd))?
            };
            x = (x + layer.wo.matmul(&y)?)?;

            let hn = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let y = match &layer.ffn {
                Ffn::Dense(mlp) => mlp.forward(&hn)?,
                Ffn::Moe(moe) => self.moe_forward(li, moe, &hn)?,
            };
            x = (x + y)?;
        }
        cache.len += t;
        let x = match logits {
            Logits::Last => x.narrow(0, t - 1, 1)?,
            Logits::All => x,
        };
        let x = candle_nn::ops::rms_norm(&x, &self.norm, eps)?;
        let logits = match &self.head {
            Head::Tied => self.embed.head(&x)?,
            Head::Matrix(w) => w.matmul(&x)?,
        };
        Ok(if logits.dtype() == DType::F32 {
            logits
        } else {
            logits.to_dtype(DType::F32)?
        })
    }

    /// Routes each row of `x` (tokens, hidden) to its top-k experts and mixes their outputs.
    fn moe_forward(&self, layer: usize, moe: &Moe, x: &Tensor) -> Result<Tensor> {
        let started = Instant::now();
        let t = x.dim(0)?;
        let e = moe.experts.len();
        let probs = candle_nn::ops::softmax_last_dim(&mm(x, &moe.router)?)?;
        let probs: Vec<Vec<f32>> = probs.to_dtype(DType::F32)?.to_vec2()?;
        // For every expert: the token rows sent to it and their mixing weights.
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); e];
        let mut weights: Vec<Vec<f32>> = vec![Vec::new(); e];
        let mut order: Vec<usize> = Vec::with_capacity(e);
        for (ti, p) in probs.iter().enumerate() {
            order.clear();
            order.extend(0..e);
            // Highest probability first; ties to the lower expert index (deterministic).
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
            let chosen = &order[..moe.top_k];
            let sum: f32 = chosen.iter().map(|&i| p[i]).sum();
            for &i in chosen {
                rows[i].push(ti as u32);
                weights[i].push(p[i] / sum);
            }
        }
        {
            let mut c = self.moe.lock().unwrap_or_else(|e| e.into_inner());
            for (i, r) in rows.iter().enumerate() {
                c.tokens_per_expert[layer][i] += r.len() as u64;
            }
            c.router_s += started.elapsed().as_secs_f64();
        }
        let mut out = x.zeros_like()?;
        for (i, expert) in moe.experts.iter().enumerate() {
            if rows[i].is_empty() {
                continue;
            }
            let n = rows[i].len();
            let idx = Tensor::new(rows[i].as_slice(), &self.device)?;
            let xi = if n == t { x.clone() } else { x.index_select(&idx, 0)? };
            let w = Tensor::from_vec(std::mem::take(&mut weights[i]), (n, 1), &self.device)?.to_dtype(x.dtype())?;
            let y = expert.forward(&xi)?.broadcast_mul(&w)?;
            out = out.index_add(&idx, &y, 0)?;
        }
        Ok(out)
    }

    /// The weights under Hugging Face names in (out, in) layout, as a Llama/Mixtral
    /// checkpoint would hold them (quantized ones dequantized): for exporting, and for
    /// checking against reference implementations.
    pub fn hf_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let dev = &self.device;
        let mut out = vec![
            ("model.embed_tokens.weight".to_string(), self.embed.to_dense(dev)?),
            ("model.norm.weight".to_string(), self.norm.clone()),
        ];
        if let Head::Matrix(w) = &self.head {
            out.push(("lm_head.weight".into(), w.to_dense(dev)?.t()?.contiguous()?));
        }
        let tr = |w: &Tensor| -> Result<Tensor> { Ok(w.t()?.contiguous()?) };
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            let (q, kv) = l.q_kv;
            out.push((format!("{p}.input_layernorm.weight"), l.attn_norm.clone()));
            out.push((format!("{p}.post_attention_layernorm.weight"), l.ffn_norm.clone()));
            out.push((format!("{p}.self_attn.q_proj.weight"), tr(&l.qkv.columns(0, q)?)?));
            out.push((format!("{p}.self_attn.k_proj.weight"), tr(&l.qkv.columns(q, kv)?)?));
            out.push((format!("{p}.self_attn.v_proj.weight"), tr(&l.qkv.columns(q + kv, kv)?)?));
            out.push((format!("{p}.self_attn.o_proj.weight"), tr(&l.wo.to_dense(dev)?)?));
            if let Some(b) = &l.qkv_bias {
                out.push((format!("{p}.self_attn.q_proj.bias"), b.narrow(0, 0, q)?));
                out.push((format!("{p}.self_attn.k_proj.bias"), b.narrow(0, q, kv)?));
                out.push((format!("{p}.self_attn.v_proj.bias"), b.narrow(0, q + kv, kv)?));
            }
            match &l.ffn {
                Ffn::Dense(m) => {
                    out.push((format!("{p}.mlp.gate_proj.weight"), tr(&m.gate()?)?));
                    out.push((format!("{p}.mlp.up_proj.weight"), tr(&m.up()?)?));
                    out.push((format!("{p}.mlp.down_proj.weight"), tr(&m.down()?)?));
                }
                Ffn::Moe(moe) => {
                    out.push((format!("{p}.block_sparse_moe.gate.weight"), tr(&moe.router)?));
                    for (j, m) in moe.experts.iter().enumerate() {
                        let q = format!("{p}.block_sparse_moe.experts.{j}");
                        out.push((format!("{q}.w1.weight"), tr(&m.gate()?)?));
                        out.push((format!("{q}.w2.weight"), tr(&m.down()?)?));
                        out.push((format!("{q}.w3.weight"), tr(&m.up()?)?));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Additive causal mask for `t` new tokens after `start` cached ones: (t, start + t).
pub fn causal_mask(start: usize, t: usize, device: &Device) -> Result<Tensor> {
    let total = start + t;
    let m: Vec<f32> = (0..t)
        .flat_map(|i| (0..total).map(move |j| if j <= start + i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Ok(Tensor::from_vec(m, (t, total), device)?)
}

/// RoPE cos/sin tables, (max_seq, head_dim / 2), computed here (never read from weights).
fn rope_tables(cfg: &LlamaConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = cfg.head_dim / 2;
    let mut cos = Vec::with_capacity(cfg.max_seq * half);
    let mut sin = Vec::with_capacity(cfg.max_seq * half);
    for p in 0..cfg.max_seq {
        for i in 0..half {
            let inv_freq = 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / cfg.head_dim as f64);
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

/// The last row of a logits tensor as a vector.
pub fn last_row(logits: &Tensor) -> Result<Vec<f32>> {
    let n = logits.dim(0)?;
    Ok(logits.i(n - 1)?.to_vec1()?)
}

/// Every row of a (tokens, vocab) logits tensor.
pub fn all_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(logits.to_vec2()?)
}
