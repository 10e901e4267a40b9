//! A decode step (one new token) on a CUDA device in six fused kernels per layer
//! (`decode.cu`), instead of the op-by-op path's twenty-odd.
//!
//! At batch 1 a decode step of a small model on a GPU is bound by launches, not bytes: the
//! op-by-op path issues about 25 kernels per layer, each with its host-side cost (tensor
//! allocation, layout checks, a cuBLAS call's heuristics), so a 12-layer model took 2.3 ms a
//! token on an H200 whose memory streams its weights in 0.1 ms. Here each stretch between
//! two products runs in the product's prologue or epilogue (RMSNorm, SwiGLU, bias, residual),
//! RoPE and the cache write are one kernel, and attention over the cache is one kernel. The
//! column products split their rows over blocks so that a narrow matrix still keeps the
//! memory busy. On an H200 (README, "Decode on a GPU"): 0.82 ms a token in bf16 and 0.89 ms
//! in f32, against 3.08 and 2.57 ms op by op; the GPU is busy about 625 µs of it.
//!
//! Taken only where it applies, else the caller runs the op-by-op path: one token with the
//! causal mask, f32 / bf16 / f16, dense weights and feed-forward blocks (no MoE), head
//! dimension even and at most 256, and sizes that fit the kernels' shared memory. The
//! cache's buffers are written in place ([`KvCache::reserve`]). `OAE_CUDA_FUSED=0` turns it
//! off (A/B measurements).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::cuda::cudarc::driver::{CudaFunction, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg};
use candle_core::cuda::{CudaDevice, CudaStorageSlice, DeviceId, WrapErr};
use candle_core::{DType, Device, Storage, Tensor};

use super::decoder::{Decoder, Ffn, Head, KvCache};
use super::weight::{Table, Weight};
use crate::error::{Error, Result};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/decode.ptx"));
/// Threads per block of the products and attention (the kernels' `THREADS`).
const THREADS: u32 = 256;
/// Dynamic shared memory a kernel may take without opting in (bytes).
const SHARED: usize = 48 * 1024;
/// Rows of the tied head per warp.
const HEAD_ROWS: u32 = 4;
/// Blocks a column product aims for (rows are split until it has about this many), so that
/// enough loads are in flight to keep the memory busy (an H100 or H200 has 132 SMs).
const TARGET_BLOCKS: usize = 512;
/// Threads per row of a column product (the kernels' `CT`).
const ROW_THREADS: usize = 8;

#[derive(Clone, Copy)]
enum Kernel {
    Embed,
    GemvPlain,
    GemvRms,
    GemvSwiglu,
    HeadCols,
    HeadRows,
    KvWrite,
    Attn,
}

const NAMES: [&str; 8] = [
    "oae_embed",
    "oae_gemv_plain",
    "oae_gemv_rms",
    "oae_gemv_swiglu",
    "oae_head_cols",
    "oae_head_rows",
    "oae_kv_write",
    "oae_attn_decode",
];
const DTYPES: [(DType, &str); 3] = [(DType::F32, "f32"), (DType::BF16, "bf16"), (DType::F16, "f16")];

/// Partial sums and tickets of the split products.
type Scratch = (Option<CudaSlice<f32>>, Option<CudaSlice<u32>>);

/// The module's functions on one device, loaded once.
struct Kernels {
    stream: Arc<CudaStream>,
    /// `NAMES.len()` × `DTYPES.len()`, kernel-major.
    funcs: Vec<CudaFunction>,
    /// The split products' partial sums and per-tile tickets (zero between launches: the
    /// last block of a tile resets its ticket), grown as products need.
    scratch: Mutex<Scratch>,
}

fn kernels(dev: &CudaDevice) -> Result<Arc<Kernels>> {
    static LOADED: OnceLock<Mutex<HashMap<DeviceId, Arc<Kernels>>>> = OnceLock::new();
    let mut map = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(k) = map.get(&dev.id()) {
        return Ok(k.clone());
    }
    let mut funcs = Vec::with_capacity(NAMES.len() * DTYPES.len());
    for name in NAMES {
        for (_, suffix) in DTYPES {
            funcs.push(
                dev.get_or_load_custom_func(&format!("{name}_{suffix}"), "oae-decode", PTX)?
                    .into_cuda_function(),
            );
        }
    }
    let k = Arc::new(Kernels {
        stream: dev.cuda_stream(),
        funcs,
        scratch: Mutex::new((None, None)),
    });
    map.insert(dev.id(), k.clone());
    Ok(k)
}

/// A kernel argument.
#[derive(Clone, Copy)]
enum Arg {
    Ptr(u64),
    Int(i32),
    Float(f32),
}

impl Kernels {
    /// Addresses of at least `partials` floats and `tickets` zeroed counters.
    fn scratch(&self, partials: usize, tickets: usize) -> Result<(Arg, Arg)> {
        let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        if s.0.as_ref().is_none_or(|p| p.len() < partials) {
            s.0 = Some(self.stream.alloc_zeros::<f32>(partials).w()?);
        }
        if s.1.as_ref().is_none_or(|c| c.len() < tickets) {
            s.1 = Some(self.stream.alloc_zeros::<u32>(tickets).w()?);
        }
        let (p, c) = (s.0.as_ref().expect("allocated"), s.1.as_ref().expect("allocated"));
        Ok((
            Arg::Ptr(p.device_ptr(&self.stream).0),
            Arg::Ptr(c.device_ptr(&self.stream).0),
        ))
    }

    fn launch(&self, k: Kernel, dt: usize, grid: (u32, u32), block: u32, shared: usize, args: &[Arg]) -> Result<()> {
        let mut b = self.stream.launch_builder(&self.funcs[k as usize * DTYPES.len() + dt]);
        for a in args {
            match a {
                Arg::Ptr(p) => b.arg(p),
                Arg::Int(i) => b.arg(i),
                Arg::Float(f) => b.arg(f),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: (grid.0, grid.1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: shared as u32,
        };
        // SAFETY: every pointer comes from `ptr` on a live tensor of the dtype the kernel is
        // instantiated for, with the extent the kernel reads or writes checked by `plan` and
        // the callers below; arguments match the kernels' signatures in decode.cu.
        unsafe { b.launch(cfg) }.w()?;
        Ok(())
    }
}

/// The device address of `t`'s first element (its layout's start offset included).
fn ptr(t: &Tensor, stream: &CudaStream) -> Result<Arg> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(s) = &*storage else {
        return Err(Error::Model("fused CUDA decode given a tensor off the GPU".into()));
    };
    let base = match &s.slice {
        CudaStorageSlice::F32(s) => s.device_ptr(stream).0,
        CudaStorageSlice::BF16(s) => s.device_ptr(stream).0,
        CudaStorageSlice::F16(s) => s.device_ptr(stream).0,
        _ => {
            return Err(Error::Model(format!(
                "fused CUDA decode given a {:?} tensor",
                t.dtype()
            )));
        }
    };
    Ok(Arg::Ptr(
        base + (layout.start_offset() * t.dtype().size_in_bytes()) as u64,
    ))
}

/// A fresh (rows, cols) tensor the next kernel fills entirely.
fn output(shape: (usize, usize), dtype: DType, device: &Device) -> Result<Tensor> {
    // SAFETY: uninitialised device memory, every element of which the kernel that receives
    // it writes before anything reads it.
    Ok(unsafe { Tensor::empty(shape, dtype, device)? })
}

/// Whether the fused path is on (`OAE_CUDA_FUSED=0` turns it off).
fn enabled() -> bool {
    static SEEN: OnceLock<bool> = OnceLock::new();
    super::fused::enabled("OAE_CUDA_FUSED", &SEEN)
}

/// The dense (in, out) matrix of `w` when a column product can read it: contiguous, of
/// `dtype`, 16-byte aligned rows.
fn columns(w: &Weight, dtype: DType) -> Option<&Tensor> {
    match w {
        Weight::Dense(t) if aligned(t, dtype) && t.dim(1).is_ok_and(|n| n.is_multiple_of(lanes(dtype))) => Some(t),
        _ => None,
    }
}

fn aligned(t: &Tensor, dtype: DType) -> bool {
    t.dtype() == dtype
        && t.rank() == 2
        && t.is_contiguous()
        && (t.layout().start_offset() * dtype.size_in_bytes()).is_multiple_of(16)
}

/// Elements of `dtype` in 16 bytes (one vector load).
fn lanes(dtype: DType) -> usize {
    16 / dtype.size_in_bytes()
}

/// The row split of a column product over a (k, n) matrix: rows per block (a multiple of the
/// row groups) and blocks per column tile, about [`TARGET_BLOCKS`] blocks in all with at
/// least two rows per row group.
fn split_rows(k: usize, n: usize, dtype: DType) -> (usize, usize) {
    let groups = THREADS as usize / ROW_THREADS;
    let tiles = n.div_ceil(ROW_THREADS * lanes(dtype));
    let splits = (TARGET_BLOCKS / tiles).clamp(1, (k / (2 * groups)).max(1));
    let ks = k.div_ceil(splits).next_multiple_of(groups);
    (ks, k.div_ceil(ks))
}

/// Shared memory of a column product reading `ks` inputs per block (bytes).
fn gemv_shared(ks: usize, dtype: DType) -> usize {
    4 * (ks + THREADS as usize * lanes(dtype))
}

/// Whether this decoder's step (through `depth` layers, after `cached` positions) can run
/// fused: every check a kernel's preconditions need, so a launch never reads out of bounds.
fn applies(d: &Decoder, depth: usize, cached: usize) -> bool {
    let cfg = d.config();
    let dtype = d.dtype();
    let (hd, h, kvh) = (cfg.head_dim, cfg.heads, cfg.kv_heads);
    let shapes = DTYPES.iter().any(|(t, _)| *t == dtype)
        && hd.is_multiple_of(2)
        && hd <= THREADS as usize
        && hd.is_multiple_of(lanes(dtype))
        && kvh > 0
        && h.is_multiple_of(kvh)
        && cfg.hidden.is_multiple_of(lanes(dtype))
        && gemv_shared(
            cfg.hidden
                .max(h * hd)
                .max(cfg.ffn)
                .next_multiple_of(THREADS as usize / ROW_THREADS),
            dtype,
        ) <= SHARED
        && 4 * (hd + cached + 1 + THREADS as usize) <= SHARED
        && d.cos.is_contiguous()
        && d.sin.is_contiguous()
        && d.cos.dtype() == dtype;
    let embed = matches!(&d.embed, Table::Dense(e) if aligned(e, dtype));
    let head = match &d.head {
        Head::Tied => true,
        Head::Matrix(w) => columns(w, dtype).is_some(),
    };
    let layers = d.layers.iter().take(depth).all(|l| {
        let Ffn::Dense(mlp) = &l.ffn else { return false };
        let (gu, down) = mlp.weights();
        columns(&l.qkv, dtype).is_some_and(|w| w.dim(1).is_ok_and(|n| n == (h + 2 * kvh) * hd))
            && columns(&l.wo, dtype).is_some()
            && columns(gu, dtype).is_some()
            && columns(down, dtype).is_some()
            && l.attn_norm.is_contiguous()
            && l.ffn_norm.is_contiguous()
            && l.qkv_bias
                .as_ref()
                .is_none_or(|b| b.is_contiguous() && b.dtype() == dtype)
    });
    shapes && embed && head && layers && d.norm.is_contiguous()
}

/// The CUDA fused [`Step`](super::fused::Step).
pub(super) fn decode_step(
    d: &Decoder,
    token: u32,
    pos: usize,
    cache: &mut KvCache,
    depth: usize,
) -> Result<Option<Tensor>> {
    let Device::Cuda(dev) = d.device() else { return Ok(None) };
    if !enabled() || pos >= d.config().max_seq || !applies(d, depth, cache.len()) {
        return Ok(None);
    }
    let cfg = *d.config();
    let dtype = d.dtype();
    let dt = DTYPES
        .iter()
        .position(|(t, _)| *t == dtype)
        .expect("checked by applies");
    let k = kernels(dev)?;
    let s = &*k.stream;
    let device = d.device();
    let (hidden, h, kvh, hd) = (cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_dim);
    let eps = cfg.rms_eps as f32;
    let (slot, pos) = (cache.len(), pos as i32);

    // A column product y = prologue(x)·W (+ bias) (+ res).
    let gemv = |kernel: Kernel,
                w: &Tensor,
                x: &Tensor,
                norm: Option<&Tensor>,
                bias: Option<&Tensor>,
                res: Option<&Tensor>,
                y: &Tensor|
     -> Result<()> {
        let (kin, n) = w.dims2()?;
        let (ks, splits) = split_rows(kin, n, dtype);
        let tiles = n.div_ceil(ROW_THREADS * lanes(dtype));
        let (partial, tickets) = if splits > 1 {
            k.scratch(splits * n, tiles)?
        } else {
            (Arg::Ptr(0), Arg::Ptr(0))
        };
        let opt = |t: Option<&Tensor>| t.map_or(Ok(Arg::Ptr(0)), |t| ptr(t, s));
        k.launch(
            kernel,
            dt,
            (tiles as u32, splits as u32),
            THREADS,
            gemv_shared(ks, dtype),
            &[
                ptr(w, s)?,
                ptr(x, s)?,
                opt(norm)?,
                Arg::Float(eps),
                opt(bias)?,
                opt(res)?,
                ptr(y, s)?,
                Arg::Int(kin as i32),
                Arg::Int(n as i32),
                Arg::Int(ks as i32),
                partial,
                tickets,
            ],
        )
    };
    let dense = |w: &Weight| {
        columns(w, dtype)
            .cloned()
            .ok_or_else(|| Error::Model("checked by applies".into()))
    };

    let Table::Dense(table) = &d.embed else { return Ok(None) };
    let mut x = output((1, hidden), dtype, device)?;
    k.launch(
        Kernel::Embed,
        dt,
        (hidden.div_ceil(THREADS as usize) as u32, 1),
        THREADS,
        0,
        &[
            ptr(table, s)?,
            ptr(&x, s)?,
            Arg::Int(token as i32),
            Arg::Int(hidden as i32),
        ],
    )?;
    let (cos, sin) = (ptr(&d.cos, s)?, ptr(&d.sin, s)?);
    for (li, layer) in d.layers.iter().take(depth).enumerate() {
        let Ffn::Dense(mlp) = &layer.ffn else { return Ok(None) };
        let wqkv = dense(&layer.qkv)?;
        let qkv = output((1, wqkv.dim(1)?), dtype, device)?;
        gemv(
            Kernel::GemvRms,
            &wqkv,
            &x,
            Some(&layer.attn_norm),
            layer.qkv_bias.as_ref(),
            None,
            &qkv,
        )?;

        let (kc, vc) = cache.reserve(li, 1, (kvh, hd), dtype, device)?;
        let cap = kc.dim(1)? as i32;
        k.launch(
            Kernel::KvWrite,
            dt,
            (kvh as u32, 1),
            hd as u32,
            0,
            &[
                ptr(&qkv, s)?,
                cos,
                sin,
                ptr(&kc, s)?,
                ptr(&vc, s)?,
                Arg::Int(pos),
                Arg::Int(slot as i32),
                Arg::Int(cap),
                Arg::Int(h as i32),
                Arg::Int(kvh as i32),
                Arg::Int(hd as i32),
            ],
        )?;
        let att = output((1, h * hd), dtype, device)?;
        let len = slot + 1;
        k.launch(
            Kernel::Attn,
            dt,
            (h as u32, 1),
            THREADS,
            4 * (hd + len + THREADS as usize),
            &[
                ptr(&qkv, s)?,
                cos,
                sin,
                ptr(&kc, s)?,
                ptr(&vc, s)?,
                ptr(&att, s)?,
                Arg::Int(pos),
                Arg::Int(len as i32),
                Arg::Int(cap),
                Arg::Int(h as i32),
                Arg::Int(kvh as i32),
                Arg::Int(hd as i32),
                Arg::Float(1.0 / (hd as f32).sqrt()),
            ],
        )?;
        let x1 = output((1, hidden), dtype, device)?;
        gemv(Kernel::GemvPlain, &dense(&layer.wo)?, &att, None, None, Some(&x), &x1)?;

        let (gu_w, down_w) = mlp.weights();
        let gu_w = dense(gu_w)?;
        let gu = output((1, gu_w.dim(1)?), dtype, device)?;
        gemv(Kernel::GemvRms, &gu_w, &x1, Some(&layer.ffn_norm), None, None, &gu)?;
        let x2 = output((1, hidden), dtype, device)?;
        gemv(Kernel::GemvSwiglu, &dense(down_w)?, &gu, None, None, Some(&x1), &x2)?;
        x = x2;
    }

    let logits = output((1, cfg.vocab_size), DType::F32, device)?;
    match &d.head {
        Head::Matrix(w) => gemv(Kernel::HeadCols, &dense(w)?, &x, Some(&d.norm), None, None, &logits)?,
        Head::Tied => {
            let (vocab, kin) = table.dims2()?;
            let per_block = HEAD_ROWS as usize * (THREADS as usize / 32);
            k.launch(
                Kernel::HeadRows,
                dt,
                (vocab.div_ceil(per_block) as u32, 1),
                THREADS,
                4 * kin,
                &[
                    ptr(table, s)?,
                    ptr(&x, s)?,
                    ptr(&d.norm, s)?,
                    Arg::Float(eps),
                    ptr(&logits, s)?,
                    Arg::Int(kin as i32),
                    Arg::Int(vocab as i32),
                    Arg::Int(HEAD_ROWS as i32),
                ],
            )?;
        }
    }
    Ok(Some(logits))
}

#[cfg(test)]
mod tests;
