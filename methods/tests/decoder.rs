//! The decoder's incremental path must equal full recomputation, and dense greedy decoding
//! must be deterministic.

mod common;

use candle_core::{Device, Tensor};
use oae_methods::model::{KvCache, Logits, ModelSpec, SyntheticSpec};

fn model() -> oae_methods::model::LoadedModel {
    ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 256,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2().unwrap()
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().chain(b).fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn incremental_decoding_matches_full_recomputation() {
    let m = model();
    let tokens = m
        .tokenizer
        .encode("The quick brown fox jumps over the lazy dog, 1234567890.")
        .unwrap();
    let layers = m.decoder.config().layers;

    let mut full_cache = KvCache::new(layers);
    let full = rows(&m.decoder.forward(&tokens, &mut full_cache, Logits::All).unwrap());
    assert_eq!(full.len(), tokens.len());

    // Prefill half, then one token at a time.
    let split = tokens.len() / 2;
    let mut cache = KvCache::new(layers);
    let mut incremental = rows(&m.decoder.forward(&tokens[..split], &mut cache, Logits::All).unwrap());
    for &t in &tokens[split..] {
        incremental.extend(rows(&m.decoder.forward(&[t], &mut cache, Logits::Last).unwrap()));
    }
    assert_eq!(cache.len(), tokens.len());
    for (i, (a, b)) in full.iter().zip(&incremental).enumerate() {
        let d = max_rel_diff(a, b);
        assert!(d < 1e-4, "position {i}: relative difference {d}");
    }
}

#[test]
fn truncated_cache_equals_fresh_prefill() {
    let m = model();
    let layers = m.decoder.config().layers;
    let a = m.tokenizer.encode("shared prefix, then").unwrap();
    let mut cache = KvCache::new(layers);
    m.decoder.forward(&a, &mut cache, Logits::Last).unwrap();
    let snapshot = cache.clone();
    m.decoder.forward(&[10, 20, 30], &mut cache, Logits::Last).unwrap();
    cache.truncate(a.len()).unwrap();
    let after_truncate = rows(&m.decoder.forward(&[99], &mut cache, Logits::Last).unwrap());
    let mut snap = snapshot;
    let after_snapshot = rows(&m.decoder.forward(&[99], &mut snap, Logits::Last).unwrap());
    let mut fresh = KvCache::new(layers);
    let mut seq = a.clone();
    seq.push(99);
    let fresh_logits = rows(&m.decoder.forward(&seq, &mut fresh, Logits::Last).unwrap());
    assert!(max_rel_diff(&after_truncate[0], &fresh_logits[0]) < 1e-4);
    assert!(max_rel_diff(&after_snapshot[0], &fresh_logits[0]) < 1e-4);
}

#[test]
fn same_seed_same_weights_different_seed_different_weights() {
    let logits = |seed| {
        let m = ModelSpec::Synthetic(SyntheticSpec {
            seed,
            max_seq: 64,
            ..SyntheticSpec::default()
        })
        .load(&Device::Cpu)
        .unwrap();
        let mut c = KvCache::new(m.decoder.config().layers);
        rows(&m.decoder.forward(&[256, 65, 66], &mut c, Logits::Last).unwrap()).remove(0)
    };
    assert_eq!(logits(1), logits(1));
    assert_ne!(logits(1), logits(2));
}

#[test]
fn context_overflow_and_bad_ids_are_errors_not_panics() {
    let m = ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 8,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap();
    let mut c = KvCache::new(m.decoder.config().layers);
    assert!(m.decoder.forward(&[1; 9], &mut c, Logits::Last).is_err());
    assert!(m.decoder.forward(&[100_000], &mut c, Logits::Last).is_err());
}

#[test]
fn bad_shapes_are_rejected() {
    let bad = SyntheticSpec {
        hidden: 130,
        heads: 4,
        ..SyntheticSpec::default()
    };
    assert!(ModelSpec::Synthetic(bad).check().is_err());
    let bad = SyntheticSpec {
        heads: 4,
        kv_heads: 3,
        ..SyntheticSpec::default()
    };
    assert!(ModelSpec::Synthetic(bad).check().is_err());
    let bad = SyntheticSpec {
        vocab: 100,
        ..SyntheticSpec::default()
    };
    assert!(ModelSpec::Synthetic(bad).check().is_err());
}

#[test]
fn selecting_cache_rows_equals_a_fresh_prefill_of_those_tokens() {
    let m = model();
    let layers = m.decoder.config().layers;
    let a = m.tokenizer.encode("select the first rows").unwrap();
    let mut cache = KvCache::new(layers);
    m.decoder.forward(&a, &mut cache, Logits::Last).unwrap();
    let keep: Vec<usize> = (0..7).collect();
    cache.select(&keep).unwrap();
    assert_eq!(cache.len(), 7);
    let after = rows(&m.decoder.forward(&[99], &mut cache, Logits::Last).unwrap());
    let mut fresh = KvCache::new(layers);
    let mut seq = a[..7].to_vec();
    seq.push(99);
    let want = rows(&m.decoder.forward(&seq, &mut fresh, Logits::Last).unwrap());
    assert!(max_rel_diff(&after[0], &want[0]) < 1e-4);
    assert!(cache.select(&[100]).is_err());
}

#[test]
fn early_exit_equals_a_model_of_the_first_k_layers() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    oae_methods::model::save_hf(&m.decoder, dir.path()).unwrap();
    let cfg = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        cfg.replace("\"num_hidden_layers\": 4", "\"num_hidden_layers\": 2"),
    )
    .unwrap();
    common::write_min_tokenizer(dir.path());
    let shallow = oae_methods::model::load_hf(dir.path(), Some(256), &Device::Cpu).unwrap();
    let tokens = m.tokenizer.encode("early exit").unwrap();
    let mut c2 = KvCache::new(2);
    let exit = rows(&m.decoder.forward_depth(&tokens, &mut c2, Logits::All, 2).unwrap());
    let mut cs = KvCache::new(2);
    let want = rows(&shallow.decoder.forward(&tokens, &mut cs, Logits::All).unwrap());
    for (a, b) in exit.iter().zip(&want) {
        assert!(max_rel_diff(a, b) < 1e-4);
    }
    // Full depth is the ordinary forward; a cache with too few layers is an error.
    let mut full = KvCache::new(4);
    let mut again = KvCache::new(4);
    assert_eq!(
        rows(&m.decoder.forward_depth(&tokens, &mut full, Logits::Last, 4).unwrap()),
        rows(&m.decoder.forward(&tokens, &mut again, Logits::Last).unwrap())
    );
    assert!(
        m.decoder
            .forward_depth(&tokens, &mut KvCache::new(1), Logits::Last, 2)
            .is_err()
    );
    assert!(
        m.decoder
            .forward_depth(&tokens, &mut KvCache::new(4), Logits::Last, 5)
            .is_err()
    );
}
