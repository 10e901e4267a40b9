//! Speculative decoding vs dense across draft/target agreement, on this machine.
//!
//! The synthetic model's `residual_scale` sets how much each layer moves the residual
//! stream, so it sets how often the target's first k layers (the self-speculative draft)
//! agree with the whole model: 0 → always, larger → less. For each scale the bench serves
//! the same greedy requests with `dense` and with `speculative` (draft = first k layers,
//! fixed γ) and prints acceptance, tokens/s and the speedup; the break-even acceptance is
//! where the speedup crosses 1.
//!
//! Two model sizes: the embedded default (4 layers, d=128: cache-resident, compute-bound)
//! and a larger one (8 layers, d=512: ~100 MB of F32 weights, memory-bound like real
//! models). `cargo bench -p oae-methods --bench speculative` (set OAE_SPEC_QUICK=1 for one
//! size and fewer tokens).

use std::time::Instant;

use oae_harness::{Flow, Method, Probe, TokenSink};
use oae_workloads::Request;

#[path = "../tests/common/mod.rs"]
mod common;

struct Count(u64);
impl TokenSink for Count {
    fn token(&mut self, _: u32) -> Flow {
        self.0 += 1;
        Flow::Continue
    }
}

fn build(id: &str, toml: &str) -> Box<dyn Method> {
    common::ready(id, toml)
}

/// Tokens/s over `n` requests, and the summed counters.
fn serve(m: &mut dyn Method, n: u64, tokens: u32) -> (f64, std::collections::BTreeMap<String, f64>) {
    let mut total = 0;
    let mut sums = std::collections::BTreeMap::new();
    let t = Instant::now();
    for id in 0..n {
        let r = Request {
            id,
            prompt: format!("Request {id}: summarise the energy report for the clinic."),
            max_new_tokens: tokens,
            target_input_tokens: 48,
            source_failed: false,
            task: None,
        };
        let mut sink = Count(0);
        let mut probe = Probe::default();
        m.serve(&r, &mut sink, &mut probe).unwrap();
        total += sink.0;
        for (k, v) in probe.finish().1 {
            *sums.entry(k).or_insert(0.0) += v;
        }
    }
    (total as f64 / t.elapsed().as_secs_f64(), sums)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::var("RAYON_NUM_THREADS").is_err() {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        // SAFETY: set before candle starts any thread.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", (cpus - 1).max(1).to_string()) };
    }
    let quick = std::env::var("OAE_SPEC_QUICK").is_ok();
    let sizes: &[(&str, &str, usize)] = if quick {
        &[("embedded (4x128)", "", 1)]
    } else {
        &[
            ("embedded (4x128)", "", 1),
            (
                "larger (8x512)",
                "layers = 8, hidden = 512, heads = 8, kv_heads = 4, ffn = 1536, ",
                2,
            ),
        ]
    };
    let (requests, tokens) = if quick { (3, 48) } else { (6, 96) };
    println!(
        "threads {}; {requests} greedy requests x {tokens} tokens per cell; gamma 4",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_default()
    );
    // SmolLM2 when cached: acceptance of its own first k layers (no trained exit head).
    let root = oae_methods::model::catalog::cache_dir();
    if !quick && oae_methods::model::catalog::entry("smollm2-135m-instruct").is_some_and(|e| e.present(&root)) {
        println!("\nSmolLM2-135M-Instruct (30 layers), self-speculative draft = first k layers, gamma 3");
        println!(
            "{:>4} {:>11} {:>10} {:>12} {:>12} {:>8}",
            "k", "acceptance", "mean_len", "dense tok/s", "spec tok/s", "speedup"
        );
        let model = "model = { kind = \"gguf\", name = \"smollm2-135m-instruct\", max_seq = 512 }\nchat = \"off\"\n";
        let mut dense = build("dense", &format!("ignore_eos = true\n{model}"));
        let (d, _) = serve(dense.as_mut(), 2, 48);
        for k in [12, 20, 26, 29] {
            let mut spec = build(
                "speculative",
                &format!("ignore_eos = true\n{model}draft = {{ layers = {k} }}\ngamma = 3\n"),
            );
            let (s, c) = serve(spec.as_mut(), 2, 48);
            let acc = c["accepted"] / c["drafted"];
            let len = 1.0 + c["accepted"] / c["verify_steps"];
            println!("{k:>4} {acc:>11.3} {len:>10.2} {d:>12.1} {s:>12.1} {:>7.2}x", s / d);
        }
    } else if !quick {
        println!(
            "\nSmolLM2 rows SKIPPED: not in the model cache {} (oae models fetch smollm2-135m-instruct)",
            root.display()
        );
    }
    for (label, shape, k) in sizes {
        println!("\nmodel {label}, draft = first {k} layer(s)");
        println!(
            "{:>14} {:>11} {:>10} {:>12} {:>12} {:>8}",
            "residual_scale", "acceptance", "mean_len", "dense tok/s", "spec tok/s", "speedup"
        );
        for scale in [0.0, 0.02, 0.05, 0.1, 0.25, 1.0] {
            let model = format!("model = {{ kind = \"synthetic\", {shape}max_seq = 512, residual_scale = {scale} }}\n");
            let mut dense = build("dense", &format!("ignore_eos = true\n{model}"));
            let mut spec = build(
                "speculative",
                &format!("ignore_eos = true\n{model}draft = {{ layers = {k} }}\ngamma = 4\n"),
            );
            let (d, _) = serve(dense.as_mut(), requests, tokens);
            let (s, c) = serve(spec.as_mut(), requests, tokens);
            let acc = c["accepted"] / c["drafted"];
            let len = 1.0 + c["accepted"] / c["verify_steps"];
            println!(
                "{scale:>14.2} {acc:>11.3} {len:>10.2} {d:>12.1} {s:>12.1} {:>7.2}x",
                s / d
            );
        }
    }
}
