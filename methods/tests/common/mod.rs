//! Helpers shared by the method tests and benches: build a registered method from TOML,
//! make requests, collect what a method streams, write a minimal tokenizer.json.
#![allow(dead_code)]

use std::collections::BTreeMap;

use oae_core::config::ConfigTable;
use oae_harness::{BuildContext, DeviceSpec, Flow, Method, MethodError, Probe, TokenSink};
use oae_workloads::Request;

/// Collects streamed token ids.
pub struct Collect(pub Vec<u32>);

impl TokenSink for Collect {
    fn token(&mut self, id: u32) -> Flow {
        self.0.push(id);
        Flow::Continue
    }
}

/// Builds method `id` from a TOML table (file label `m.toml`).
pub fn build(id: &str, toml: &str) -> Result<Box<dyn Method>, MethodError> {
    let spec = oae_methods::registry().into_iter().find(|s| s.id() == id).unwrap();
    let table = ConfigTable::parse("m.toml", toml).unwrap();
    spec.build(
        &table,
        &BuildContext {
            device: DeviceSpec::Cpu,
            seed: 0,
            label: id.into(),
            instance: 0,
            knowledge: Vec::new().into(),
        },
    )
}

/// Builds and prepares method `id`.
pub fn ready(id: &str, toml: &str) -> Box<dyn Method> {
    let mut m = build(id, toml).unwrap();
    m.prepare().unwrap();
    m
}

/// A request for `n` tokens.
pub fn request(id: u64, prompt: &str, n: u32) -> Request {
    Request {
        id,
        prompt: prompt.into(),
        max_new_tokens: n,
        target_input_tokens: prompt.len() as u32,
        source_failed: false,
        task: None,
    }
}

/// Serves `r`: the streamed tokens, the phases (ms) and the counters.
pub fn serve(m: &mut dyn Method, r: &Request) -> (Vec<u32>, BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let mut sink = Collect(Vec::new());
    let mut probe = Probe::default();
    m.serve(r, &mut sink, &mut probe).unwrap();
    let (phases, counters) = probe.finish();
    (sink.0, phases, counters)
}

/// Writes a one-token tokenizer.json into `dir` (for model directories whose tokenizer the
/// test does not use).
pub fn write_min_tokenizer(dir: &std::path::Path) {
    let vocab: tokenizers::models::bpe::Vocab = [("a".to_string(), 0u32)].into_iter().collect();
    let bpe = tokenizers::models::bpe::BPE::builder()
        .vocab_and_merges(vocab, vec![])
        .build()
        .unwrap();
    tokenizers::Tokenizer::new(bpe)
        .save(dir.join("tokenizer.json"), false)
        .unwrap();
}
