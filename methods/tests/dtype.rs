//! Serving dtypes: the `dtype` key is validated, f16 (and bf16 where candle has the kernels)
//! decode greedily like f32, and facts say what the weights, KV cache and logits are.

mod common;

use candle_core::{DType, Device};
use oae_methods::model::{KvCache, LoadedModel, Logits, ModelSpec, SyntheticSpec, argmax, last_row};

use common::{build, ready, request, serve};

fn model(device: &Device) -> LoadedModel {
    ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 256,
        ..SyntheticSpec::default()
    })
    .load(device)
    .unwrap()
}

/// Greedy continuation of `prompt` for `n` tokens, and the first position's logits.
fn greedy(m: &LoadedModel, prompt: &[u32], n: usize) -> candle_core::Result<(Vec<u32>, Vec<f32>)> {
    let mut cache = KvCache::new(m.decoder.config().layers);
    let logits = m
        .decoder
        .forward(prompt, &mut cache, Logits::Last)
        .map_err(candle_core::Error::wrap)?;
    let first = last_row(&logits).map_err(candle_core::Error::wrap)?;
    let mut out = vec![argmax(&first)];
    while out.len() < n {
        let l = m
            .decoder
            .forward(&[*out.last().unwrap()], &mut cache, Logits::Last)
            .map_err(candle_core::Error::wrap)?;
        out.push(argmax(&last_row(&l).map_err(candle_core::Error::wrap)?));
    }
    Ok((out, first))
}

/// Fraction of positions, over several prompts, where `low` chose what f32 chose before the
/// two first diverged (the prefix that agrees), and the worst relative logit error of the
/// first step.
fn agreement(f32_model: &LoadedModel, low: &LoadedModel) -> candle_core::Result<(f64, f32)> {
    let (mut same, mut total, mut worst) = (0usize, 0usize, 0f32);
    for p in 0..6u32 {
        let prompt: Vec<u32> = (0..12).map(|i| (i * 31 + p * 7) % 250 + 3).collect();
        let (a, la) = greedy(f32_model, &prompt, 24)?;
        let (b, lb) = greedy(low, &prompt, 24)?;
        same += a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        total += a.len();
        let scale = la.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        worst = worst.max(la.iter().zip(&lb).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale);
    }
    Ok((same as f64 / total as f64, worst))
}

#[test]
fn dtype_key_is_validated_with_file_line_and_key() {
    let e = build("dense", "dtype = \"bf17\"\n").err().unwrap().to_string();
    assert!(
        e.contains("m.toml:1") && e.contains("dtype") && e.contains("bf16"),
        "{e}"
    );
    let e = build("dense", "temperature = 0.0\ndtype = 16\n")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("m.toml:2") && e.contains("dtype"), "{e}");
    assert!(build("dense", "dtype = \"bf16\"\n").is_ok(), "bf16 runs on CPU too");
}

#[test]
fn f16_weights_kv_cache_and_facts() {
    let f32_method = ready("dense", "");
    let f16_method = ready("dense", "dtype = \"f16\"\n");
    let facts = f16_method.facts();
    assert_eq!(facts["dtype"], "f16");
    assert_eq!(facts["kv_cache_dtype"], "f16");
    assert!(facts["logits"].as_str().unwrap().contains("f32"), "{facts:?}");
    assert_eq!(f32_method.facts()["dtype"], "f32", "f32 is the CPU default");
    assert_eq!(
        f16_method.weight_bytes().unwrap() * 2,
        f32_method.weight_bytes().unwrap(),
        "half the bytes"
    );
    let mut f16_method = f16_method;
    let (tokens, _, counters) = serve(f16_method.as_mut(), &request(0, "The answer is", 8));
    assert_eq!(tokens.len(), 8);
    let f32_counters = serve(
        ready("dense", "kv_cache = \"f32\"\n").as_mut(),
        &request(0, "The answer is", 8),
    )
    .2;
    assert_eq!(
        counters["kv_bytes_peak"] * 2.0,
        f32_counters["kv_bytes_peak"],
        "f16 KV cache"
    );
    // An f32 model on the CPU holds its cache in f16 by default: as many bytes.
    let default_counters = serve(ready("dense", "").as_mut(), &request(0, "The answer is", 8)).2;
    assert_eq!(default_counters["kv_bytes_peak"], counters["kv_bytes_peak"]);
}

#[test]
fn f16_greedy_decoding_agrees_with_f32() {
    let m = model(&Device::Cpu);
    let mut low = model(&Device::Cpu);
    low.decoder = m.decoder.to_dtype(DType::F16).unwrap();
    assert_eq!(low.decoder.dtype(), DType::F16);
    let (agree, worst) = agreement(&m, &low).unwrap();
    eprintln!("f16 vs f32 on CPU: greedy agreement {agree:.3}, first-step logits within {worst:.2e} of their scale");
    assert!(worst < 0.02, "f16 logits drift {worst}");
    assert!(agree >= 0.9, "f16 greedy agreement {agree}");
}

#[test]
fn bf16_greedy_decoding_agrees_with_f32_where_candle_supports_it() {
    let m = model(&Device::Cpu);
    let mut low = model(&Device::Cpu);
    low.decoder = m.decoder.to_dtype(DType::BF16).unwrap();
    match agreement(&m, &low) {
        Err(e) => eprintln!(
            "skipped: candle has no bf16 kernel on CPU here ({e}); the GPU check is \
             bf16_on_cuda_agrees_with_f32 (--features cuda) and bench/gpu-validate.sh"
        ),
        Ok((agree, worst)) => {
            eprintln!("bf16 vs f32 on CPU: greedy agreement {agree:.3}, logits within {worst:.2e}");
            assert!(worst < 0.05 && agree >= 0.75, "bf16: {agree} {worst}");
        }
    }
}

#[cfg(feature = "cuda")]
#[test]
fn bf16_on_cuda_agrees_with_f32() {
    let Ok(device) = Device::new_cuda(0) else {
        eprintln!("skipped: no CUDA device here");
        return;
    };
    let m = model(&device);
    let mut low = model(&device);
    low.decoder = m.decoder.to_dtype(DType::BF16).unwrap();
    let (agree, worst) = agreement(&m, &low).unwrap();
    eprintln!("bf16 vs f32 on cuda:0: greedy agreement {agree:.3}, logits within {worst:.2e}");
    assert!(worst < 0.05 && agree >= 0.75, "bf16: {agree} {worst}");
}

#[test]
fn the_warm_up_runs_in_prepare_and_is_reported() {
    let m = ready("dense", "");
    let facts = m.facts();
    let c = &facts["cold_start"];
    let (warmup, first) = (c["warmup_s"].as_f64().unwrap(), c["first_pass_s"].as_f64().unwrap());
    assert!(warmup > 0.0 && first > 0.0 && first <= warmup, "{c}");
    assert!(c["jit_cache"].is_null(), "no JIT cache on CPU: {c}");
    let total = m.cold_start_s().unwrap();
    assert!((total - c["total_s"].as_f64().unwrap()).abs() < 1e-12 && total >= warmup);
    // The MoE warm-up runs the upcycled model's kernels, and its routing counters start
    // empty: the first request counts only its own tokens.
    let mut moe = ready("moe", "upcycle = { experts = 4, top_k = 2 }\n");
    assert!(moe.facts()["cold_start"]["warmup_s"].as_f64().unwrap() > 0.0);
    let (tokens, _, counters) = serve(moe.as_mut(), &request(0, "abc", 4));
    let routed: f64 = (0..4).map(|i| counters[&format!("expert_{i}_tokens")]).sum();
    let layers = 4.0; // the embedded synthetic model
    let forwarded = 4.0 + (tokens.len() as f64 - 1.0); // BOS + 3 bytes, then decode steps
    assert_eq!(
        routed,
        forwarded * 2.0 * layers,
        "top-2 of every forwarded token, every layer"
    );
}
