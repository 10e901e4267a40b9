//! Trie-based beam search on the embedded synthetic model: it returns batch beam search's
//! beams and scores at several widths, lengths and length penalties; its tree mask lets a
//! token see only its ancestors (every leaf's next-token distribution equals a fresh forward
//! of its own path); garbage collection leaves no unreachable node; and it holds less KV
//! cache than one cache per beam.

use std::collections::BTreeMap;

use oae_harness::Method;
use oae_methods::beam::{Frontier, log_softmax};
use oae_methods::model::{Device, KvCache, Logits, ModelSpec, last_row};
use oae_methods::trie_beam::TrieFrontier;

mod common;

/// The streamed tokens and the counters.
fn serve(m: &mut dyn Method, id: u64, prompt: &str, n: u32) -> (Vec<u32>, BTreeMap<String, f64>) {
    let (tokens, _, counters) = common::serve(m, &common::request(id, prompt, n));
    (tokens, counters)
}

#[test]
fn trie_beam_returns_batch_beam_searchs_beams_and_scores() {
    let prompts = ["The river town keeps", "0123456789", "Beam search ranks"];
    for (width, len, keys) in [
        (1, 16, ""),
        (2, 8, "length_penalty = 0.0"),
        (4, 16, ""),
        (8, 12, "ignore_eos = true"),
        (4, 24, "early_stopping = false\nlength_penalty = 0.5"),
    ] {
        // The search's scores agree to f32 rounding with the KV cache in f32; in f16 (the
        // CPU's default) the two paths' last-bit differences can round a cached key the
        // other way, moving a score by a few 1e-5.
        for (kv, tolerance) in [("f32", 1e-5), ("f16", 2e-4)] {
            let cfg = format!("width = {width}\nkv_cache = \"{kv}\"\n{keys}");
            let mut batch = common::ready("beam", &cfg);
            let mut trie = common::ready("trie-beam", &cfg);
            for (i, p) in prompts.iter().enumerate() {
                let (bt, bc) = serve(batch.as_mut(), i as u64, p, len);
                let (tt, tc) = serve(trie.as_mut(), i as u64, p, len);
                assert_eq!(tt, bt, "width {width}, length {len}, prompt {p:?}, cache {kv}");
                assert!(
                    (tc["score"] - bc["score"]).abs() < tolerance,
                    "width {width}, cache {kv}: trie score {} vs batch {}",
                    tc["score"],
                    bc["score"]
                );
                assert_eq!(tc["finished_hypotheses"], bc["finished_hypotheses"]);
                if width >= 4 {
                    assert!(
                        tc["kv_bytes_peak"] < bc["kv_bytes_peak"],
                        "width {width}: trie {} vs batch {} KV bytes",
                        tc["kv_bytes_peak"],
                        bc["kv_bytes_peak"]
                    );
                    assert!(
                        tc["forwards"] * 2.0 < bc["forwards"],
                        "one forward per step, not per beam"
                    );
                }
            }
        }
    }
}

#[test]
fn the_tree_mask_shows_each_token_only_its_ancestors_and_gc_keeps_only_reachable_nodes() {
    let m = ModelSpec::default().load(&Device::Cpu).unwrap();
    let prompt = m.tokenizer.encode("A shared prompt for the trie").unwrap();
    let mut f = TrieFrontier::new(&m, &prompt).unwrap();
    // Paths of the live leaves, grown by hand: branch every leaf into two, keep at most 4
    // (dropping the first ones, so branches die and must be collected).
    let mut paths: Vec<Vec<u32>> = vec![Vec::new()];
    for step in 0..6u32 {
        let mut children = Vec::new();
        for (i, _) in paths.iter().enumerate() {
            children.push((i, 65 + (step + i as u32) % 26));
            children.push((i, 97 + (step * 3 + i as u32) % 26));
        }
        let keep = children.len().min(4);
        let children: Vec<(usize, u32)> = children[children.len() - keep..].to_vec();
        f.advance(&children, true).unwrap();
        paths = children
            .iter()
            .map(|&(p, t)| {
                let mut v = paths[p].clone();
                v.push(t);
                v
            })
            .collect();
        // Every leaf sees exactly its own path: equal to a fresh forward of prompt + path.
        for (i, path) in paths.iter().enumerate() {
            let mut ids = prompt.clone();
            ids.extend(path);
            let mut cache = KvCache::new(m.decoder.config().layers);
            let fresh = log_softmax(&last_row(&m.decoder.forward(&ids, &mut cache, Logits::Last).unwrap()).unwrap());
            let worst = fresh
                .iter()
                .zip(f.next(i))
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-4, "step {step}, leaf {i}: log-prob difference {worst}");
        }
        assert!(
            f.nodes() < 2 * f.reachable(),
            "garbage stays under half: {} of {}",
            f.nodes() - f.reachable(),
            f.nodes()
        );
        assert_eq!(
            f.kv_bytes(),
            (prompt.len() + f.nodes()) * f.kv_bytes() / (prompt.len() + f.nodes())
        );
    }
    f.collect(true).unwrap();
    assert_eq!(
        f.nodes(),
        f.reachable(),
        "a forced collection leaves no unreachable node"
    );
    // And the leaves still see their paths after compaction.
    let mut ids = prompt.clone();
    ids.extend(&paths[0]);
    let mut cache = KvCache::new(m.decoder.config().layers);
    let fresh = log_softmax(&last_row(&m.decoder.forward(&ids, &mut cache, Logits::Last).unwrap()).unwrap());
    let worst = fresh
        .iter()
        .zip(f.next(0))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "after GC: {worst}");
}
