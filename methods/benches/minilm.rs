//! MiniLM similarity per answer: a batch of 32 short answers scored against one reference each
//! (RAYON_NUM_THREADS sets the compute threads). Skipped with a message when
//! all-minilm-l6-v2 is not in the model cache.

use criterion::{Criterion, criterion_group, criterion_main};
use oae_methods::model::catalog;
use oae_methods::scorers::minilm::{MODEL, MiniLm};
use oae_quality::ModelScorer;
use oae_quality::task::parse;

fn bench(c: &mut Criterion) {
    let root = catalog::cache_dir();
    if !catalog::entry(MODEL).is_some_and(|e| e.present(&root)) {
        eprintln!("SKIPPED: {MODEL} is not in the model cache (run `oae models fetch {MODEL}`)");
        return;
    }
    let mut m = MiniLm::from_cache().unwrap();
    let item = parse(
        r#"{"id": "a", "question": "q", "references": ["The Denver Broncos defeated the Carolina Panthers 24–10."]}"#,
        "t",
    )
    .unwrap()
    .remove(0);
    let answers: Vec<String> = (0..32)
        .map(|i| format!("The Broncos won Super Bowl 50 by {} points in game {i}.", 10 + i % 7))
        .collect();
    let pairs: Vec<(&str, &oae_quality::TaskItem)> = answers.iter().map(|a| (a.as_str(), &item)).collect();
    c.bench_function("minilm 32 answers", |b| b.iter(|| m.score_batch(&pairs).unwrap()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
