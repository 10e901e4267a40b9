//! Hugging Face model directories (`config.json` + `*.safetensors` + `tokenizer.json`;
//! Llama, Mistral, Qwen2 and Mixtral), and writing one ([`save_hf`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::{DEFAULT_MAX_SEQ, Raw, Source, Weights, assemble_hf, finish};
use crate::error::{Error, Result};
use crate::model::LoadedModel;
use crate::model::chat::ChatTemplate;
use crate::model::decoder::{Decoder, LlamaConfig};
use crate::model::tokenizer::HfTokenizer;

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
    let cfg = config(&hc, &Source { file: &cfg_path }, max_seq)?;
    let (map, shard_label) = shards(dir, device)?;
    let decoder = assemble_hf(
        cfg,
        Weights {
            src: Source { file: &shard_label },
            map,
        },
        device,
    )?;
    let (tokenizer, chat) = tokenizer(dir, &hc)?;
    let name = format!(
        "{} ({}, hf safetensors)",
        dir.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        hc.model_type
    );
    finish(decoder, Box::new(tokenizer), chat, name, &Source { file: dir })
}

/// The model's shape from config.json, checked.
fn config(hc: &HfConfig, src: &Source, max_seq: Option<usize>) -> Result<LlamaConfig> {
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
    Ok(cfg)
}

/// Every tensor of the directory's safetensors shards, as F32 on `device`; and the label
/// errors about them use (the one shard, or the directory).
fn shards(dir: &Path, device: &Device) -> Result<(HashMap<String, Raw>, PathBuf)> {
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
            map.insert(name, Raw::Dense(t));
        }
    }
    let shard_label = if shards.len() == 1 {
        shards[0].clone()
    } else {
        dir.to_path_buf()
    };
    Ok((map, shard_label))
}

/// The tokenizer (tokenizer.json, end-of-sequence from tokenizer_config.json or
/// config.json) and the chat template, when there is one.
fn tokenizer(dir: &Path, hc: &HfConfig) -> Result<(HfTokenizer, Option<ChatTemplate>)> {
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
    Ok((tokenizer, chat))
}

fn first_id(v: Option<&serde_json::Value>) -> Option<u32> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64().map(|x| x as u32),
        serde_json::Value::Array(a) => a.first().and_then(|n| n.as_u64()).map(|x| x as u32),
        _ => None,
    }
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
