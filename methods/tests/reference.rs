//! The decoder against candle-transformers' reference implementations on the same weights:
//! `models::llama` for dense models (synthetic always; SmolLM2 when its file is in the
//! model cache) and `models::mixtral` for the sparse MoE.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{llama, mixtral};
use oae_methods::model::{Decoder, KvCache, Logits, ModelSpec, SyntheticSpec, catalog, last_row};

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().chain(b).fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn var_builder(d: &Decoder) -> VarBuilder<'static> {
    let map: HashMap<String, Tensor> = d.hf_tensors().unwrap().into_iter().collect();
    VarBuilder::from_tensors(map, DType::F32, &Device::Cpu)
}

fn llama_config(d: &Decoder) -> llama::Config {
    let c = d.config();
    llama::Config {
        hidden_size: c.hidden,
        intermediate_size: c.ffn,
        vocab_size: c.vocab_size,
        num_hidden_layers: c.layers,
        num_attention_heads: c.heads,
        num_key_value_heads: c.kv_heads,
        use_flash_attn: false,
        rms_norm_eps: c.rms_eps,
        rope_theta: c.rope_theta as f32,
        bos_token_id: None,
        eos_token_id: None,
        rope_scaling: None,
        max_position_embeddings: c.max_seq,
        tie_word_embeddings: c.tied_embeddings,
    }
}

/// Last-position logits of `prompt`, then of one more token, from both implementations.
fn compare_with_llama(d: &Decoder, prompt: &[u32], next: u32) {
    let cfg = llama_config(d);
    let reference = llama::Llama::load(var_builder(d), &cfg).unwrap();
    let mut rc = llama::Cache::new(true, DType::F32, &cfg, &Device::Cpu).unwrap();
    let input = Tensor::new(prompt, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let r1: Vec<f32> = reference
        .forward(&input, 0, &mut rc)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let input = Tensor::new(&[next], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let r2: Vec<f32> = reference
        .forward(&input, prompt.len(), &mut rc)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();

    let mut cache = KvCache::new(d.config().layers);
    let o1 = last_row(&d.forward(prompt, &mut cache, Logits::Last).unwrap()).unwrap();
    let o2 = last_row(&d.forward(&[next], &mut cache, Logits::Last).unwrap()).unwrap();
    let (e1, e2) = (max_rel_diff(&o1, &r1), max_rel_diff(&o2, &r2));
    assert!(e1 < 1e-4, "prefill logits differ from candle-transformers llama: {e1}");
    assert!(e2 < 1e-4, "decode logits differ from candle-transformers llama: {e2}");
}

#[test]
fn synthetic_dense_matches_candle_transformers_llama() {
    let m = ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 128,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap();
    let prompt = m
        .tokenizer
        .encode("Reference check: GQA, RoPE at positions 0..n, 42.")
        .unwrap();
    compare_with_llama(&m.decoder, &prompt, 77);
}

#[test]
fn synthetic_moe_matches_candle_transformers_mixtral() {
    let m = ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 128,
        experts: 4,
        top_k: 2,
        ffn: 96,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap();
    let c = *m.decoder.config();
    let cfg: mixtral::Config = serde_json::from_value(serde_json::json!({
        "vocab_size": c.vocab_size, "hidden_size": c.hidden, "intermediate_size": c.ffn,
        "num_hidden_layers": c.layers, "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads, "hidden_act": "silu",
        "max_position_embeddings": c.max_seq, "rms_norm_eps": c.rms_eps,
        "rope_theta": c.rope_theta, "sliding_window": c.max_seq,
        "num_experts_per_tok": c.top_k, "num_local_experts": c.experts, "use_flash_attn": false
    }))
    .unwrap();
    let mut reference = mixtral::Model::new(&cfg, var_builder(&m.decoder)).unwrap();
    let prompt = m
        .tokenizer
        .encode("Routing check: every token picks two of four experts.")
        .unwrap();
    let input = Tensor::new(prompt.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let r: Vec<f32> = reference
        .forward(&input, 0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut cache = KvCache::new(c.layers);
    let o = last_row(&m.decoder.forward(&prompt, &mut cache, Logits::Last).unwrap()).unwrap();
    let e = max_rel_diff(&o, &r);
    assert!(e < 1e-4, "MoE logits differ from candle-transformers mixtral: {e}");
    let counters = m.decoder.take_moe_counters();
    let routed: u64 = counters.per_expert().iter().sum();
    assert_eq!(routed as usize, prompt.len() * c.layers * c.top_k);
}

#[test]
fn smollm2_matches_candle_transformers_llama_when_present() {
    let root = catalog::cache_dir();
    let Some(e) = catalog::entry("smollm2-135m-instruct").filter(|e| e.present(&root)) else {
        eprintln!(
            "SKIPPED: SmolLM2 is not in the model cache {} (run `oae models fetch smollm2-135m-instruct`)",
            root.display()
        );
        return;
    };
    let m = oae_methods::model::load_gguf(&e.model_path(&root), Some(256), &Device::Cpu).unwrap();
    let prompt = m.tokenizer.encode("The capital of France is").unwrap();
    compare_with_llama(&m.decoder, &prompt, 7042);
}
