//! Loading real models: GGUF files (Llama architecture) and Hugging Face directories
//! (`config.json` + `*.safetensors` + `tokenizer.json`; Llama, Mistral, Qwen2 and
//! Mixtral). Weights become F32 (GGUF blocks are dequantized at load: on small CPUs the
//! quantized matmuls were slower than F32, see design/methods.md), projections are stored
//! (in, out) as the decoder wants them, and every tensor's shape is checked against the
//! configuration before the model is assembled, so a wrong file fails at load with the
//! tensor's name instead of producing garbage.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::LoadedModel;
use super::chat::ChatTemplate;
use super::decoder::{Decoder, Ffn, Head, Layer, LlamaConfig, Mlp, Moe};
use super::tokenizer::{HfTokenizer, Tokenizer};
use crate::error::{Error, Result};

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
            Ffn::Dense(Mlp {
                gate: w.linear(&format!("{p}.mlp.gate_proj.weight"), f, d)?,
                up: w.linear(&format!("{p}.mlp.up_proj.weight"), f, d)?,
                down: w.linear(&format!("{p}.mlp.down_proj.weight"), d, f)?,
            })
        } else {
            let m = format!("{p}.block_sparse_moe");
            let router = w.linear(&format!("{m}.gate.weight"), cfg.experts, d)?;
            let experts = (0..cfg.experts)
                .map(|j| {
                    Ok(Mlp {
                        gate: w.linear(&format!("{m}.experts.{j}.w1.weight"), f, d)?,
                        down: w.linear(&format!("{m}.experts.{j}.w2.weight"), d, f)?,
                        up: w.linear(&format!("{m}.experts.{j}.w3.weight"), f, d)?,
                    })
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

// ---------------------------------------------------------------------------------------
// GGUF

fn meta<'a>(ct: &'a gguf_file::Content, src: &Source, key: &str) -> Result<&'a gguf_file::Value> {
    ct.metadata
        .get(key)
        .ok_or_else(|| src.err(format_args!("metadata key `{key}` is missing")))
}

fn meta_uint(v: &gguf_file::Value) -> Option<u64> {
    use gguf_file::Value::*;
    match *v {
        U8(x) => Some(x as u64),
        U16(x) => Some(x as u64),
        U32(x) => Some(x as u64),
        U64(x) => Some(x),
        I8(x) if x >= 0 => Some(x as u64),
        I16(x) if x >= 0 => Some(x as u64),
        I32(x) if x >= 0 => Some(x as u64),
        I64(x) if x >= 0 => Some(x as u64),
        _ => None,
    }
}

fn meta_float(v: &gguf_file::Value) -> Option<f64> {
    use gguf_file::Value::*;
    match *v {
        F32(x) => Some(x as f64),
        F64(x) => Some(x),
        _ => meta_uint(v).map(|x| x as f64),
    }
}

fn meta_usize(ct: &gguf_file::Content, src: &Source, key: &str) -> Result<usize> {
    let v = meta(ct, src, key)?;
    meta_uint(v).map(|x| x as usize).ok_or_else(|| {
        src.err(format_args!(
            "metadata key `{key}` should be an unsigned integer, found {v:?}"
        ))
    })
}

/// Undoes llama.cpp's conversion-time permutation of Q/K rows (it interleaves each head's
/// two rotary halves for GGML's RoPE; this decoder uses the rotate-half convention of the
/// Hugging Face checkpoints). `w` is (heads × head_dim, in).
fn unpermute_rows(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / heads;
    Ok(w.reshape((heads, hd / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))?)
}

/// Loads a Llama-architecture GGUF file, dequantizing every tensor to F32.
pub fn load_gguf(path: &Path, max_seq: Option<usize>, device: &Device) -> Result<LoadedModel> {
    let src = Source { file: path };
    let mut file = std::fs::File::open(path).map_err(|e| {
        src.err(format_args!(
            "cannot open: {e}; fetch the model with `oae models fetch` or fix the model path"
        ))
    })?;
    let ct = gguf_file::Content::read(&mut file).map_err(|e| src.err(format_args!("not a readable GGUF file: {e}")))?;
    let arch = meta(&ct, &src, "general.architecture")?
        .to_string()
        .map_err(|e| src.err(e))?
        .clone();
    if arch != "llama" {
        return Err(src.err(format_args!(
            "general.architecture = \"{arch}\" is not supported; oae loads GGUF files of the `llama` architecture (use a Hugging Face directory for Qwen2 and Mixtral)"
        )));
    }
    let key = |k: &str| format!("{arch}.{k}");
    let heads = meta_usize(&ct, &src, &key("attention.head_count"))?;
    let hidden = meta_usize(&ct, &src, &key("embedding_length"))?;
    if ct.metadata.contains_key(&key("expert_count")) {
        return Err(src.err(
            "`llama.expert_count` is set: mixture-of-experts GGUF files are not supported; load the Mixtral checkpoint as a Hugging Face directory",
        ));
    }
    let ctx = meta_usize(&ct, &src, &key("context_length"))?;
    let mut cfg = LlamaConfig {
        vocab_size: 0,
        hidden,
        layers: meta_usize(&ct, &src, &key("block_count"))?,
        heads,
        kv_heads: match ct.metadata.get(&key("attention.head_count_kv")) {
            Some(_) => meta_usize(&ct, &src, &key("attention.head_count_kv"))?,
            None => heads,
        },
        head_dim: match ct.metadata.get(&key("attention.key_length")) {
            Some(_) => meta_usize(&ct, &src, &key("attention.key_length"))?,
            None => hidden.checked_div(heads).unwrap_or(0),
        },
        ffn: meta_usize(&ct, &src, &key("feed_forward_length"))?,
        experts: 0,
        top_k: 0,
        qkv_bias: false,
        tied_embeddings: !ct.tensor_infos.contains_key("output.weight"),
        max_seq: max_seq.unwrap_or(ctx.min(DEFAULT_MAX_SEQ)),
        rope_theta: ct
            .metadata
            .get(&key("rope.freq_base"))
            .and_then(meta_float)
            .unwrap_or(10_000.0),
        rms_eps: ct
            .metadata
            .get(&key("attention.layer_norm_rms_epsilon"))
            .and_then(meta_float)
            .unwrap_or(1e-5),
    };
    if let Some(t) = ct.tensor_infos.get("token_embd.weight") {
        cfg.vocab_size = t.shape.dims().first().copied().unwrap_or(0);
    }
    cfg.validate().map_err(|e| src.err(e))?;
    if ct.metadata.contains_key(&key("rope.scaling.type")) {
        let kind = ct.metadata[&key("rope.scaling.type")]
            .to_string()
            .ok()
            .cloned()
            .unwrap_or_default();
        if !kind.is_empty() && kind != "none" {
            return Err(src.err(format_args!("RoPE scaling `{kind}` is not supported")));
        }
    }

    // GGUF names → Hugging Face names, dequantized, Q/K rows un-permuted.
    let mut map = HashMap::new();
    let names: Vec<String> = ct.tensor_infos.keys().cloned().collect();
    for name in names {
        let q = ct.tensor(&mut file, &name, &Device::Cpu).map_err(|e| {
            src.err(format_args!(
                "tensor `{name}` cannot be read (truncated or corrupt file?): {e}"
            ))
        })?;
        let t = q
            .dequantize(&Device::Cpu)
            .map_err(|e| src.err(format_args!("tensor `{name}` cannot be dequantized: {e}")))?;
        let Some(hf) = gguf_to_hf(&name) else {
            continue;
        };
        let t = if hf.ends_with("q_proj.weight") {
            unpermute_rows(&t, cfg.heads).map_err(|e| src.err(format_args!("tensor `{name}`: {e}")))?
        } else if hf.ends_with("k_proj.weight") {
            unpermute_rows(&t, cfg.kv_heads).map_err(|e| src.err(format_args!("tensor `{name}`: {e}")))?
        } else {
            t
        };
        map.insert(hf, t.to_device(device)?);
    }
    let decoder = assemble_hf(
        cfg,
        Weights {
            src: Source { file: path },
            map,
        },
        device,
    )?;
    let tokenizer = HfTokenizer::from_gguf(&ct, path)?;
    let chat = ct
        .metadata
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok())
        .and_then(|j| ChatTemplate::detect(j));
    let name = ct
        .metadata
        .get("general.name")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_else(|| {
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    finish(
        decoder,
        Box::new(tokenizer),
        chat,
        format!("{name} (gguf, dequantized to f32)"),
        &src,
    )
}

/// GGUF tensor name → Hugging Face name (`None` for tensors the decoder does not use, e.g.
/// precomputed rope frequencies).
fn gguf_to_hf(name: &str) -> Option<String> {
    Some(match name {
        "token_embd.weight" => "model.embed_tokens.weight".into(),
        "output_norm.weight" => "model.norm.weight".into(),
        "output.weight" => "lm_head.weight".into(),
        _ => {
            let rest = name.strip_prefix("blk.")?;
            let (i, part) = rest.split_once('.')?;
            let hf = match part {
                "attn_norm.weight" => "input_layernorm.weight",
                "ffn_norm.weight" => "post_attention_layernorm.weight",
                "attn_q.weight" => "self_attn.q_proj.weight",
                "attn_k.weight" => "self_attn.k_proj.weight",
                "attn_v.weight" => "self_attn.v_proj.weight",
                "attn_output.weight" => "self_attn.o_proj.weight",
                "ffn_gate.weight" => "mlp.gate_proj.weight",
                "ffn_up.weight" => "mlp.up_proj.weight",
                "ffn_down.weight" => "mlp.down_proj.weight",
                _ => return None,
            };
            format!("model.layers.{i}.{hf}")
        }
    })
}

// ---------------------------------------------------------------------------------------
// Hugging Face directories

/// The `config.json` keys oae reads.
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: String,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    max_position_embeddings: Option<usize>,
    rope_theta: Option<f64>,
    rms_norm_eps: Option<f64>,
    #[serde(default)]
    tie_word_embeddings: bool,
    num_local_experts: Option<usize>,
    num_experts_per_tok: Option<usize>,
    rope_scaling: Option<serde_json::Value>,
    eos_token_id: Option<serde_json::Value>,
}

/// The part of `tokenizer_config.json` oae reads.
#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    chat_template: Option<serde_json::Value>,
    eos_token: Option<serde_json::Value>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Model(format!("{}: cannot read: {e}", path.display())))?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        Error::Model(format!(
            "{}:{}: field `{}`: {inner}",
            path.display(),
            inner.line(),
            e.path()
        ))
    })
}

/// Loads a Hugging Face model directory.
pub fn load_hf(dir: &Path, max_seq: Option<usize>, device: &Device) -> Result<LoadedModel> {
    let cfg_path = dir.join("config.json");
    if !dir.is_dir() {
        return Err(Error::Model(format!(
            "{}: not a directory; a Hugging Face model directory holds config.json, *.safetensors and tokenizer.json",
            dir.display()
        )));
    }
    let hc: HfConfig = read_json(&cfg_path)?;
    let src = Source { file: &cfg_path };
    let (qkv_bias, moe) = match hc.model_type.as_str() {
        "llama" | "mistral" => (false, false),
        "qwen2" => (true, false),
        "mixtral" => (false, true),
        other => {
            return Err(src.err(format_args!(
                "field `model_type`: \"{other}\" is not supported; oae loads llama, mistral, qwen2 and mixtral"
            )));
        }
    };
    if let Some(rs) = &hc.rope_scaling
        && !rs.is_null()
    {
        return Err(src.err(format_args!("field `rope_scaling`: {rs} is not supported")));
    }
    let (experts, top_k) = if moe {
        let e = hc
            .num_local_experts
            .ok_or_else(|| src.err("field `num_local_experts` is missing for a mixtral model"))?;
        (e, hc.num_experts_per_tok.unwrap_or(2))
    } else {
        (0, 0)
    };
    let cfg = LlamaConfig {
        vocab_size: hc.vocab_size,
        hidden: hc.hidden_size,
        layers: hc.num_hidden_layers,
        heads: hc.num_attention_heads,
        kv_heads: hc.num_key_value_heads.unwrap_or(hc.num_attention_heads),
        head_dim: hc
            .head_dim
            .unwrap_or(hc.hidden_size.checked_div(hc.num_attention_heads).unwrap_or(0)),
        ffn: hc.intermediate_size,
        experts,
        top_k,
        qkv_bias,
        tied_embeddings: hc.tie_word_embeddings,
        max_seq: max_seq.unwrap_or(
            hc.max_position_embeddings
                .unwrap_or(DEFAULT_MAX_SEQ)
                .min(DEFAULT_MAX_SEQ),
        ),
        rope_theta: hc.rope_theta.unwrap_or(10_000.0),
        rms_eps: hc.rms_norm_eps.unwrap_or(1e-5),
    };
    cfg.validate().map_err(|e| src.err(e))?;

    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Model(format!("{}: cannot list: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    shards.sort();
    if shards.is_empty() {
        return Err(Error::Model(format!(
            "{}: no *.safetensors files; oae reads safetensors weights only",
            dir.display()
        )));
    }
    let mut map = HashMap::new();
    for shard in &shards {
        let tensors = candle_core::safetensors::load(shard, &Device::Cpu).map_err(|e| {
            Error::Model(format!(
                "{}: not a readable safetensors file (truncated or corrupt?): {e}",
                shard.display()
            ))
        })?;
        for (name, t) in tensors {
            let t = t
                .to_dtype(DType::F32)
                .and_then(|t| t.to_device(device))
                .map_err(|e| Error::Model(format!("{}: tensor `{name}`: {e}", shard.display())))?;
            map.insert(name, t);
        }
    }
    let shard_label = if shards.len() == 1 {
        shards[0].clone()
    } else {
        dir.to_path_buf()
    };
    let decoder = assemble_hf(
        cfg,
        Weights {
            src: Source { file: &shard_label },
            map,
        },
        device,
    )?;

    let tc_path = dir.join("tokenizer_config.json");
    let tc: TokenizerConfig = if tc_path.exists() {
        read_json(&tc_path)?
    } else {
        TokenizerConfig::default()
    };
    let inner = HfTokenizer::from_file(&dir.join("tokenizer.json"))?;
    let token_text = |v: &serde_json::Value| -> Option<String> {
        v.as_str()
            .map(str::to_string)
            .or_else(|| v.get("content").and_then(|c| c.as_str()).map(str::to_string))
    };
    let eos = tc
        .eos_token
        .as_ref()
        .and_then(token_text)
        .and_then(|t| inner.token_to_id(&t))
        .or_else(|| first_id(hc.eos_token_id.as_ref()));
    let chat = tc.chat_template.as_ref().and_then(|v| match v {
        serde_json::Value::String(s) => ChatTemplate::detect(s),
        // A list of named templates: use the default one.
        serde_json::Value::Array(a) => a
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .and_then(|t| t.get("template"))
            .and_then(|t| t.as_str())
            .and_then(ChatTemplate::detect),
        _ => None,
    });
    let tokenizer = HfTokenizer::new(inner, eos, "tokenizer.json");
    let name = format!(
        "{} ({}, hf safetensors → f32)",
        dir.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        hc.model_type
    );
    finish(decoder, Box::new(tokenizer), chat, name, &Source { file: dir })
}

fn first_id(v: Option<&serde_json::Value>) -> Option<u32> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64().map(|x| x as u32),
        serde_json::Value::Array(a) => a.first().and_then(|n| n.as_u64()).map(|x| x as u32),
        _ => None,
    }
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

/// Writes a decoder as a Hugging Face directory (config.json + model.safetensors) — used by
/// tests to exercise the loader on synthetic weights, and by users to export a model.
pub fn save_hf(decoder: &Decoder, dir: &Path) -> Result<()> {
    let c = decoder.config();
    std::fs::create_dir_all(dir).map_err(|e| Error::Model(format!("{}: {e}", dir.display())))?;
    let model_type = if c.experts > 0 {
        "mixtral"
    } else if c.qkv_bias {
        "qwen2"
    } else {
        "llama"
    };
    let mut cfg = serde_json::json!({
        "model_type": model_type,
        "hidden_size": c.hidden,
        "intermediate_size": c.ffn,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads,
        "head_dim": c.head_dim,
        "vocab_size": c.vocab_size,
        "max_position_embeddings": c.max_seq,
        "rope_theta": c.rope_theta,
        "rms_norm_eps": c.rms_eps,
        "tie_word_embeddings": c.tied_embeddings,
    });
    if c.experts > 0 {
        cfg["num_local_experts"] = c.experts.into();
        cfg["num_experts_per_tok"] = c.top_k.into();
    }
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap_or_default())
        .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
    let tensors: HashMap<String, Tensor> = decoder.hf_tensors()?.into_iter().collect();
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &path).map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
    Ok(())
}
