//! GGUF files of the `llama` architecture: metadata → [`LlamaConfig`], tensors renamed to
//! their Hugging Face names (Q/K rows un-permuted), quantized blocks kept as they are where
//! a kernel computes with them, then assembled as a Hugging Face checkpoint would be.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};

use super::{DEFAULT_MAX_SEQ, Raw, Source, Weights, assemble_hf, finish};
use crate::error::Result;
use crate::model::LoadedModel;
use crate::model::chat::ChatTemplate;
use crate::model::decoder::LlamaConfig;
use crate::model::quant::{QMatrix, QType};
use crate::model::tokenizer::HfTokenizer;

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

/// Reads a GGUF file of the `llama` architecture.
pub fn load_gguf(path: &Path, max_seq: Option<usize>, device: &Device) -> Result<LoadedModel> {
    let src = Source { file: path };
    let mut file = std::fs::File::open(path).map_err(|e| {
        src.err(format_args!(
            "cannot open: {e}; fetch the model with `oae models fetch` or fix the model path"
        ))
    })?;
    let ct = gguf_file::Content::read(&mut file).map_err(|e| src.err(format_args!("not a readable GGUF file: {e}")))?;
    let cfg = config(&ct, &src, max_seq)?;
    let map = weights(&ct, &mut file, &cfg, &src, device)?;
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
    finish(decoder, Box::new(tokenizer), chat, format!("{name} (gguf)"), &src)
}

/// The model's shape from the GGUF metadata, checked.
fn config(ct: &gguf_file::Content, src: &Source, max_seq: Option<usize>) -> Result<LlamaConfig> {
    let arch = meta(ct, src, "general.architecture")?
        .to_string()
        .map_err(|e| src.err(e))?
        .clone();
    if arch != "llama" {
        return Err(src.err(format_args!(
            "general.architecture = \"{arch}\" is not supported; oae loads GGUF files of the `llama` architecture (use a Hugging Face directory for Qwen2 and Mixtral)"
        )));
    }
    let key = |k: &str| format!("{arch}.{k}");
    let heads = meta_usize(ct, src, &key("attention.head_count"))?;
    let hidden = meta_usize(ct, src, &key("embedding_length"))?;
    if ct.metadata.contains_key(&key("expert_count")) {
        return Err(src.err(
            "`llama.expert_count` is set: mixture-of-experts GGUF files are not supported; load the Mixtral checkpoint as a Hugging Face directory",
        ));
    }
    let ctx = meta_usize(ct, src, &key("context_length"))?;
    let mut cfg = LlamaConfig {
        vocab_size: 0,
        hidden,
        layers: meta_usize(ct, src, &key("block_count"))?,
        heads,
        kv_heads: match ct.metadata.get(&key("attention.head_count_kv")) {
            Some(_) => meta_usize(ct, src, &key("attention.head_count_kv"))?,
            None => heads,
        },
        head_dim: match ct.metadata.get(&key("attention.key_length")) {
            Some(_) => meta_usize(ct, src, &key("attention.key_length"))?,
            None => hidden.checked_div(heads).unwrap_or(0),
        },
        ffn: meta_usize(ct, src, &key("feed_forward_length"))?,
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
    Ok(cfg)
}

/// Every tensor the decoder uses, under its Hugging Face name, with the Q/K rows
/// un-permuted: matrices in a block format with a kernel stay quantized (on the CPU, bytes
/// read straight from the file); float tensors and vectors become F32 on `device`.
fn weights(
    ct: &gguf_file::Content,
    file: &mut std::fs::File,
    cfg: &LlamaConfig,
    src: &Source,
    device: &Device,
) -> Result<HashMap<String, Raw>> {
    let mut map = HashMap::new();
    let names: Vec<String> = ct.tensor_infos.keys().cloned().collect();
    for name in names {
        let Some(hf) = gguf_to_hf(&name) else {
            continue;
        };
        let info = &ct.tensor_infos[&name];
        let heads = if hf.ends_with("q_proj.weight") {
            Some(cfg.heads)
        } else if hf.ends_with("k_proj.weight") {
            Some(cfg.kv_heads)
        } else {
            None
        };
        let dims = info.shape.dims();
        let raw = match (QType::of_gguf(info.ggml_dtype), dims) {
            (Some(_), &[rows, cols]) => {
                let q = quantized(ct, file, &name, rows, cols, src)?;
                let q = match heads {
                    Some(h) => q
                        .gather_rows(&unpermuted_order(rows, h))
                        .map_err(|e| src.err(format_args!("tensor `{name}`: {e}")))?,
                    None => q,
                };
                Raw::Quant(q)
            }
            _ => {
                let t = ct
                    .tensor(file, &name, &Device::Cpu)
                    .map_err(|e| {
                        src.err(format_args!(
                            "tensor `{name}` cannot be read (truncated or corrupt file?): {e}"
                        ))
                    })?
                    .dequantize(&Device::Cpu)
                    .map_err(|e| src.err(format_args!("tensor `{name}` cannot be dequantized: {e}")))?;
                let t = match heads {
                    Some(h) => unpermute_rows(&t, h).map_err(|e| src.err(format_args!("tensor `{name}`: {e}")))?,
                    None => t,
                };
                Raw::Dense(t.to_device(device)?)
            }
        };
        map.insert(hf, raw);
    }
    Ok(map)
}

/// A quantized matrix's bytes, read from the file as they are.
fn quantized(
    ct: &gguf_file::Content,
    file: &mut std::fs::File,
    name: &str,
    rows: usize,
    cols: usize,
    src: &Source,
) -> Result<QMatrix> {
    use std::io::{Read, Seek, SeekFrom};
    let info = &ct.tensor_infos[name];
    let t = info.ggml_dtype;
    let bytes = rows
        .checked_mul(cols)
        .map(|n| n / t.block_size() * t.type_size())
        .ok_or_else(|| src.err(format_args!("tensor `{name}`: shape [{rows}, {cols}] is too large")))?;
    let mut raw = vec![0u8; bytes];
    file.seek(SeekFrom::Start(ct.tensor_data_offset + info.offset))
        .and_then(|_| file.read_exact(&mut raw))
        .map_err(|e| {
            src.err(format_args!(
                "tensor `{name}` cannot be read (truncated or corrupt file?): {e}"
            ))
        })?;
    QMatrix::from_gguf(t, rows, cols, &raw).map_err(|e| src.err(format_args!("tensor `{name}`: {e}")))
}

/// The row order [`unpermute_rows`] produces, for quantized rows: new row
/// `h·hd + j·hd/2 + i` is the file's row `h·hd + 2i + j`.
fn unpermuted_order(rows: usize, heads: usize) -> Vec<usize> {
    let hd = rows / heads.max(1);
    let mut order = Vec::with_capacity(rows);
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..hd / 2 {
                order.push(h * hd + 2 * i + j);
            }
        }
    }
    order
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
