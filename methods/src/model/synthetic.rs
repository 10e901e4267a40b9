//! The embedded default model: synthetic Llama-family weights from a seeded generator.
//!
//! Real compute, meaningless text. Weights are drawn from N(0, σ²) with the project's own
//! seeded ChaCha stream (candle's CPU RNG cannot be seeded), so the same `seed` gives the
//! same model — and the same greedy tokens — on every machine. Scales follow the usual
//! 1/√fan-in initialisation; `residual_scale` multiplies the output projections of every
//! block, setting how much each layer moves the residual stream (and so how closely a
//! shallow draft agrees with the full model, for speculative decoding).

use candle_core::{Device, Tensor};
use serde::Deserialize;

use oae_core::rng::{seeded, standard_normal};

use super::LoadedModel;
use super::decoder::{Decoder, Ffn, Head, Layer, LlamaConfig, Mlp, Moe, Table, Weight};
use super::tokenizer::ByteTokenizer;
use super::weight::WeightFormat;
use crate::error::{Error, Result};

/// Shape and seed of the synthetic model (every key optional).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticSpec {
    /// Weight seed (independent of the suite seed, so the model is the same across runs).
    pub seed: u64,
    /// Decoder layers.
    pub layers: usize,
    /// Residual width.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// FFN inner width.
    pub ffn: usize,
    /// Vocabulary (≥ 258: 256 bytes + begin + end markers).
    pub vocab: usize,
    /// Context length.
    pub max_seq: usize,
    /// Scale of each block's output projection.
    pub residual_scale: f64,
    /// Scale of the output head (larger = peakier next-token distributions).
    pub logit_scale: f64,
    /// Experts per layer (0 = a dense SwiGLU FFN; otherwise a synthetic sparse MoE whose
    /// experts each have `ffn` inner width).
    pub experts: usize,
    /// Experts each token is routed to (MoE only).
    pub top_k: usize,
    /// How the matrices are held: f32 (`as-file`, the default) or q8_0.
    pub weights: WeightFormat,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            seed: 0,
            layers: 4,
            hidden: 128,
            heads: 4,
            kv_heads: 2,
            ffn: 384,
            vocab: 512,
            max_seq: 2048,
            residual_scale: 1.0,
            logit_scale: 4.0,
            experts: 0,
            top_k: 2,
            weights: WeightFormat::AsFile,
        }
    }
}

impl SyntheticSpec {
    /// The decoder shape.
    pub fn config(&self) -> LlamaConfig {
        LlamaConfig {
            vocab_size: self.vocab,
            hidden: self.hidden,
            layers: self.layers,
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.hidden.checked_div(self.heads).unwrap_or(0),
            ffn: self.ffn,
            experts: self.experts,
            top_k: if self.experts > 0 { self.top_k } else { 0 },
            qkv_bias: false,
            tied_embeddings: false,
            max_seq: self.max_seq,
            rope_theta: 10_000.0,
            rms_eps: 1e-5,
        }
    }

    /// Checks the shape and scales.
    pub fn check(&self) -> Result<()> {
        if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            return Err(Error::Model(format!(
                "hidden ({}) must be a positive multiple of heads ({})",
                self.hidden, self.heads
            )));
        }
        self.config().validate()?;
        if self.vocab < ByteTokenizer::VOCAB {
            return Err(Error::Model(format!(
                "synthetic vocab must be at least {} for the byte tokenizer, got {}",
                ByteTokenizer::VOCAB,
                self.vocab
            )));
        }
        if !(self.residual_scale.is_finite()
            && self.residual_scale >= 0.0
            && self.logit_scale.is_finite()
            && self.logit_scale > 0.0)
        {
            return Err(Error::Model("residual_scale must be >= 0 and logit_scale > 0".into()));
        }
        Ok(())
    }

    /// Generates the weights on `device`.
    pub fn build(&self, device: &Device) -> Result<LoadedModel> {
        self.check()?;
        let cfg = self.config();
        let mut rng = seeded(self.seed, &["synthetic-weights"]);
        let mut normal = |rows: usize, cols: usize, std: f64| -> Result<Tensor> {
            let v: Vec<f32> = (0..rows * cols)
                .map(|_| (standard_normal(&mut rng) * std) as f32)
                .collect();
            Ok(Tensor::from_vec(v, (rows, cols), device)?)
        };
        let (d, kv, f) = (cfg.hidden, cfg.kv_heads * cfg.head_dim(), cfg.ffn);
        let inv = |n: usize| 1.0 / (n as f64).sqrt();
        let embed = normal(cfg.vocab_size, d, 1.0)?;
        let mut layers = Vec::with_capacity(cfg.layers);
        for _ in 0..cfg.layers {
            let attn_norm = Tensor::ones(d, candle_core::DType::F32, device)?;
            let wq = normal(d, d, inv(d))?;
            let wk = normal(d, kv, inv(d))?;
            let wv = normal(d, kv, inv(d))?;
            let wo = normal(d, d, self.residual_scale * inv(d))?;
            let mut mlp = || -> Result<Mlp> {
                Mlp::new(
                    Weight::Dense(normal(d, f, inv(d))?),
                    Weight::Dense(normal(d, f, inv(d))?),
                    Weight::Dense(normal(f, d, self.residual_scale * inv(f))?),
                )
            };
            let ffn = if cfg.experts == 0 {
                Ffn::Dense(mlp()?)
            } else {
                let experts = (0..cfg.experts).map(|_| mlp()).collect::<Result<Vec<_>>>()?;
                Ffn::Moe(Moe {
                    router: normal(d, cfg.experts, inv(d))?,
                    experts,
                    top_k: cfg.top_k,
                })
            };
            layers.push(Layer::new(
                attn_norm,
                [Weight::Dense(wq), Weight::Dense(wk), Weight::Dense(wv)],
                Weight::Dense(wo),
                None,
                Tensor::ones(d, candle_core::DType::F32, device)?,
                ffn,
            )?);
        }
        let norm = Tensor::ones(d, candle_core::DType::F32, device)?;
        let head = normal(d, cfg.vocab_size, self.logit_scale * inv(d))?;
        let moe = if cfg.experts > 0 {
            format!(", moe {}x top-{}", cfg.experts, cfg.top_k)
        } else {
            String::new()
        };
        Ok(LoadedModel {
            decoder: Decoder::new(
                cfg,
                Table::Dense(embed),
                layers,
                norm,
                Head::Matrix(Weight::Dense(head)),
                device,
            )?,
            tokenizer: Box::new(ByteTokenizer),
            name: format!("synthetic(seed={}{moe})", self.seed),
            chat: None,
            stops: vec![ByteTokenizer::EOS],
        })
    }
}
