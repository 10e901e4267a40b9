//! Cold start: the one-time cost of making a loaded model ready to serve, paid in setup.
//!
//! A model's first pass pays for things no later pass does: on CPU the thread pool's start
//! and first allocations; on a GPU the CUDA context, the driver's JIT compilation of the
//! kernels (candle ships PTX), cuBLAS initialisation and the allocator's first blocks — on
//! an H100 the first request of the first GPU method took 18.5 s while the next method's took
//! 6 ms. [`warm_up`] runs every kernel path a method uses (a masked multi-token prefill, a
//! single-token decode step, all-position logits, KV-cache re-indexing and truncation) once,
//! reading the results back so that asynchronous device work has finished, inside the
//! method's `prepare()`: the harness times and meters it as setup, and the first measured
//! request no longer pays for it.
//!
//! [`ColdStart`] records the parts for run.json: opening the device (the CUDA context and
//! library handles, created in setup rather than when the suite is read), load, dtype
//! conversion, warm-up, and on a
//! GPU whether the driver's JIT cache already held the kernels (a warm cache turns a
//! 14.5 s first request into 140 ms; a site pays the cold figure after every driver update
//! or cache eviction, the warm one after every restart).
//!
//! **Overhead model:** two short forward passes and a one-token step on the loaded model
//! (milliseconds on CPU for the embedded model; seconds on a GPU with a cold JIT cache).

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};

use crate::model::{KvCache, LoadedModel, Logits, all_rows, last_row};

/// What making the model ready cost, s.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColdStart {
    /// Opening the device (on a GPU: the CUDA context, cuBLAS and cuRAND handles).
    pub context_s: f64,
    /// Reading or building the weights (and a method's own transform, e.g. upcycling).
    pub load_s: f64,
    /// Converting the weights to the serving dtype.
    pub convert_s: f64,
    /// The warm-up passes, device work included.
    pub warmup_s: f64,
    /// The first warm-up pass alone (where context creation and JIT land).
    pub first_pass_s: f64,
    /// The driver's JIT cache around the warm-up (GPU only).
    pub jit_cache: Option<JitCache>,
}

impl ColdStart {
    /// The facts run.json gives under `cold_start`.
    pub fn facts(&self) -> Value {
        json!({
            "context_s": self.context_s,
            "load_s": self.load_s,
            "convert_s": self.convert_s,
            "warmup_s": self.warmup_s,
            "first_pass_s": self.first_pass_s,
            "total_s": self.total_s(),
            "jit_cache": self.jit_cache.as_ref().map(JitCache::facts),
        })
    }

    /// Device, load, conversion and warm-up together.
    pub fn total_s(&self) -> f64 {
        self.context_s + self.load_s + self.convert_s + self.warmup_s
    }
}

/// The CUDA driver's compute cache (where it keeps PTX compiled to the GPU's code), before
/// and after the warm-up.
#[derive(Debug, Clone, PartialEq)]
pub struct JitCache {
    /// Its folder (`CUDA_CACHE_PATH`, else `~/.nv/ComputeCache`).
    pub path: PathBuf,
    /// `CUDA_CACHE_DISABLE=1`: every process compiles afresh.
    pub disabled: bool,
    /// Bytes in it before the warm-up.
    pub bytes_before: u64,
    /// Bytes in it after.
    pub bytes_after: u64,
}

impl JitCache {
    /// The cache as it is now.
    pub fn probe() -> Self {
        let path = std::env::var_os("CUDA_CACHE_PATH")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".nv/ComputeCache")))
            .unwrap_or_else(|| PathBuf::from(".nv/ComputeCache"));
        let disabled = std::env::var("CUDA_CACHE_DISABLE").is_ok_and(|v| v.trim() == "1");
        let bytes = dir_bytes(&path);
        Self {
            path,
            disabled,
            bytes_before: bytes,
            bytes_after: bytes,
        }
    }

    /// Re-reads the size after the warm-up.
    pub fn after(mut self) -> Self {
        self.bytes_after = dir_bytes(&self.path);
        self
    }

    /// `warm` when the kernels were found compiled (the cache did not grow and is not
    /// empty), `cold` when the warm-up compiled some, `disabled` without a cache.
    pub fn state(&self) -> &'static str {
        if self.disabled {
            "disabled"
        } else if self.bytes_after > self.bytes_before || self.bytes_after == 0 {
            "cold"
        } else {
            "warm"
        }
    }

    fn facts(&self) -> Value {
        json!({
            "state": self.state(),
            "path": self.path.display().to_string(),
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
        })
    }
}

/// Total size of the files under `dir` (0 when it does not exist).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Runs every kernel path of `m` once, with results read back to the host; returns the
/// whole time and the first pass's. Fits any context of two tokens or more (a one-token
/// context gets the single-token step only).
pub fn warm_up(m: &LoadedModel) -> crate::error::Result<(f64, f64)> {
    let started = Instant::now();
    let max_seq = m.decoder.config().max_seq;
    let mut ids = m.tokenizer.encode("Warm-up: the first pass of every kernel.")?;
    // Room for the prompt, one decode step and a two-token all-logits pass.
    ids.truncate(max_seq.saturating_sub(3).max(1));
    if ids.is_empty() {
        ids.push(0);
    }
    let layers = m.decoder.config().layers;
    let mut cache = KvCache::new(layers);
    // A masked multi-token prefill (a single token when the context is that small).
    last_row(&m.decoder.forward(&ids, &mut cache, Logits::Last)?)?;
    let first = started.elapsed().as_secs_f64();
    if cache.len() < max_seq {
        // A decode step (no mask).
        last_row(&m.decoder.forward(&ids[..1], &mut cache, Logits::Last)?)?;
    }
    if cache.len() + 2 <= max_seq {
        // Logits at every position (verification of drafts).
        all_rows(&m.decoder.forward(&[ids[0], ids[0]], &mut cache, Logits::All)?)?;
    }
    // Re-indexing (beams) and truncation (rollback), then one more step on the result.
    if cache.len() >= 2 {
        cache.select(&[0, cache.len() - 1])?;
        cache.truncate(1)?;
        last_row(&m.decoder.forward(&ids[..1], &mut cache, Logits::Last)?)?;
    }
    // Routing counters count requests' tokens only.
    m.decoder.take_moe_counters();
    Ok((started.elapsed().as_secs_f64(), first))
}
