//! Schedule generation speed. Target (issue: workloads and statistics): a 1M-arrival
//! schedule — arrival times, request shapes and synthesized prompts, hashed — in ≤ 1 s.
//!
//! `cargo bench -p oae-workloads --bench schedule`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use oae_core::config::SourceFile;
use oae_core::rng::seeded;
use oae_workloads::workload::WorkloadEntry;
use oae_workloads::{Limit, WorkloadSpec, arrivals};

const N: u64 = 1_000_000;

fn workload(text: &str) -> WorkloadSpec {
    let source: Arc<SourceFile> = SourceFile::new("bench.toml", text);
    let entry: WorkloadEntry = toml::from_str(text).unwrap();
    WorkloadSpec::from_entry(entry, &source, 0, &[]).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("schedule");
    g.sample_size(10);
    // The quick suite's shape: Poisson arrivals, prompts of 16–96 tokens, 32 output tokens.
    let w = workload(
        r#"
name = "bench"
arrival = { process = "poisson", rate_qps = 3.0 }
input_tokens = { dist = "uniform", min = 16, max = 96 }
output_tokens = 32
"#,
    );
    g.bench_function("1M arrivals, poisson, prompts synthesized, hashed", |b| {
        b.iter(|| black_box(w.schedule(1, Limit::Count(N), None).unwrap().len()))
    });
    let w = workload(
        r#"
name = "bench"
arrival = { process = "onoff", rate_on_qps = 5.0, mean_on_s = 20.0, mean_off_s = 600.0 }
input_tokens = { dist = "lognormal", median = 256, sigma = 0.8, max = 2048 }
output_tokens = { dist = "lognormal", median = 64, sigma = 0.8, max = 512 }
"#,
    );
    g.bench_function("1M arrivals, onoff, lognormal lengths, compressed to 60 s gaps", |b| {
        b.iter(|| {
            black_box(
                w.schedule(1, Limit::Count(N), Some(std::time::Duration::from_secs(60)))
                    .unwrap()
                    .len(),
            )
        })
    });
    for (name, text) in [
        ("poisson", "process = \"poisson\"\nrate_qps = 3.0\n"),
        ("gamma", "process = \"gamma\"\nrate_qps = 3.0\ncv = 4.0\n"),
        (
            "onoff",
            "process = \"onoff\"\nrate_on_qps = 5.0\nmean_on_s = 20.0\nmean_off_s = 600.0\n",
        ),
        ("diurnal", "process = \"diurnal\"\nrate_qps = 3.0\namplitude = 0.8\n"),
    ] {
        let p = arrivals::build(oae_core::config::ConfigTable::parse("bench.toml", text).unwrap()).unwrap();
        g.bench_function(format!("1M offsets only, {name}"), |b| {
            b.iter(|| black_box(p.offsets(&mut seeded(1, &["b"]), Limit::Count(N)).len()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
