//! The `minilm` scorer against sentence-transformers: the embeddings of four sentences equal a
//! recorded sentence-transformers reference (tests/data/minilm_reference.json) within 1e-4
//! cosine, and the scorer's similarities follow. Skipped with a message when the model is not
//! in the cache.

use oae_methods::model::catalog;
use oae_methods::scorers::minilm::{MODEL, MiniLm};
use oae_quality::ModelScorer;
use oae_quality::task::parse;
use serde_json::Value;

fn model() -> Option<MiniLm> {
    let root = catalog::cache_dir();
    if !catalog::entry(MODEL).is_some_and(|e| e.present(&root)) {
        eprintln!(
            "SKIPPED: {MODEL} is not in the model cache {} (run `oae models fetch {MODEL}`)",
            root.display()
        );
        return None;
    }
    Some(MiniLm::from_cache().unwrap())
}

fn reference() -> (Vec<String>, Vec<Vec<f64>>) {
    let v: Value = serde_json::from_str(include_str!("data/minilm_reference.json")).unwrap();
    let sentences = v["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let emb = v["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
        .collect();
    (sentences, emb)
}

fn cos(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn embeddings_match_sentence_transformers() {
    let Some(m) = model() else { return };
    let (sentences, want) = reference();
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let got = m.embed(&texts).unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let g: Vec<f64> = g.iter().map(|&x| f64::from(x)).collect();
        assert_eq!(g.len(), 384);
        let c = cos(&g, w);
        assert!(
            c > 1.0 - 1e-4,
            "sentence {i} ({}): cosine with the reference {c}",
            sentences[i]
        );
        let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "unit length: {norm}");
    }
    // One at a time equals in a batch (padding does not leak into the mean).
    let alone = m.embed(&texts[3..]).unwrap();
    let batched: Vec<f64> = got[3].iter().map(|&x| f64::from(x)).collect();
    let alone: Vec<f64> = alone[0].iter().map(|&x| f64::from(x)).collect();
    assert!(cos(&alone, &batched) > 1.0 - 1e-6);
}

#[test]
fn the_scorer_is_the_best_cosine_over_references() {
    let Some(mut m) = model() else { return };
    let (sentences, want) = reference();
    let item = parse(
        &format!(
            "{{\"id\": \"a\", \"question\": \"q\", \"references\": [{:?}, {:?}]}}",
            sentences[2], sentences[1]
        ),
        "t",
    )
    .unwrap()
    .remove(0);
    let scores = m
        .score_batch(&[
            (sentences[0].as_str(), &item),
            ("", &item),
            (sentences[2].as_str(), &item),
        ])
        .unwrap();
    // vs "Warsaw…" −0.05 (→ 0) and vs "Denver beat Carolina…" 0.69: the best is 0.69.
    let expect = cos(&want[0], &want[1]);
    assert!((scores[0] - expect).abs() < 1e-4, "{} vs {expect}", scores[0]);
    assert_eq!(scores[1], 0.0, "an empty answer");
    assert!(
        (scores[2] - 1.0).abs() < 1e-5,
        "an answer equal to a reference: {}",
        scores[2]
    );
}
