//! Trie-based vs batch beam search at widths 2 / 4 / 8 / 16: KV-cache bytes at peak and
//! answer tokens per second, on the synthetic 8×512 model (≈ 100 MB of F32 weights,
//! memory-bound like real models) and on SmolLM2-135M when it is cached. Greedy, fixed
//! length (`ignore_eos`), a 64-token prompt, 32 new tokens, no early stopping.
//!
//! Why trie-beam can win: batch beam search runs one forward per beam per step, so it streams
//! every weight `width` times a step and holds `width` copies of the prompt's cache; the trie
//! runs one forward over all live leaves (weights streamed once) and caches the prompt and
//! each shared prefix once — at the price of attention over the whole trie, masked.
//!
//! `RAYON_NUM_THREADS=2 cargo bench -p oae-methods --bench beam` (OAE_BEAM_QUICK=1: widths
//! 2 and 8, synthetic only).

use std::time::Instant;

use oae_harness::Method;
use oae_methods::model::catalog;

#[path = "../tests/common/mod.rs"]
mod common;

/// (answer tokens/s, KV bytes at peak) of one request for 32 tokens.
fn run(m: &mut dyn Method, prompt: &str) -> (f64, f64) {
    let t = Instant::now();
    let (tokens, _, c) = common::serve(m, &common::request(0, prompt, 32));
    (tokens.len() as f64 / t.elapsed().as_secs_f64(), c["kv_bytes_peak"])
}

fn main() {
    let quick = std::env::var("OAE_BEAM_QUICK").is_ok();
    let widths: &[u32] = if quick { &[2, 8] } else { &[2, 4, 8, 16] };
    let mut models = vec![(
        "synthetic 8×512",
        "{ kind = \"synthetic\", layers = 8, hidden = 512, heads = 8, kv_heads = 4, ffn = 1536, vocab = 512 }"
            .to_string(),
        // 64 bytes = 65 tokens of the byte tokenizer.
        "The trie keeps one copy of every prefix that several beams share.".to_string(),
    )];
    if !quick && catalog::entry("smollm2-135m-instruct").is_some_and(|e| e.present(&catalog::cache_dir())) {
        models.push((
            "SmolLM2-135M",
            "{ kind = \"gguf\", name = \"smollm2-135m-instruct\", max_seq = 1024 }".to_string(),
            "Explain in one paragraph why the river town rebuilt its old stone bridge after the flood of the autumn, and what the council decided about the market square.".to_string(),
        ));
    } else if !quick {
        println!("SmolLM2: SKIPPED (`oae models fetch smollm2-135m-instruct`)");
    }
    println!(
        "| model | width | batch beam tok/s | trie-beam tok/s | speed-up | batch KV MB peak | trie KV MB peak | KV ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, model, prompt) in &models {
        for &w in widths {
            let cfg =
                format!("model = {model}\nwidth = {w}\nignore_eos = true\nearly_stopping = false\nchat = \"off\"");
            let mut batch = common::ready("beam", &cfg);
            let mut trie = common::ready("trie-beam", &cfg);
            run(batch.as_mut(), prompt);
            run(trie.as_mut(), prompt);
            let (bt, bkv) = run(batch.as_mut(), prompt);
            let (tt, tkv) = run(trie.as_mut(), prompt);
            println!(
                "| {name} | {w} | {bt:.1} | {tt:.1} | {:.2}× | {:.1} | {:.1} | {:.2}× |",
                tt / bt,
                bkv / 1e6,
                tkv / 1e6,
                bkv / tkv
            );
        }
    }
}
