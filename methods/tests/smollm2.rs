//! SmolLM2-135M-Instruct, when it is in the model cache (`oae models fetch
//! smollm2-135m-instruct`); otherwise every test here skips with a message.
//!
//! The reference token ids come from llama.cpp's tokenizer (the GGUF format's own
//! implementation), recorded in `data/smollm2_reference.json` with the command that made them.

use candle_core::Device;
use oae_methods::model::{ChatMode, KvCache, LoadedModel, Logits, WeightFormat, argmax, catalog, last_row, load_gguf};

fn model() -> Option<LoadedModel> {
    model_as(WeightFormat::AsFile)
}

fn model_as(format: WeightFormat) -> Option<LoadedModel> {
    let root = catalog::cache_dir();
    let e = catalog::entry("smollm2-135m-instruct")?;
    if !e.present(&root) {
        eprintln!(
            "SKIPPED: SmolLM2 is not in the model cache {} (run `oae models fetch smollm2-135m-instruct`)",
            root.display()
        );
        return None;
    }
    let mut m = load_gguf(&e.model_path(&root), Some(512), &Device::Cpu).unwrap();
    m.decoder = m.decoder.convert_weights(format).unwrap();
    Some(m)
}

fn reference() -> serde_json::Value {
    serde_json::from_str(include_str!("data/smollm2_reference.json")).unwrap()
}

#[test]
fn tokenization_matches_llama_cpp_token_for_token() {
    let Some(m) = model() else { return };
    for s in reference()["samples"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap();
        let want: Vec<u32> = s["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = m.tokenizer.encode(text).unwrap();
        assert_eq!(got, want, "tokenization of {text:?}");
        assert_eq!(
            m.tokenizer.decode(&got),
            text.replace("<|im_start|>", "").replace("<|im_end|>", "")
        );
    }
}

/// The Q4_1 blocks as the file holds them, with 8-bit activations as llama.cpp computes:
/// logits within quantization noise of llama.cpp's, and along llama.cpp's greedy answer
/// (teacher-forced, 20 tokens) each of its tokens is our top token or within 0.5 of it —
/// exact greedy paths part wherever two tokens nearly tie (llama.cpp also keeps its KV cache
/// in f16), so the margin, not the path, is what must agree.
#[test]
fn quantized_weights_agree_with_llama_cpp_token_for_token() {
    let Some(m) = model() else { return };
    let types = m.decoder.weight_types();
    assert!(types.contains_key("q4_1") && types.contains_key("q8_0"), "{types:?}");
    greedy_against_llama_cpp(&m, 0.3);
    let want: Vec<u32> = reference()["greedy"]["llama_cpp_q4_1_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let prompt = m
        .prompt_ids("What is the capital of France?", ChatMode::Auto, None)
        .unwrap();
    let mut cache = KvCache::new(m.decoder.config().layers);
    let mut logits = last_row(&m.decoder.forward(&prompt, &mut cache, Logits::Last).unwrap()).unwrap();
    let mut top = 0;
    for (i, &t) in want.iter().enumerate() {
        let best = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let gap = best - logits[t as usize];
        assert!(
            gap < 0.5,
            "position {i}: llama.cpp's token {t} is {gap} below our top logit"
        );
        top += usize::from(gap == 0.0);
        logits = last_row(&m.decoder.forward(&[t], &mut cache, Logits::Last).unwrap()).unwrap();
    }
    eprintln!(
        "llama.cpp's token was our top token at {top} of {} positions",
        want.len()
    );
    assert!(
        top * 10 >= want.len() * 8,
        "top token at only {top} of {} positions",
        want.len()
    );
}

/// The same blocks dequantized to F32 (and requantized to Q8_0): logits still within the
/// quantization noise; the answer may take the other branch of the first position's near-tie.
#[test]
fn f32_and_q8_0_weights_agree_with_llama_cpp_to_quantization_noise() {
    let Some(m) = model_as(WeightFormat::F32) else { return };
    assert_eq!(m.decoder.weight_types().keys().collect::<Vec<_>>(), ["f32"]);
    let got = greedy_against_llama_cpp(&m, 0.3);
    assert_eq!(m.tokenizer.decode(&got), "The capital of France is Paris.");
    assert!(m.is_stop(*got.last().unwrap()), "generation should end with <|im_end|>");
    let Some(m) = model_as(WeightFormat::Q8_0) else { return };
    assert_eq!(m.decoder.weight_types().keys().collect::<Vec<_>>(), ["f32", "q8_0"]);
    greedy_against_llama_cpp(&m, 0.3);
}

/// Checks the chat template, compares the first position's logits with llama.cpp's top 16
/// (mean |centered difference| below `tolerance`) and returns up to ten greedy tokens.
fn greedy_against_llama_cpp(m: &LoadedModel, tolerance: f32) -> Vec<u32> {
    let r = reference();
    let prompt = m
        .prompt_ids("What is the capital of France?", ChatMode::Auto, None)
        .unwrap();
    let want_prompt = m.tokenizer.encode(r["greedy"]["prompt"].as_str().unwrap()).unwrap();
    assert_eq!(
        prompt, want_prompt,
        "the ChatML rendering differs from the model's template"
    );
    let mut cache = KvCache::new(m.decoder.config().layers);
    let first = last_row(&m.decoder.forward(&prompt, &mut cache, Logits::Last).unwrap()).unwrap();
    let top: Vec<(usize, f32)> = r["greedy"]["llama_cpp_first_position_top16"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v[0].as_u64().unwrap() as usize, v[1].as_f64().unwrap() as f32))
        .collect();
    // Softmax ignores a common shift: compare logits relative to each side's mean.
    let n = top.len() as f32;
    let (mo, ml) = (
        top.iter().map(|&(t, _)| first[t]).sum::<f32>() / n,
        top.iter().map(|&(_, l)| l).sum::<f32>() / n,
    );
    let mean_abs = top
        .iter()
        .map(|&(t, l)| ((first[t] - mo) - (l - ml)).abs())
        .sum::<f32>()
        / n;
    eprintln!(
        "{}: over llama.cpp's top 16 logits: mean shift {:.3}, mean |centered difference| {mean_abs:.3}",
        m.name,
        mo - ml
    );
    assert!(
        mean_abs < tolerance,
        "logits differ from llama.cpp's by {mean_abs} on average"
    );
    // 'L' and 'The' nearly tie at the first position in llama.cpp's logits.
    let ours = argmax(&first) as usize;
    assert!(
        top[..3].iter().any(|&(t, _)| t == ours),
        "our top token {ours} is not in llama.cpp's top 3"
    );
    let mut next = ours as u32;
    let mut got = vec![next];
    for _ in 0..9 {
        next = argmax(&last_row(&m.decoder.forward(&[next], &mut cache, Logits::Last).unwrap()).unwrap());
        got.push(next);
        if m.is_stop(next) {
            break;
        }
    }
    eprintln!("oae greedy: {got:?} {:?}", m.tokenizer.decode(&got));
    assert!(m.stops.contains(&m.tokenizer.token_id("<|im_end|>").unwrap()));
    got
}
