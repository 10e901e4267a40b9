//! The fused decode step against the op-by-op path, on a CUDA device (each test says it
//! skipped where there is none).

use candle_core::{DType, Device, Tensor};

use crate::model::decoder::{Decoder, Ffn, Head, KvCache, Layer, LlamaConfig, Logits, Mlp};
use crate::model::fused::with_path;
use crate::model::weight::{Table, Weight};
use crate::model::{argmax, last_row};

fn cuda() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: no CUDA device here ({e})");
            None
        }
    }
}

#[derive(Clone, Copy)]
struct Shape {
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    ffn: usize,
    vocab: usize,
    layers: usize,
    tied: bool,
    bias: bool,
}

/// GQA (4 query heads per KV head), head dim 32, its own head matrix.
const GQA: Shape = Shape {
    hidden: 256,
    heads: 8,
    kv_heads: 2,
    ffn: 512,
    vocab: 1024,
    layers: 3,
    tied: false,
    bias: false,
};
/// Qwen2-like: q/k/v biases and a tied head (a vocabulary that is no multiple of anything),
/// head dim 64.
const TIED_BIAS: Shape = Shape {
    hidden: 256,
    heads: 4,
    kv_heads: 4,
    ffn: 688,
    vocab: 777,
    layers: 2,
    tied: true,
    bias: true,
};
/// One KV head for all queries, head dim 128, and a vocabulary wide enough for the head's
/// product to run unsplit.
const MQA: Shape = Shape {
    hidden: 512,
    heads: 4,
    kv_heads: 1,
    ffn: 1024,
    vocab: 33280,
    layers: 2,
    tied: false,
    bias: false,
};

fn model(s: Shape, dtype: DType, dev: &Device) -> Decoder {
    let hd = s.hidden / s.heads;
    let cfg = LlamaConfig {
        vocab_size: s.vocab,
        hidden: s.hidden,
        layers: s.layers,
        heads: s.heads,
        kv_heads: s.kv_heads,
        head_dim: hd,
        ffn: s.ffn,
        experts: 0,
        top_k: 0,
        qkv_bias: s.bias,
        tied_embeddings: s.tied,
        max_seq: 512,
        rope_theta: 10_000.0,
        rms_eps: 1e-5,
    };
    let mut seed = 0u64;
    let mut next = |shape: &[usize], scale: f64| {
        seed += 1;
        let mut rng = oae_core::rng::seeded(seed, &["cuda-decode-test"]);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| (scale * oae_core::rng::standard_normal(&mut rng)) as f32)
            .collect();
        Tensor::from_vec(v, shape, dev).unwrap()
    };
    let (q, kv, inv) = (s.heads * hd, s.kv_heads * hd, 1.0 / (s.hidden as f64).sqrt());
    let mut layers = Vec::new();
    for _ in 0..s.layers {
        let attn_norm = (next(&[s.hidden], 0.1) + 1.0).unwrap();
        let proj = [
            next(&[s.hidden, q], inv),
            next(&[s.hidden, kv], inv),
            next(&[s.hidden, kv], inv),
        ]
        .map(Weight::Dense);
        let wo = Weight::Dense(next(&[q, s.hidden], 1.0 / (q as f64).sqrt()));
        let bias = s.bias.then(|| (next(&[q], 0.1), next(&[kv], 0.1), next(&[kv], 0.1)));
        let ffn_norm = (next(&[s.hidden], 0.1) + 1.0).unwrap();
        let mlp = Mlp::new(
            Weight::Dense(next(&[s.hidden, s.ffn], inv)),
            Weight::Dense(next(&[s.hidden, s.ffn], inv)),
            Weight::Dense(next(&[s.ffn, s.hidden], 1.0 / (s.ffn as f64).sqrt())),
        )
        .unwrap();
        layers.push(Layer::new(attn_norm, proj, wo, bias, ffn_norm, Ffn::Dense(mlp)).unwrap());
    }
    let embed = Table::Dense(next(&[s.vocab, s.hidden], 1.0));
    let head = if s.tied {
        Head::Tied
    } else {
        Head::Matrix(Weight::Dense(next(&[s.hidden, s.vocab], 4.0 * inv)))
    };
    let norm = (next(&[s.hidden], 0.1) + 1.0).unwrap();
    Decoder::new(cfg, embed, layers, norm, head, dev)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn prompt(vocab: usize) -> Vec<u32> {
    (0..12u32).map(|i| (i * 37 + 5) % vocab as u32).collect()
}

fn tokens(n: usize, vocab: usize) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 101 + 7) % vocab as u32).collect()
}

/// The logits of each of `tokens` fed one at a time into `cache`.
fn feed(d: &Decoder, cache: &mut KvCache, tokens: &[u32]) -> Vec<Vec<f32>> {
    tokens
        .iter()
        .map(|&t| last_row(&d.forward(&[t], cache, Logits::Last).unwrap()).unwrap())
        .collect()
}

/// The logits of every step after the prompt (prefilled op by op), fed `tokens`.
fn steps(d: &Decoder, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut cache = KvCache::new(d.config().layers);
    d.forward(&prompt(d.config().vocab_size), &mut cache, Logits::Last)
        .unwrap();
    feed(d, &mut cache, tokens)
}

/// The worst step's max |a − b| over max |a|, and the share of steps whose argmax agrees.
fn compare(want: &[Vec<f32>], got: &[Vec<f32>]) -> (f32, f64) {
    assert_eq!(want.len(), got.len());
    let mut worst = 0f32;
    let mut same = 0;
    for (a, b) in want.iter().zip(got) {
        assert!(b.iter().all(|x| x.is_finite()), "non-finite logits");
        let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        worst = worst.max(a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale);
        same += usize::from(argmax(a) == argmax(b));
    }
    (worst, same as f64 / want.len() as f64)
}

/// For every dtype and three shapes (GQA, MQA with head dim 128, biases with a tied head),
/// each fused step's logits equal the op-by-op path's within the dtype's rounding, over
/// enough steps to grow the cache past three capacities and the attention past one pass of
/// its threads.
#[test]
fn fused_steps_match_the_op_by_op_path() {
    let Some(dev) = cuda() else { return };
    for (shape, name, n) in [(GQA, "gqa", 260), (MQA, "mqa", 60), (TIED_BIAS, "tied+bias", 60)] {
        for (dtype, tol, agree) in [
            (DType::F32, 1e-4, 1.0),
            (DType::BF16, 0.05, 0.9),
            (DType::F16, 0.01, 0.95),
        ] {
            let d = model(shape, dtype, &dev);
            let toks = tokens(n, shape.vocab);
            let (want, off) = with_path(false, || steps(&d, &toks));
            let (got, on) = with_path(true, || steps(&d, &toks));
            assert_eq!((off, on), (0, n as u64), "{name} {dtype:?}: fused steps taken");
            let (worst, same) = compare(&want, &got);
            eprintln!("{name} {dtype:?}: {n} steps, logits within {worst:.2e} of their scale, argmax agrees {same:.3}");
            assert!(
                worst <= tol,
                "{name} {dtype:?}: logits differ by {worst} of their scale (> {tol})"
            );
            assert!(same >= agree, "{name} {dtype:?}: argmax agrees on {same} of steps");
        }
    }
}

/// A snapshot (clone) of the cache and a rollback (truncate) behave on the fused path as on
/// fresh runs: the writes in place never reach another holder of the buffers.
#[test]
fn snapshots_and_rollback_match_fresh_runs() {
    let Some(dev) = cuda() else { return };
    let d = model(GQA, DType::BF16, &dev);
    let toks = tokens(30, GQA.vocab);
    let ((after_a, after_b, again), _) = with_path(true, || {
        let mut a = KvCache::new(GQA.layers);
        d.forward(&prompt(GQA.vocab), &mut a, Logits::Last).unwrap();
        feed(&d, &mut a, &toks[..10]);
        let mut b = a.clone();
        let after_a = feed(&d, &mut a, &toks[10..15]);
        let after_b = feed(&d, &mut b, &toks[20..25]);
        a.truncate(a.len() - 3).unwrap();
        let again = feed(&d, &mut a, &toks[12..15]);
        (after_a, after_b, again)
    });
    let (fresh_a, _) = with_path(true, || steps(&d, &toks[..15]));
    let b_tokens: Vec<u32> = toks[..10].iter().chain(&toks[20..25]).copied().collect();
    let (fresh_b, _) = with_path(true, || steps(&d, &b_tokens));
    for (what, want, got) in [
        ("the original after a clone", &fresh_a[10..], &after_a[..]),
        ("the clone", &fresh_b[10..], &after_b[..]),
        ("a rollback of three", &fresh_a[12..], &again[..]),
    ] {
        let (worst, same) = compare(want, got);
        assert!(worst <= 1e-6 && same == 1.0, "{what}: {worst} {same}");
    }
}

/// A shape the kernels do not take (head dim 30: no whole 16-byte loads) runs op by op.
#[test]
fn other_shapes_run_op_by_op() {
    let Some(dev) = cuda() else { return };
    let shape = Shape {
        hidden: 120,
        heads: 4,
        kv_heads: 2,
        ffn: 256,
        ..GQA
    };
    let d = model(shape, DType::F32, &dev);
    let (out, fused) = with_path(true, || steps(&d, &tokens(5, shape.vocab)));
    assert_eq!(fused, 0);
    assert!(out.iter().flatten().all(|x| x.is_finite()));
}
