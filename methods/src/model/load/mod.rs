//! Loading real models: GGUF files (Llama architecture) and Hugging Face directories
//! (`config.json` + `*.safetensors` + `tokenizer.json`; Llama, Mistral, Qwen2 and
//! Mixtral). GGUF blocks of a format with a kernel ([`super::quant`]) stay quantized, float
//! tensors become F32 (HF: their own dtype) with projections stored (in, out) as the decoder
//! wants them; the model spec's `weights` key then converts (see [`super::WeightFormat`]).
//! Every tensor's shape is checked against the configuration before the model is assembled, so a wrong file fails at load with the
//! tensor's name instead of producing garbage.

mod gguf;
mod hf;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::LoadedModel;
use super::chat::ChatTemplate;
use super::decoder::{Decoder, Ffn, Head, Layer, LlamaConfig, Mlp, Moe, Table, Weight};
use super::quant::QMatrix;
use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};

pub use gguf::load_gguf;
pub use hf::{load_hf, save_hf};

/// Contexts longer than this are capped (the RoPE tables and any cache are sized by it);
/// a spec's `max_seq` raises or lowers it.
pub const DEFAULT_MAX_SEQ: usize = 8192;

/// Where a named weight comes from, for error messages.
struct Source<'a> {
    file: &'a Path,
}

impl Source<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::Model(format!("{}: {msg}", self.file.display()))
    }
}

/// Checks a weight's shape.
fn expect_shape(src: &Source, name: &str, t: &Tensor, want: &[usize]) -> Result<()> {
    if t.dims() != want {
        return Err(src.err(format_args!(
            "tensor `{name}` has shape {:?}, the configuration implies {want:?}",
            t.dims()
        )));
    }
    Ok(())
}

/// A named weight as the file holds it.
enum Raw {
    /// Float values, matrices (out, in).
    Dense(Tensor),
    /// Quantized (out, in) rows.
    Quant(QMatrix),
}

/// A set of named weights and how to fetch them with checks.
struct Weights<'a> {
    src: Source<'a>,
    map: HashMap<String, Raw>,
}

impl Weights<'_> {
    fn remove(&mut self, name: &str) -> Result<Raw> {
        self.map.remove(name).ok_or_else(|| {
            self.src.err(format_args!(
                "tensor `{name}` is missing; the file does not hold the weights this architecture needs"
            ))
        })
    }

    /// A vector or a float matrix.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        match self.remove(name)? {
            Raw::Dense(t) => {
                expect_shape(&self.src, name, &t, shape)?;
                Ok(t)
            }
            Raw::Quant(q) => Err(self.src.err(format_args!(
                "tensor `{name}` is quantized ({q:?}) where float values of shape {shape:?} are expected"
            ))),
        }
    }

    /// An (out, in) matrix as a projection.
    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Weight> {
        let raw = self.remove(name)?;
        self.projection(name, raw, out, inp)
    }

    fn projection(&self, name: &str, raw: Raw, out: usize, inp: usize) -> Result<Weight> {
        match raw {
            Raw::Dense(t) => {
                expect_shape(&self.src, name, &t, &[out, inp])?;
                Ok(Weight::Dense(t.t()?.contiguous()?))
            }
            Raw::Quant(q) => {
                if (q.rows(), q.cols()) != (out, inp) {
                    return Err(self.src.err(format_args!(
                        "tensor `{name}` has shape [{}, {}], the configuration implies [{out}, {inp}]",
                        q.rows(),
                        q.cols()
                    )));
                }
                Ok(Weight::Quant(Arc::new(q)))
            }
        }
    }

    /// The (vocab, hidden) embedding table.
    fn table(&mut self, name: &str, vocab: usize, hidden: usize) -> Result<Table> {
        Ok(match self.linear(name, vocab, hidden)? {
            Weight::Dense(t) => Table::Dense(t.t()?.contiguous()?),
            Weight::Quant(q) => Table::Quant(q),
        })
    }

    fn optional(&mut self, name: &str) -> Option<Raw> {
        self.map.remove(name)
    }
}

/// Builds the decoder from weights named in Hugging Face style.
fn assemble_hf(cfg: LlamaConfig, mut w: Weights, device: &Device) -> Result<Decoder> {
    let (d, hd, f) = (cfg.hidden, cfg.head_dim, cfg.ffn);
    let (q, kv) = (cfg.heads * hd, cfg.kv_heads * hd);
    let embed = w.table("model.embed_tokens.weight", cfg.vocab_size, d)?;
    let mut layers = Vec::with_capacity(cfg.layers);
    for i in 0..cfg.layers {
        let p = format!("model.layers.{i}");
        let bias = if cfg.qkv_bias {
            Some((
                w.take(&format!("{p}.self_attn.q_proj.bias"), &[q])?,
                w.take(&format!("{p}.self_attn.k_proj.bias"), &[kv])?,
                w.take(&format!("{p}.self_attn.v_proj.bias"), &[kv])?,
            ))
        } else {
            None
        };
        let ffn = if cfg.experts == 0 {
            Ffn::Dense(Mlp::new(
                w.linear(&format!("{p}.mlp.gate_proj.weight"), f, d)?,
                w.linear(&format!("{p}.mlp.up_proj.weight"), f, d)?,
                w.linear(&format!("{p}.mlp.down_proj.weight"), d, f)?,
            )?)
        } else {
            let m = format!("{p}.block_sparse_moe");
            let router = w
                .take(&format!("{m}.gate.weight"), &[cfg.experts, d])?
                .t()?
                .contiguous()?;
            let experts = (0..cfg.experts)
                .map(|j| {
                    Mlp::new(
                        w.linear(&format!("{m}.experts.{j}.w1.weight"), f, d)?,
                        w.linear(&format!("{m}.experts.{j}.w3.weight"), f, d)?,
                        w.linear(&format!("{m}.experts.{j}.w2.weight"), d, f)?,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            Ffn::Moe(Moe {
                router,
                experts,
                top_k: cfg.top_k,
            })
        };
        layers.push(Layer::new(
            w.take(&format!("{p}.input_layernorm.weight"), &[d])?,
            [
                w.linear(&format!("{p}.self_attn.q_proj.weight"), q, d)?,
                w.linear(&format!("{p}.self_attn.k_proj.weight"), kv, d)?,
                w.linear(&format!("{p}.self_attn.v_proj.weight"), kv, d)?,
            ],
            w.linear(&format!("{p}.self_attn.o_proj.weight"), d, q)?,
            bias,
            w.take(&format!("{p}.post_attention_layernorm.weight"), &[d])?,
            ffn,
        )?);
    }
    let norm = w.take("model.norm.weight", &[d])?;
    let head = if cfg.tied_embeddings {
        Head::Tied
    } else {
        match w.optional("lm_head.weight") {
            Some(raw) => Head::Matrix(w.projection("lm_head.weight", raw, cfg.vocab_size, d)?),
            None => Head::Tied,
        }
    };
    let cfg = LlamaConfig {
        tied_embeddings: matches!(head, Head::Tied),
        ..cfg
    };
    Decoder::new(cfg, embed, layers, norm, head, device).map_err(|e| w.src.err(e))
}

/// Checks the tokenizer fits the model and collects the stop tokens.
fn finish(
    decoder: Decoder,
    tokenizer: Box<dyn Tokenizer>,
    chat: Option<ChatTemplate>,
    name: String,
    src: &Source,
) -> Result<LoadedModel> {
    let vocab = decoder.config().vocab_size;
    if tokenizer.vocab_size() > vocab {
        return Err(src.err(format_args!(
            "the tokenizer has {} tokens but the model's embedding only {vocab}",
            tokenizer.vocab_size()
        )));
    }
    let mut stops: Vec<u32> = tokenizer.eos().into_iter().collect();
    if let Some(id) = chat
        .as_ref()
        .and_then(|c| c.end_of_turn())
        .and_then(|t| tokenizer.token_id(t))
        && !stops.contains(&id)
    {
        stops.push(id);
    }
    Ok(LoadedModel {
        decoder,
        tokenizer,
        name,
        chat,
        stops,
    })
}
