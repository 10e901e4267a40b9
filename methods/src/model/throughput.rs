//! Prefill and decode throughput of a model next to its memory-bandwidth roofline
//! (`oae models bench`): how close single-token decode comes to streaming every weight once
//! per token at this machine's read bandwidth — the bytes as held: four per weight in f32,
//! the blocks' bytes when quantized — with the resident memory it took.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use candle_core::DType;
use serde::Serialize;

use super::{Device, KvCache, Logits, ModelSpec, Result, argmax, last_row};
use crate::Error;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Prompt length, tokens.
    pub prompt_tokens: usize,
    /// Tokens decoded after the prompt.
    pub decode_tokens: usize,
    /// Measured repetitions (one more runs first to warm caches and the thread pool).
    pub reps: usize,
    /// The KV cache's element type (`None`: the decoder's default, f16 on the CPU).
    pub kv_cache: Option<DType>,
}

/// Median and range of a rate over the repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Spread {
        v.sort_by(f64::total_cmp);
        Spread {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// What `oae models bench` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    /// Model name.
    pub model: String,
    /// Parameters.
    pub params: usize,
    /// How the matrices were held (`as-file`, `f32`, `q8_0`).
    pub weights: String,
    /// Resident weight bytes per type (`f32`, `q4_1`, …).
    pub weight_types: BTreeMap<String, usize>,
    /// Resident weight bytes.
    pub weight_bytes: usize,
    /// The quantized kernels' instruction set (when any matrix is quantized).
    pub kernels: Option<String>,
    /// Weight bytes streamed per decoded token.
    pub weight_bytes_per_token: usize,
    /// The KV cache's element type (`f16`, `f32`).
    pub kv_cache: String,
    /// Resident set before and after loading, and the process's peak, MiB (Linux).
    pub memory: Option<Memory>,
    /// Compute threads.
    pub threads: usize,
    /// Load time, s.
    pub load_s: f64,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Decoded tokens per repetition.
    pub decode_tokens: usize,
    /// Measured repetitions.
    pub reps: usize,
    /// Prefill rate, tokens/s.
    pub prefill_tok_s: Spread,
    /// Decode rate, tokens/s.
    pub decode_tok_s: Spread,
    /// Copy bandwidth over a weights-sized buffer (each byte copied counted once), GB/s.
    pub copy_bandwidth_gb_s: f64,
    /// Read bandwidth over a weights-sized buffer with the compute threads — what decode does
    /// with its weights — GB/s: the median of the probes run after each repetition.
    pub read_bandwidth_gb_s: f64,
    /// Decode rate if every weight is read once per token at the (median) read bandwidth.
    pub decode_roofline_tok_s: f64,
    /// Each repetition's decode rate over the roofline of the read probes run right before
    /// and right after it (their mean): on a shared machine whose bandwidth drifts, pairing
    /// them keeps the ratio steady where a median over one and a probe at another moment
    /// does not.
    pub decode_fraction_of_roofline: Spread,
    /// Bytes of keys and values attention reads from the KV cache per decoded token, averaged
    /// over the decoded positions — the other bytes a decode step streams, growing with the
    /// context.
    pub kv_bytes_per_token: usize,
    /// [`decode_fraction_of_roofline`](Self::decode_fraction_of_roofline) with the KV cache's
    /// bytes counted too: the share of the read bandwidth a decode step uses.
    pub decode_fraction_with_kv: Spread,
}

/// Resident-set figures of this process, MiB.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Memory {
    /// Before the model was loaded.
    pub rss_before_load_mib: f64,
    /// Right after loading (and converting).
    pub rss_after_load_mib: f64,
    /// The process's peak (VmHWM) after loading, prefill and decode (before the bandwidth
    /// probes' buffers).
    pub peak_rss_mib: f64,
}

/// (VmRSS, VmHWM) of this process in MiB, from /proc (Linux only).
pub fn rss_mib() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Copy bandwidth over a buffer of `bytes` (read + write of each byte counted once), B/s.
pub fn copy_bandwidth(bytes: usize) -> f64 {
    let bytes = bytes.max(1);
    let src = vec![1u8; bytes];
    let mut dst = vec![0u8; bytes];
    dst.copy_from_slice(&src);
    let reps = ((1usize << 31) / bytes).max(3);
    let t = Instant::now();
    for _ in 0..reps {
        // Both sides opaque: otherwise the compiler may keep only the last of the identical
        // copies, and the "bandwidth" is the loop's overhead (it measured 6.7 PB/s so).
        black_box(&mut dst[..]).copy_from_slice(black_box(&src[..]));
    }
    black_box(&dst);
    (reps * bytes) as f64 / t.elapsed().as_secs_f64()
}

/// Read bandwidth over a buffer of `bytes`, read by the current thread pool's threads in
/// contiguous slabs (as the threaded mat-vec streams its weights), B/s.
pub fn read_bandwidth(bytes: usize) -> f64 {
    read_bandwidth_over(&vec![1u64; (bytes / 8).max(1)])
}

/// [`read_bandwidth`] over a given buffer (so that repeated probes do not fault in pages).
pub fn read_bandwidth_over(buf: &[u64]) -> f64 {
    use rayon::prelude::*;
    let words = buf.len();
    let slab = words.div_ceil(rayon::current_num_threads().max(1)).max(1);
    let sum = |b: &[u64]| -> u64 {
        b.par_chunks(slab)
            .map(|c| c.iter().fold(0u64, |a, &x| a.wrapping_add(x)))
            .reduce(|| 0, u64::wrapping_add)
    };
    black_box(sum(black_box(buf)));
    let reps = ((1usize << 31) / (words * 8)).max(3);
    let t = Instant::now();
    let mut total = 0u64;
    for _ in 0..reps {
        total = total.wrapping_add(sum(black_box(buf)));
    }
    black_box(total);
    (reps * words * 8) as f64 / t.elapsed().as_secs_f64()
}

/// Loads `spec` on the CPU and measures greedy prefill and decode throughput; `threads` is
/// recorded (the caller sets the thread pool before calling).
pub fn measure(spec: &ModelSpec, plan: Plan, threads: usize) -> Result<Throughput> {
    if plan.reps == 0 || plan.prompt_tokens == 0 || plan.decode_tokens == 0 {
        return Err(Error::Request(
            "--reps, --prompt-tokens and --decode-tokens must be at least 1".into(),
        ));
    }
    spec.check()?;
    let before = rss_mib();
    let t0 = Instant::now();
    let mut m = spec.load(&Device::Cpu)?;
    if let Some(dtype) = plan.kv_cache {
        m.decoder = m.decoder.with_kv_dtype(dtype)?;
    }
    let load_s = t0.elapsed().as_secs_f64();
    let after = rss_mib();
    let cfg = *m.decoder.config();
    if plan.prompt_tokens + plan.decode_tokens > cfg.max_seq {
        return Err(Error::Request(format!(
            "--prompt-tokens + --decode-tokens exceeds the model's context of {}",
            cfg.max_seq
        )));
    }
    // A prompt of ordinary text, repeated to length (real token statistics).
    let text = "The committee reviewed 42 proposals on energy use in small clinics and schools. ";
    let mut prompt = m.tokenizer.encode(&text.repeat(1 + plan.prompt_tokens / 8))?;
    prompt.truncate(plan.prompt_tokens);
    let bytes_per_token = m.decoder.weight_bytes_per_token();
    let (mut prefill, mut decode, mut reads) = (Vec::new(), Vec::new(), Vec::new());
    // The probe's buffer is allocated after the first (warm-up) repetition, when the peak
    // resident set of loading, prefill and decode has been read.
    let mut during = None;
    let mut probe = Vec::new();
    for rep in 0..plan.reps + 1 {
        let mut cache = KvCache::new(cfg.layers);
        let t = Instant::now();
        let logits = m.decoder.forward(&prompt, &mut cache, Logits::Last)?;
        let mut next = argmax(&last_row(&logits)?);
        prefill.push(prompt.len() as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..plan.decode_tokens {
            let logits = m.decoder.forward(&[next], &mut cache, Logits::Last)?;
            next = argmax(&last_row(&logits)?);
        }
        decode.push(plan.decode_tokens as f64 / t.elapsed().as_secs_f64());
        if rep == 0 {
            during = rss_mib();
            probe = vec![1u64; bytes_per_token.min(256 << 20) / 8 + 1];
        }
        reads.push(read_bandwidth_over(&probe));
    }
    drop(probe);
    // The first repetition warms caches and the thread pool (its probe stays: the next
    // repetition's "before").
    prefill.remove(0);
    decode.remove(0);
    // Repetition r's probes: the one run right before its decode (after repetition r - 1,
    // the warm-up for the first) and the one right after.
    let paired: Vec<f64> = reads.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    let share = |bytes: usize| -> Spread {
        Spread::of(decode.iter().zip(&paired).map(|(d, r)| d * bytes as f64 / r).collect())
    };
    // Decoded token j attends over prompt + j + 1 positions.
    let kv_bytes = cfg.kv_bytes_per_position(m.decoder.kv_dtype().size_in_bytes())
        * (2 * prompt.len() + plan.decode_tokens + 1)
        / 2;
    let (fraction, with_kv) = (share(bytes_per_token), share(bytes_per_token + kv_bytes));
    let bw = copy_bandwidth(bytes_per_token.min(256 << 20));
    let read = Spread::of(reads).median;
    let roofline = read / bytes_per_token as f64;
    let decode = Spread::of(decode);
    let weight_types = m.decoder.weight_types();
    let quantized = weight_types.keys().any(|k| k.starts_with('q'));
    let memory = match (before, after, during) {
        (Some(b), Some(a), Some(end)) => Some(Memory {
            rss_before_load_mib: b.0,
            rss_after_load_mib: a.0,
            peak_rss_mib: end.1,
        }),
        _ => None,
    };
    Ok(Throughput {
        model: m.name.clone(),
        params: cfg.params(),
        weights: spec.weights().name().to_string(),
        weight_bytes: m.decoder.weight_bytes(),
        weight_types,
        kernels: quantized.then(|| super::quant::isa().name().to_string()),
        memory,
        weight_bytes_per_token: bytes_per_token,
        kv_cache: m.decoder.kv_dtype().as_str().to_string(),
        threads,
        load_s,
        prompt_tokens: prompt.len(),
        decode_tokens: plan.decode_tokens,
        reps: plan.reps,
        prefill_tok_s: Spread::of(prefill),
        decode_tok_s: decode,
        copy_bandwidth_gb_s: bw / 1e9,
        read_bandwidth_gb_s: read / 1e9,
        decode_roofline_tok_s: roofline,
        decode_fraction_of_roofline: fraction,
        kv_bytes_per_token: kv_bytes,
        decode_fraction_with_kv: with_kv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SyntheticSpec;

    #[test]
    fn the_embedded_model_decodes_below_its_roofline_and_bad_plans_are_refused() {
        let spec = ModelSpec::Synthetic(SyntheticSpec::default());
        let plan = Plan {
            prompt_tokens: 16,
            decode_tokens: 4,
            reps: 1,
            kv_cache: None,
        };
        let t = measure(&spec, plan, 1).unwrap();
        assert_eq!((t.prompt_tokens, t.decode_tokens, t.reps), (16, 4, 1));
        assert!(t.decode_tok_s.min <= t.decode_tok_s.median && t.decode_tok_s.median <= t.decode_tok_s.max);
        assert!(t.decode_roofline_tok_s > 0.0 && t.params > 0);
        // The cache read per token: the synthetic model's keys and values (f16 by default,
        // f32 when asked) for a mean context of 16 + 5/2 positions, counted on top of the
        // weights.
        let cfg = SyntheticSpec::default().config();
        let per_position = 2 * cfg.layers * cfg.kv_heads * cfg.head_dim() * 2;
        assert_eq!(
            (t.kv_cache.as_str(), t.kv_bytes_per_token),
            ("f16", per_position * (2 * 16 + 4 + 1) / 2)
        );
        let f32_cache = Plan {
            kv_cache: Some(DType::F32),
            ..plan
        };
        let t32 = measure(&spec, f32_cache, 1).unwrap();
        assert_eq!(
            (t32.kv_cache.as_str(), t32.kv_bytes_per_token),
            ("f32", 2 * t.kv_bytes_per_token)
        );
        let (w, kv) = (&t.decode_fraction_of_roofline, &t.decode_fraction_with_kv);
        assert!(kv.median > w.median && w.median > 0.0, "{w:?} {kv:?}");
        // A real memory copy: no machine copies a petabyte a second.
        for bw in [t.copy_bandwidth_gb_s, t.read_bandwidth_gb_s] {
            assert!(bw > 0.1 && bw < 10_000.0, "{bw}");
        }
        let zero = Plan { reps: 0, ..plan };
        assert!(measure(&spec, zero, 1).unwrap_err().to_string().contains("--reps"));
        let long = Plan {
            prompt_tokens: 1 << 20,
            ..plan
        };
        assert!(measure(&spec, long, 1).unwrap_err().to_string().contains("context"));
    }
}
