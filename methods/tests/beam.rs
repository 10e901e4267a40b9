//! Batch beam search on the embedded synthetic model: width 1 is greedy decoding, the score
//! it reports is the log-probability of what it returns (recomputed by one teacher-forced
//! forward), the search is deterministic, every beam holds its own cache, and sampling
//! settings are refused.

use oae_harness::Method;
use oae_methods::beam::log_softmax;
use oae_methods::model::{KvCache, Logits, ModelSpec, all_rows};
use oae_workloads::Request;

mod common;
use common::request;

/// The streamed tokens and the counters.
fn serve(m: &mut dyn Method, r: &Request) -> (Vec<u32>, std::collections::BTreeMap<String, f64>) {
    let (tokens, _, counters) = common::serve(m, r);
    (tokens, counters)
}

const PROMPTS: [&str; 3] = ["The river town keeps", "0123456789", "Beam search ranks"];

#[test]
fn width_one_is_greedy_decoding() {
    let mut dense = common::ready("dense", "");
    let mut beam = common::ready("beam", "width = 1");
    for (i, p) in PROMPTS.iter().enumerate() {
        let r = request(i as u64, p, 24);
        assert_eq!(serve(beam.as_mut(), &r).0, serve(dense.as_mut(), &r).0, "prompt {p:?}");
    }
}

#[test]
fn the_reported_score_is_the_log_probability_of_the_answer() {
    let spec = ModelSpec::default();
    let m = spec.load(&oae_methods::model::Device::Cpu).unwrap();
    for (width, penalty) in [(2, 0.0), (4, 1.0), (8, 0.0)] {
        let mut beam = common::ready(
            "beam",
            &format!("width = {width}\nlength_penalty = {penalty}\nignore_eos = true"),
        );
        for (i, p) in PROMPTS.iter().enumerate() {
            let r = request(i as u64, p, 12);
            let (tokens, counters) = serve(beam.as_mut(), &r);
            assert_eq!(tokens.len(), 12);
            // Teacher forcing: the answer's summed log-probability in one forward.
            let prompt = m.tokenizer.encode(p).unwrap();
            let mut ids = prompt.clone();
            ids.extend(&tokens);
            let mut cache = KvCache::new(m.decoder.config().layers);
            let rows = all_rows(&m.decoder.forward(&ids, &mut cache, Logits::All).unwrap()).unwrap();
            let logp: f64 = tokens
                .iter()
                .enumerate()
                .map(|(j, &t)| log_softmax(&rows[prompt.len() - 1 + j])[t as usize])
                .sum();
            let score = logp / (tokens.len() as f64).powf(penalty);
            assert!(
                (counters["score"] - score).abs() < 1e-4 * score.abs().max(1.0),
                "width {width}: reported {} recomputed {score}",
                counters["score"]
            );
            // Deterministic, and every beam its own cache: width × one beam's bytes.
            assert_eq!(serve(beam.as_mut(), &r).0, tokens);
            assert_eq!(counters["beams"], width as f64);
            let one = cache.bytes() as f64 / ids.len() as f64 * (ids.len() - 1) as f64;
            assert!(
                (counters["kv_bytes_peak"] - width as f64 * one).abs() < 1.0,
                "width {width}: kv_bytes_peak {} vs {width} × {one}",
                counters["kv_bytes_peak"]
            );
        }
    }
}

#[test]
fn sampling_settings_are_refused() {
    let e = common::build("beam", "temperature = 0.7").err().unwrap();
    assert!(e.to_string().contains("temperature"), "{e}");
    let e = common::build("beam", "length_penalty = -1").err().unwrap();
    assert!(e.to_string().contains("length_penalty"), "{e}");
}
