//! Loading real models: GGUF files (Llama architecture) and Hugging Face directories
//! (`config.json` + `*.safetensors` + `tokenizer.json`; Llama, Mistral, Qwen2 and
//! Mixtral). Weights become F32 (GGUF blocks are dequantized at load: on small CPUs
//! candle's quantized matmuls measured slower than F32), projections are stored
//! (in, out) as the decoder wants them, and every tensor's shape is checked against the
//! configuration before the model is assembled, so a wrong file fails at load with the
//! tensor's name instead of producing garbage.

mod gguf;
mod hf;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::LoadedModel;
use super::chat::ChatTemplate;
use super::decoder::{Decoder, Ffn, Head, Layer, LlamaConfig, Mlp, Moe};
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

/// A set of named F32 tensors and how to fetch them with checks.
struct Weights<'a> {
    src: Source<'a>,
    map: HashMap<String, Tensor>,
}

impl Weights<'_> {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.map.remove(name).ok_or_else(|| {
            self.src.err(format_args!(
                "tensor `{name}` is missing; the file does not hold the weights this architecture needs"
            ))
        })?;
        expect_shape(&self.src, name, &t, shape)?;
        Ok(t)
    }

    /// An (out, in) matrix, returned as (in, out).
    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Tensor> {
        Ok(self.take(name, &[out, inp])?.t()?.contiguous()?)
    }

    fn optional(&mut self, name: &str) -> Option<Tensor> {
        self.map.remove(name)
    }
}

/// Builds the decoder from weights named in Hugging Face style.
fn assemble_hf(cfg: LlamaConfig, mut w: Weights, device: &Device) -> Result<Decoder> {
    let (d, hd, f) = (cfg.hidden, cfg.head_dim, cfg.ffn);
    let (q, kv) = (cfg.heads * hd, cfg.kv_heads * hd);
    let embed = w.take("model.embed_tokens.weight", &[cfg.vocab_size, d])?;
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
                &w.linear(&format!("{p}.mlp.gate_proj.weight"), f, d)?,
                &w.linear(&format!("{p}.mlp.up_proj.weight"), f, d)?,
                w.linear(&format!("{p}.mlp.down_proj.weight"), d, f)?,
            )?)
        } else {
            let m = format!("{p}.block_sparse_moe");
            let router = w.linear(&format!("{m}.gate.weight"), cfg.experts, d)?;
            let experts = (0..cfg.experts)
                .map(|j| {
                    Mlp::new(
                        &w.linear(&format!("{m}.experts.{j}.w1.weight"), f, d)?,
                        &w.linear(&format!("{m}.experts.{j}.w3.weight"), f, d)?,
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
        layers.push(Layer {
            attn_norm: w.take(&format!("{p}.input_layernorm.weight"), &[d])?,
            wq: w.linear(&format!("{p}.self_attn.q_proj.weight"), q, d)?,
            wk: w.linear(&format!("{p}.self_attn.k_proj.weight"), kv, d)?,
            wv: w.linear(&format!("{p}.self_attn.v_proj.weight"), kv, d)?,
            wo: w.linear(&format!("{p}.self_attn.o_proj.weight"), d, q)?,
            bias,
            ffn_norm: w.take(&format!("{p}.post_attention_layernorm.weight"), &[d])?,
            ffn,
            qkv: None,
        });
    }
    let norm = w.take("model.norm.weight", &[d])?;
    let head = if cfg.tied_embeddings {
        Head::Tied
    } else {
        match w.optional("lm_head.weight") {
            Some(t) => {
                expect_shape(&w.src, "lm_head.weight", &t, &[cfg.vocab_size, d])?;
                Head::Matrix(t.t()?.contiguous()?)
            }
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
