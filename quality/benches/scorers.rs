//! Scoring throughput: EM and F1 over many short answers (the issue asks for 1M answers;
//! criterion reports the time per 10,000).

use criterion::{Criterion, criterion_group, criterion_main};
use oae_quality::task::parse;

fn bench(c: &mut Criterion) {
    let item = parse(
        r#"{"id":"a","question":"q","references":["the Denver Broncos","Broncos","Denver"],"answer_type":"extractive"}"#,
        "t",
    )
    .unwrap()
    .remove(0);
    let answers: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                "The Denver Broncos won Super Bowl {} in the year {}.",
                i % 60,
                1960 + i % 70
            )
        })
        .collect();
    for name in ["em", "f1", "contains", "numeric"] {
        let s = oae_quality::scorer(name).unwrap();
        c.bench_function(&format!("{name} x10k"), |b| {
            b.iter(|| answers.iter().map(|a| s.score(a, &item)).sum::<f64>())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
