//! The decoder against candle-transformers' reference implementations on the same weights:
//! `models::llama` for dense models (synthetic always; SmolLM2 when its file is in the
//! model cache) and `models::mixtral` for the sparse MoE.

use std::collections::HashMap;

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{llama, mixtral};
use oae_methods::model::{Decoder, KvCache, Logits, ModelSpec, SyntheticSpec, catalog, last_row};

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().chain(b).fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// A (1, tokens) input batch.
fn batch(tokens: &[u32]) -> Tensor {
    Tensor::new(tokens, &Device::Cpu).unwrap().unsqueeze(0).unwrap()
}

/// A reference model's logits as one vector.
fn flat(t: candle_core::Result<Tensor>) -> Vec<f32> {
    t.unwrap().flatten_all().unwrap().to_vec1().unwrap()
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

/// `d` with its KV cache in f32, as the references keep theirs (by default an f32 model on
/// the CPU caches in f16, which moves logits by about 2e-4 of their scale here).
fn f32_cache(d: &Decoder) -> Decoder {
    d.to_dtype(DType::F32).unwrap().with_kv_dtype(DType::F32).unwrap()
}

/// Last-position logits of `prompt`, then of one more token, from both implementations.
fn compare_with_llama(d: &Decoder, prompt: &[u32], next: u32) {
    let d = &f32_cache(d);
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

/// The synthetic model with 4 experts of width 96, top-2.
fn synthetic_moe() -> oae_methods::model::LoadedModel {
    ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 128,
        experts: 4,
        top_k: 2,
        ffn: 96,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap()
}

#[test]
fn synthetic_moe_matches_candle_transformers_mixtral() {
    let m = synthetic_moe();
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
    let r = flat(reference.forward(&batch(&prompt), 0));
    let mut cache = KvCache::new(c.layers);
    let d = f32_cache(&m.decoder);
    let o = last_row(&d.forward(&prompt, &mut cache, Logits::Last).unwrap()).unwrap();
    let e = max_rel_diff(&o, &r);
    assert!(e < 1e-4, "MoE logits differ from candle-transformers mixtral: {e}");
    let counters = d.take_moe_counters();
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
    // The same blocks dequantized, as the reference is given them (the quantized kernels'
    // 8-bit activations are checked against llama.cpp in tests/smollm2.rs).
    let f32 = m
        .decoder
        .convert_weights(oae_methods::model::WeightFormat::F32)
        .unwrap();
    compare_with_llama(&f32, &prompt, 7042);
}

#[test]
fn qwen2_directory_with_biases_matches_candle_transformers_qwen2() {
    use candle_transformers::models::qwen2;
    // The synthetic weights as a Qwen2 checkpoint: same tensors plus random q/k/v biases.
    let m = ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 128,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap();
    let c = *m.decoder.config();
    let dir = tempfile::tempdir().unwrap();
    oae_methods::model::save_hf(&m.decoder, dir.path()).unwrap();
    let mut tensors: HashMap<String, Tensor> = m.decoder.hf_tensors().unwrap().into_iter().collect();
    let mut rng = oae_core::rng::seeded(1, &["bias"]);
    let mut bias = |n: usize| {
        let v: Vec<f32> = (0..n)
            .map(|_| (oae_core::rng::standard_normal(&mut rng) * 0.5) as f32)
            .collect();
        Tensor::from_vec(v, n, &Device::Cpu).unwrap()
    };
    let (q, kv) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
    for i in 0..c.layers {
        let p = format!("model.layers.{i}.self_attn");
        tensors.insert(format!("{p}.q_proj.bias"), bias(q));
        tensors.insert(format!("{p}.k_proj.bias"), bias(kv));
        tensors.insert(format!("{p}.v_proj.bias"), bias(kv));
    }
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    let cfg_path = dir.path().join("config.json");
    let cfg_text = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("\"llama\"", "\"qwen2\"");
    std::fs::write(&cfg_path, &cfg_text).unwrap();
    common::write_min_tokenizer(dir.path());

    let ours = oae_methods::model::load_hf(dir.path(), Some(128), &Device::Cpu).unwrap();
    assert!(ours.decoder.config().qkv_bias);
    let rcfg: qwen2::Config = serde_json::from_value(serde_json::json!({
        "vocab_size": c.vocab_size, "hidden_size": c.hidden, "intermediate_size": c.ffn,
        "num_hidden_layers": c.layers, "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads, "max_position_embeddings": c.max_seq,
        "sliding_window": c.max_seq, "max_window_layers": c.layers, "tie_word_embeddings": false,
        "rope_theta": c.rope_theta, "rms_norm_eps": c.rms_eps, "use_sliding_window": false,
        "hidden_act": "silu"
    }))
    .unwrap();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let mut reference = qwen2::ModelForCausalLM::new(&rcfg, vb).unwrap();
    let prompt: Vec<u32> = vec![256, 81, 119, 101, 110, 50, 32, 98, 105, 97, 115];
    let r = flat(reference.forward(&batch(&prompt), 0));
    let mut cache = KvCache::new(c.layers);
    let o = last_row(
        &f32_cache(&ours.decoder)
            .forward(&prompt, &mut cache, Logits::Last)
            .unwrap(),
    )
    .unwrap();
    let e = max_rel_diff(&o, &r);
    assert!(e < 1e-4, "Qwen2 logits differ from candle-transformers qwen2: {e}");
    // The biases matter: the plain synthetic model gives different logits.
    let mut c2 = KvCache::new(c.layers);
    let plain = last_row(&m.decoder.forward(&prompt, &mut c2, Logits::Last).unwrap()).unwrap();
    assert!(max_rel_diff(&plain, &r) > 1e-3);
}

#[test]
fn mixtral_directory_round_trip_reproduces_the_moe() {
    let m = synthetic_moe();
    let dir = tempfile::tempdir().unwrap();
    oae_methods::model::save_hf(&m.decoder, dir.path()).unwrap();
    common::write_min_tokenizer(dir.path());
    let loaded = oae_methods::model::load_hf(dir.path(), Some(128), &Device::Cpu).unwrap();
    assert_eq!((loaded.decoder.config().experts, loaded.decoder.config().top_k), (4, 2));
    let prompt = [256u32, 77, 105, 120, 116, 114, 97, 108];
    let (mut a, mut b) = (KvCache::new(4), KvCache::new(4));
    let x = last_row(&m.decoder.forward(&prompt, &mut a, Logits::Last).unwrap()).unwrap();
    let y = last_row(&loaded.decoder.forward(&prompt, &mut b, Logits::Last).unwrap()).unwrap();
    assert!(max_rel_diff(&x, &y) < 1e-5);
}
