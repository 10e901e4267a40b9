//! SmolLM2-135M-Instruct, when it is in the model cache (`oae models fetch
//! smollm2-135m-instruct`); otherwise every test here skips with a message.
//!
//! The reference token ids come from llama.cpp's tokenizer (the GGUF format's own
//! implementation), recorded in `data/smollm2_reference.json` with the command that made them.

use candle_core::Device;
use oae_methods::model::{ChatMode, KvCache, LoadedModel, Logits, argmax, catalog, last_row, load_gguf};

fn model() -> Option<LoadedModel> {
    let root = catalog::cache_dir();
    let e = catalog::entry("smollm2-135m-instruct")?;
    if !e.present(&root) {
        eprintln!(
            "SKIPPED: SmolLM2 is not in the model cache {} (run `oae models fetch smollm2-135m-instruct`)",
            root.display()
        );
        return None;
    }
    Some(load_gguf(&e.model_path(&root), Some(512), &Device::Cpu).unwrap())
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

#[test]
fn chat_template_and_greedy_generation_agree_with_llama_cpp() {
    let Some(m) = model() else { return };
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
    // llama.cpp ran the Q4_1 blocks with 8-bit activations, oae their exact F32
    // dequantization: logits agree to quantization noise, and near-ties may flip.
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
        "over llama.cpp's top 16 logits: mean shift {:.3}, mean |centered difference| {mean_abs:.3}",
        mo - ml
    );
    assert!(
        mean_abs < 0.3,
        "logits differ from llama.cpp's by {mean_abs} on average"
    );
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
    let text = m.tokenizer.decode(&got);
    eprintln!("oae greedy: {got:?} {text:?}");
    assert_eq!(text, "The capital of France is Paris.");
    assert!(m.stops.contains(&m.tokenizer.token_id("<|im_end|>").unwrap()));
    assert!(m.is_stop(*got.last().unwrap()), "generation should end with <|im_end|>");
}
