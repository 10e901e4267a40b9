//! Dense throughput on the embedded synthetic model, next to its memory-bandwidth roofline.
//!
//! - `copy 64 MiB`: measured memory copy bandwidth of this machine (read + write).
//! - `decode 1 token`: one KV-cache decode step at context 64 (tokens/s = 1 / time).
//! - `prefill 128 tokens`: one prompt forward (tokens/s = 128 / time).
//!
//! Roofline for decode: a step must stream every weight once, so
//! tokens/s ≤ copy bandwidth ÷ weight bytes per token (printed at start).

use std::hint::black_box;

use candle_core::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oae_methods::model::{KvCache, Logits, ModelSpec, SyntheticSpec};

fn bench(c: &mut Criterion) {
    let m = ModelSpec::Synthetic(SyntheticSpec::default()).load(&Device::Cpu).unwrap();
    let cfg = *m.decoder.config();
    let weight_bytes = cfg.weight_bytes_per_token();

    let mut g = c.benchmark_group("roofline");
    let src = vec![1u8; 64 << 20];
    let mut dst = vec![0u8; 64 << 20];
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.bench_function("copy 64 MiB", |b| b.iter(|| dst.copy_from_slice(black_box(&src))));
    g.finish();
    // A quick standalone estimate so the roofline can be printed next to the results.
    let t = std::time::Instant::now();
    for _ in 0..20 {
        dst.copy_from_slice(black_box(&src));
    }
    let bw = 20.0 * src.len() as f64 / t.elapsed().as_secs_f64();
    eprintln!(
        "embedded model: {} params, {:.2} MiB weights streamed per decoded token; copy bandwidth ≈ {:.1} GB/s ⇒ decode roofline ≈ {:.0} tokens/s",
        cfg.params(),
        weight_bytes as f64 / (1 << 20) as f64,
        bw / 1e9,
        bw / weight_bytes as f64
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
