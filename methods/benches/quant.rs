//! Quantized mat-vec kernels at SmolLM2-135M's shapes (random weights: no download), plus a
//! 2048² matrix in each format of a Q4_K_M file, one activation row as in decode, per
//! instruction set this CPU has: time per product (best of five trials, weights cycled through
//! 64 MiB of copies so they come from memory as in decode), GB/s of weight bytes streamed, and
//! the share of the machine's read bandwidth that is; SmolLM2's own formats both in tiles of
//! eight rows (what oae runs) and in the row layout (`OAE_QUANT_TILES=0`).
//!
//! `cargo bench -p oae-methods --bench quant` (threads: RAYON_NUM_THREADS, default 1;
//! `OAE_BENCH_IN_CACHE=1` reuses one copy of each matrix — cache-resident: the kernels'
//! compute-bound speed, not what decode meets;
//! `OAE_QUANT_ISA=generic` measures the path of CPUs without AVX2: candle's kernels on the
//! file's blocks).

use std::hint::black_box;
use std::time::Instant;

use candle_core::quantized::GgmlDType;
use candle_core::quantized::k_quants::{BlockQ4_1, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8_0, GgmlType};
use oae_methods::model::quant::{Isa, QMatrix};
use oae_methods::model::throughput::read_bandwidth;

fn matrix<T: GgmlType>(ty: GgmlDType, rows: usize, cols: usize) -> QMatrix {
    let mut rng = oae_core::rng::seeded(7, &["quant-bench"]);
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| oae_core::rng::standard_normal(&mut rng) as f32)
        .collect();
    let mut blocks = vec![T::zeros(); v.len() / T::BLCK_SIZE];
    T::from_float(&v, &mut blocks);
    // SAFETY: plain repr(C) blocks viewed as bytes.
    let bytes =
        unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), blocks.len() * std::mem::size_of::<T>()) };
    QMatrix::from_gguf(ty, rows, cols, bytes).unwrap()
}

fn main() {
    if std::env::var("RAYON_NUM_THREADS").is_err() {
        // SAFETY: set before any thread pool starts.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let threads = rayon::current_num_threads();
    let shapes: Vec<(&str, QMatrix)> = vec![
        ("qkv 960x576 q4_1", matrix::<BlockQ4_1>(GgmlDType::Q4_1, 960, 576)),
        ("o 576x576 q4_1", matrix::<BlockQ4_1>(GgmlDType::Q4_1, 576, 576)),
        ("gate+up 3072x576 q4_1", matrix::<BlockQ4_1>(GgmlDType::Q4_1, 3072, 576)),
        ("down 576x1536 q4_1", matrix::<BlockQ4_1>(GgmlDType::Q4_1, 576, 1536)),
        ("head 49152x576 q8_0", matrix::<BlockQ8_0>(GgmlDType::Q8_0, 49152, 576)),
        // The k-quants of Q4_K_M files (SmolLM2's width is not whole 256-value superblocks).
        ("k 2048x2048 q4_1", matrix::<BlockQ4_1>(GgmlDType::Q4_1, 2048, 2048)),
        (
            "k 2048x2048 q4_k (candle)",
            matrix::<BlockQ4K>(GgmlDType::Q4K, 2048, 2048),
        ),
        (
            "k 2048x2048 q6_k (candle)",
            matrix::<BlockQ6K>(GgmlDType::Q6K, 2048, 2048),
        ),
        (
            "k 2048x2048 q5_k (candle)",
            matrix::<BlockQ5K>(GgmlDType::Q5K, 2048, 2048),
        ),
    ];
    let read = read_bandwidth(64 << 20);
    println!(
        "{threads} thread(s); read bandwidth {:.1} GB/s (64 MiB buffer)",
        read / 1e9
    );
    // Where the CPU has no AVX2 (or OAE_QUANT_ISA=generic), the blocks stay as in the file and
    // candle's kernels compute them: that is the path measured then ("generic").
    let isas: Vec<Isa> = if oae_methods::model::quant::isa() == Isa::Generic {
        vec![Isa::Generic]
    } else {
        [Isa::Avx2, Isa::Vnni].into_iter().filter(|i| i.available()).collect()
    };
    decode_order(&shapes[..5]);
    for isa in isas {
        for tiles in [true, false] {
            let layout = if tiles { "tiles" } else { "rows" };
            let mut per_token = 0.0;
            for (name, m) in &shapes {
                if !tiles && !m.has_tiles() {
                    continue;
                }
                let m = &if tiles { m.clone() } else { m.untiled() };
                // As in decode, the weights come from memory, not cache: enough copies of the
                // matrix to pass 64 MiB are cycled through.
                let copies: Vec<QMatrix> = (0..if std::env::var_os("OAE_BENCH_IN_CACHE").is_some() {
                    1
                } else {
                    (64usize << 20).div_ceil(m.bytes()).max(1)
                })
                    .map(|_| m.clone())
                    .collect();
                let x: Vec<f32> = (0..m.cols()).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
                let reps = (200_000_000 / m.bytes()).clamp(copies.len(), 4000);
                black_box(m.matmul_isa(isa, &x, 1));
                // The best of five trials: this is a shared VM, and a neighbour only ever slows it.
                let s = (0..5)
                    .map(|_| {
                        let t = Instant::now();
                        for r in 0..reps {
                            black_box(copies[r % copies.len()].matmul_isa(isa, black_box(&x), 1));
                        }
                        t.elapsed().as_secs_f64() / reps as f64
                    })
                    .fold(f64::INFINITY, f64::min);
                // A token passes the four layer matrices 30 times and the head once.
                per_token += match name.split(' ').next() {
                    Some("head") => s,
                    Some("k") => 0.0,
                    _ => 30.0 * s,
                };
                println!(
                    "{:>12} {layout:<5} {name:<24} {:>8.1} µs  {:>6.1} GB/s  {:>5.1} % of read bandwidth",
                    isa.name(),
                    s * 1e6,
                    m.bytes() as f64 / s / 1e9,
                    100.0 * m.bytes() as f64 / s / read
                );
            }
            println!(
                "{:>12} {layout:<5} SmolLM2-135M token's products: {:.2} ms ({:.0} tok/s if nothing else ran)",
                isa.name(),
                per_token * 1e3,
                1.0 / per_token
            );
        }
    }
}

/// A token's products in decode order over distinct matrices (30 layers' four and the
/// head: SmolLM2-135M's 92 MiB, more than the last-level cache, so nothing is read from it
/// twice), against the read probe over a buffer of the same size run between repetitions:
/// the share a decode step's products can reach on this machine.
fn decode_order(shapes: &[(&str, QMatrix)]) {
    let isa = oae_methods::model::quant::isa();
    let (layer, head) = shapes.split_at(4);
    let mut seq: Vec<QMatrix> = Vec::new();
    for _ in 0..30 {
        seq.extend(layer.iter().map(|(_, m)| m.clone()));
    }
    seq.push(head[0].1.clone());
    let bytes: usize = seq.iter().map(QMatrix::bytes).sum();
    let xs: Vec<Vec<f32>> = seq
        .iter()
        .map(|m| (0..m.cols()).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect())
        .collect();
    let probe = vec![1u64; bytes / 8];
    let mut shares = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..4 {
            for (m, x) in seq.iter().zip(&xs) {
                black_box(m.matmul_isa(isa, black_box(x), 1));
            }
        }
        let s = t.elapsed().as_secs_f64() / 4.0;
        let read = oae_methods::model::throughput::read_bandwidth_over(&probe);
        shares.push((s, bytes as f64 / s / read, read));
    }
    shares.remove(0);
    shares.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (s, share, read) = shares[shares.len() / 2];
    println!(
        "{:>12} decode order: {:.1} MiB of distinct matrices in {:.2} ms per token, {:.1} GB/s; {:.1} % of the read probe over as many bytes ({:.1} GB/s; median of 6, range {:.1}–{:.1} %)",
        isa.name(),
        bytes as f64 / (1 << 20) as f64,
        s * 1e3,
        bytes as f64 / s / 1e9,
        100.0 * share,
        read / 1e9,
        100.0 * shares[0].1,
        100.0 * shares[shares.len() - 1].1,
    );
}
