//! Dense throughput on the embedded synthetic model, next to its memory-bandwidth roofline.
//!
//! - `copy 64 MiB`: DRAM copy bandwidth (read + write) — the ceiling for models larger
//!   than the caches.
//! - `copy weights-sized buffer`: copy bandwidth at the model's own weight size — the
//!   ceiling that applies when the weights stay cache-resident, as the embedded model's do.
//! - `decode 1 token`: one KV-cache decode step at context 64, from a cloned cache.
//! - `decode 32 tokens sequentially`: the dense loop itself (forward + greedy choice).
//! - `prefill 128 tokens`: one prompt forward (tokens/s = 128 / time).
//!
//! Roofline for decode: a step must stream every weight once, so
//! tokens/s ≤ copy bandwidth ÷ weight bytes per token (both ceilings printed).
//!
//! Threads follow `oae run`'s policy: RAYON_NUM_THREADS if set, else logical CPUs − 1.

use std::hint::black_box;

use candle_core::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oae_methods::model::{KvCache, Logits, ModelSpec, SyntheticSpec};

use oae_methods::model::throughput::copy_bandwidth as bandwidth;

fn bench(c: &mut Criterion) {
    if std::env::var("RAYON_NUM_THREADS").is_err() {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        // SAFETY: set before candle or criterion start any thread.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", (cpus - 1).max(1).to_string()) };
    }
    eprintln!(
        "compute threads: {}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_default()
    );
    let m = ModelSpec::Synthetic(SyntheticSpec::default())
        .load(&Device::Cpu)
        .unwrap();
    let cfg = *m.decoder.config();
    let weight_bytes = cfg.weight_bytes_per_token();

    let mut g = c.benchmark_group("roofline");
    for (name, bytes) in [
        ("copy 64 MiB", 64usize << 20),
        ("copy weights-sized buffer", weight_bytes),
    ] {
        let src = vec![1u8; bytes];
        let mut dst = vec![0u8; bytes];
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(name, |b| b.iter(|| dst.copy_from_slice(black_box(&src))));
    }
    g.finish();
    let (dram, cached) = (bandwidth(64 << 20), bandwidth(weight_bytes));
    eprintln!(
        "embedded model: {} params, {:.2} MiB weights streamed per decoded token\n  DRAM copy {:.1} GB/s => decode roofline {:.0} tokens/s\n  weights-sized copy {:.1} GB/s => cache-resident roofline {:.0} tokens/s",
        cfg.params(),
        weight_bytes as f64 / (1 << 20) as f64,
        dram / 1e9,
        dram / weight_bytes as f64,
        cached / 1e9,
        cached / weight_bytes as f64
    );

    let prompt: Vec<u32> = (0..64u32).map(|i| (i * 7) % 256).collect();
    let mut base = KvCache::new(cfg.layers);
    m.decoder.forward(&prompt, &mut base, Logits::Last).unwrap();
    let mut g = c.benchmark_group("dense");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode 1 token (context 64)", |b| {
        b.iter_batched(
            || base.clone(),
            |mut cache| m.decoder.forward(black_box(&[65]), &mut cache, Logits::Last).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(32));
    g.bench_function("decode 32 tokens sequentially (context 64..96)", |b| {
        b.iter(|| {
            let mut cache = base.clone();
            let mut next = 65u32;
            for _ in 0..32 {
                let logits = m.decoder.forward(&[next], &mut cache, Logits::Last).unwrap();
                let v: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
                next = oae_methods::model::sample(&v, &Default::default(), &mut oae_core::rng::seeded(0, &[]));
            }
            next
        })
    });
    let long: Vec<u32> = (0..128u32).map(|i| (i * 13) % 256).collect();
    g.throughput(Throughput::Elements(long.len() as u64));
    g.bench_function("prefill 128 tokens", |b| {
        b.iter(|| {
            let mut cache = KvCache::new(cfg.layers);
            m.decoder.forward(black_box(&long), &mut cache, Logits::Last).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
