//! oae-methods: the model core and the inference methods oae benchmarks.
//!
//! The model core ([`model`]) is one instrumented Llama-family decoder built from candle
//! ops, with an explicit KV cache and all-position logits, that every adapter drives. Each
//! adapter lives in its own folder and registers with one line in [`registry`]:
//!
//! - `dense` — the baseline: prefill + KV-cache decode, greedy or seeded top-k/top-p.
//! - `moe` — sparse mixture of experts: synthetic, a Mixtral directory, or upcycled.
//! - `speculative` — draft-and-verify decoding (separate draft model or early exit).
//! - `rag` — retrieval-augmented generation over a suite's `[[knowledge]]` base (BM25,
//!   dense, hybrid; rerank and follow-up query; closed-book and full-context baselines).
//! - `cag` — cache-augmented generation: the knowledge base prefilled into the KV cache once.
//! - `beam` — batch beam search (one KV cache per beam), the baseline of trie-based beam search.
//! - `trie-beam` — beam search over one prefix-trie KV cache, all beams in one masked forward.
//! - `openai` — a model behind an OpenAI-compatible HTTP server (vLLM, llama.cpp, TGI, …),
//!   streamed; optionally launched by oae with its start-up metered as setup.
//! - `mock` — the harness's test double (`oae_harness::mock`, listed here so suites can name
//!   it): fixed service time and failure pattern, no model.
//!
//! Model-backed answer scorers ([`scorers`]: MiniLM similarity) live here too, beside the
//! model code. This is the only crate that depends on candle.

pub mod beam;
pub mod cag;
pub mod cold_start;
pub mod dense;
mod error;
pub mod generate;
pub mod knowledge;
pub mod model;
pub mod moe;
pub mod openai;
pub mod rag;
pub mod scorers;
pub mod speculative;
pub mod trie_beam;

pub use error::Error;

use oae_harness::MethodSpec;

/// Every method oae can run, one line each.
pub fn registry() -> Vec<&'static dyn MethodSpec> {
    vec![
        &dense::SPEC,
        &moe::SPEC,
        &speculative::SPEC,
        &rag::SPEC,
        &cag::SPEC,
        &beam::SPEC,
        &trie_beam::SPEC,
        &openai::SPEC,
        &oae_harness::mock::SPEC,
    ]
}
