//! MoE vs dense at equal active parameters: per-token time and resident memory.
//!
//! Dense: the embedded shape with FFN width 384. MoE: 8 experts of width 192 with top-2
//! routing, so a token touches the same FFN parameters (2 x 192 = 384) while 4x the FFN
//! weights stay resident. The ratios printed at the end are MoE / dense.
//! `cargo bench -p oae-methods --bench moe`.

use std::hint::black_box;

use candle_core::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oae_methods::model::{KvCache, Logits, ModelSpec, SyntheticSpec};

fn bench(c: &mut Criterion) {
    if std::env::var("RAYON_NUM_THREADS").is_err() {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        // SAFETY: set before candle or criterion start any thread.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", (cpus - 1).max(1).to_string()) };
    }
    let dense = ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 512,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap();
    let moe = ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 512,
        ffn: 192,
        experts: 8,
        top_k: 2,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap();
    let (dc, mc) = (*dense.decoder.config(), *moe.decoder.config());
    eprintln!(
        "dense: {} params ({} active); moe 8x192 top-2: {} params ({} active)",
        dc.params(),
        dc.active_params(),
        mc.params(),
        mc.active_params()
    );
    let prompt: Vec<u32> = (0..64u32).map(|i| (i * 7) % 256).collect();
    let long: Vec<u32> = (0..128u32).map(|i| (i * 13) % 256).collect();
    let mut g = c.benchmark_group("moe-vs-dense");
    for (name, m) in [("dense", &dense), ("moe 8x192 top-2", &moe)] {
        let mut base = KvCache::new(m.decoder.config().layers);
        m.decoder.forward(&prompt, &mut base, Logits::Last).unwrap();
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{name}: decode 1 token (context 64)"), |b| {
            b.iter_batched(
                || base.clone(),
                |mut cache| m.decoder.forward(black_box(&[65]), &mut cache, Logits::Last).unwrap(),
                criterion::BatchSize::SmallInput,
            )
        });
        g.throughput(Throughput::Elements(long.len() as u64));
        g.bench_function(format!("{name}: prefill 128 tokens"), |b| {
            b.iter(|| {
                let mut cache = KvCache::new(m.decoder.config().layers);
                m.decoder.forward(black_box(&long), &mut cache, Logits::Last).unwrap()
            })
        });
    }
    g.finish();
    eprintln!(
        "memory ratio (resident weights, moe/dense): {:.2}x ({} vs {} bytes)",
        moe.decoder.weight_bytes() as f64 / dense.decoder.weight_bytes() as f64,
        moe.decoder.weight_bytes(),
        dense.decoder.weight_bytes()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
