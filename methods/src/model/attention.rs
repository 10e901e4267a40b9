//! Causal grouped-query attention on the CPU in one op, computed row by row the same way
//! whatever the number of new rows.
//!
//! Row `i` of `t` new rows (after `start` cached ones) attends to keys `0..=start + i` only:
//! its scores, softmax and weighted sum of values run over exactly that prefix, in the same
//! order, so a token verified in a batch (speculative decoding) gets bit for bit what it gets
//! when decoded alone. Generic matmul + masked softmax does not: the masked tail and the
//! batch's shape change how sums are grouped, and with 8-bit activations downstream such a
//! last-bit difference can round a quant the other way and flip a near-tied greedy token.
//! One op per layer also replaces about ten small tensor ops of the generic path, which
//! dominate single-token decode on small models.
//!
//! The query heads that share a KV head are computed together, so each key and value row is
//! read once per group instead of once per head; each head's operations and their order are
//! those it has alone. Where the CPU has AVX2 the same code is compiled for it (eight-lane
//! registers, no fused multiply-add: the same results as the baseline build).
//!
//! Keys and values are f32 or f16 (the KV cache's type, [`Elem`]); the queries, scores and
//! sums are f32 either way, each f16 value widened exactly as it is read.
//!
//! **Overhead model:** per new row and query head, 2 · (start + i + 1) · head_dim
//! multiply-adds; rows × KV heads are split over the thread pool when there is enough work.

use std::ops::Range;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor, WithDType};
use half::f16;
use rayon::prelude::*;

use super::fastmath::exp;

/// The element types the fastest kernels take: on x86-64 those with an eight-wide load.
#[cfg(not(target_arch = "x86_64"))]
use Elem as Fast;
#[cfg(target_arch = "x86_64")]
use x86::Load8 as Fast;

/// Attention of `q` (heads, t, hd) over `k`, `v` (kv_heads, total, hd) → (t, heads · hd).
pub struct CausalAttention {
    /// Multiplier of the scores (1/√hd).
    pub scale: f32,
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("oae-attention: {what} is not contiguous");
    };
    Ok(&s.as_slice::<f32>()?[a..b])
}

/// An element type keys and values may be held in: f32, or f16 (widened to f32 exactly).
pub trait Elem: WithDType {
    /// The value in f32.
    fn f32(self) -> f32;
}

impl Elem for f32 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self
    }
}

impl Elem for f16 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self.to_f32()
    }
}

/// A (heads, rows, hd) tensor whose rows are contiguous within each head — a KV cache
/// buffer viewed up to its length is one, without a copy: its values from the first and the
/// distance between heads.
fn headwise<'a, E: Elem>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<Headwise<'a, E>> {
    let (h, n, hd) = l.shape().dims3()?;
    let st = l.stride();
    if (hd > 1 && st[2] != 1) || (n > 1 && st[1] != hd) {
        candle_core::bail!("oae-attention: {what}'s rows are not contiguous (strides {st:?})");
    }
    let head = if h > 1 { st[0] } else { n * hd };
    let start = l.start_offset();
    let end = start + h.saturating_sub(1) * head + n * hd;
    Ok((&s.as_slice::<E>()?[start..end], head))
}

/// Keys and values read in place, both in one element type.
enum Kv<'a> {
    F32((Headwise<'a, f32>, Headwise<'a, f32>)),
    F16((Headwise<'a, f16>, Headwise<'a, f16>)),
}

/// The keys and values of `ks`, `vs` (each (kv_heads, rows, hd) with contiguous rows);
/// an error unless both are f32 or both f16.
fn keys_values<'a>(ks: &'a CpuStorage, kl: &Layout, vs: &'a CpuStorage, vl: &Layout) -> candle_core::Result<Kv<'a>> {
    Ok(match (ks, vs) {
        (CpuStorage::F32(_), CpuStorage::F32(_)) => Kv::F32((headwise(ks, kl, "k")?, headwise(vs, vl, "v")?)),
        (CpuStorage::F16(_), CpuStorage::F16(_)) => Kv::F16((headwise(ks, kl, "k")?, headwise(vs, vl, "v")?)),
        _ => candle_core::bail!(
            "oae-attention: keys and values must both be f32 or both f16, not {:?} and {:?}",
            ks.dtype(),
            vs.dtype()
        ),
    })
}

/// Σ a·b in a fixed order (eight lanes, then the lanes summed). Plain multiply and add:
/// `mul_add` without the FMA target feature is a libm call per element.
#[inline(always)]
fn dot<E: Elem>(a: &[f32], b: &[E]) -> f32 {
    let mut acc = [0f32; 8];
    let split = a.len() - a.len() % 8;
    for (x, y) in a[..split].chunks_exact(8).zip(b[..split].chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += x[k] * y[k].f32();
        }
    }
    let tail: f32 = a[split..].iter().zip(&b[split..]).map(|(x, y)| x * y.f32()).sum();
    acc.iter().sum::<f32>() + tail
}

/// What one (row, KV head) item reads.
struct Work<'a, E> {
    q: &'a [f32],
    k: &'a [E],
    v: &'a [E],
    kstride: usize,
    vstride: usize,
    /// New rows, head dimension, query heads per KV head, cached rows.
    t: usize,
    hd: usize,
    groups: usize,
    start: usize,
    scale: f32,
}

/// Row `i`'s keys and values for KV head `kv` (the first `start + i + 1` rows).
#[inline(always)]
fn kv_rows<'a, E>(w: &Work<'a, E>, i: usize, kv: usize) -> (&'a [E], &'a [E], usize) {
    let n = w.start + i + 1;
    (
        &w.k[kv * w.kstride..kv * w.kstride + n * w.hd],
        &w.v[kv * w.vstride..kv * w.vstride + n * w.hd],
        n,
    )
}

/// Row `i`'s query for head `j` of KV head `kv`'s group.
#[inline(always)]
fn query<'a, E>(w: &Work<'a, E>, i: usize, kv: usize, j: usize) -> &'a [f32] {
    let head = kv * w.groups + j;
    &w.q[(head * w.t + i) * w.hd..(head * w.t + i + 1) * w.hd]
}

/// Each head's scores (`scores[j·n + p]`, `n` per head) into softmax weights, in place;
/// returns nothing but leaves each head's sum in `sums`.
#[inline(always)]
fn softmax(scores: &mut [f32], n: usize, sums: &mut [f32]) {
    for (s, sum) in scores.chunks_exact_mut(n).zip(sums.iter_mut()) {
        // The maximum in eight lanes (the same value as one running maximum — `max` does not
        // round — without a chain of dependent compares).
        let mut lanes = [f32::NEG_INFINITY; 8];
        let split = s.len() - s.len() % 8;
        for c in s[..split].chunks_exact(8) {
            for (m, &x) in lanes.iter_mut().zip(c) {
                *m = m.max(x);
            }
        }
        let max = s[split..]
            .iter()
            .chain(&lanes)
            .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        for x in s.iter_mut() {
            *x = exp(*x - max);
        }
        *sum = s.iter().fold(0.0, |a, &x| a + x);
    }
}

/// New row `i`'s outputs for query heads `js` of KV head `kv`'s group (`out`: `js.len()` ×
/// `hd`), in plain Rust (any CPU).
#[inline(always)]
fn group_row<E: Elem>(w: &Work<E>, i: usize, kv: usize, js: Range<usize>, out: &mut [f32]) {
    let (hd, g) = (w.hd, js.len());
    let (keys, values, n) = kv_rows(w, i, kv);
    // Scores head by head (`scores[j·n + p]`), each key read once for the group.
    let mut scores = vec![0f32; g * n];
    for (p, kr) in keys.chunks_exact(hd).enumerate() {
        for (j, head) in js.clone().enumerate() {
            scores[j * n + p] = dot(query(w, i, kv, head), kr) * w.scale;
        }
    }
    let mut sums = vec![0f32; g];
    softmax(&mut scores, n, &mut sums);
    out.fill(0.0);
    for (p, vr) in values.chunks_exact(hd).enumerate() {
        for (j, o) in out.chunks_exact_mut(hd).enumerate() {
            let a = scores[j * n + p] / sums[j];
            for (o, x) in o.iter_mut().zip(vr) {
                *o += a * x.f32();
            }
        }
    }
}

/// [`group_row`] with the fastest code this CPU has: AVX2 + FMA (+ F16C) kernels where the
/// head dimension is a multiple of 8, else the plain loops compiled for AVX2 or the baseline.
fn group_row_best<E: Fast>(w: &Work<E>, i: usize, kv: usize, js: Range<usize>, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::fastmath::has_avx2() {
        if w.hd.is_multiple_of(8) && x86::fma_f16c() {
            // SAFETY: the CPU has AVX2, FMA and F16C (checked); the head dimension is whole
            // registers.
            return unsafe { x86::group_row(w, i, kv, js, out) };
        }
        // SAFETY: the CPU has AVX2 (checked).
        return unsafe { group_row_avx2(w, i, kv, js, out) };
    }
    group_row(w, i, kv, js, out)
}

/// [`group_row`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn group_row_avx2<E: Elem>(w: &Work<E>, i: usize, kv: usize, js: Range<usize>, out: &mut [f32]) {
    group_row(w, i, kv, js, out)
}

/// The scores eight keys at a time (eight accumulators, one per key, reduced together) and
/// the weighted sum of values with each head's output row held in registers while every
/// key's value adds in. The keys and values' blocks do not depend on the number of new rows,
/// so a row gets the same result alone or in a batch.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_op_in_unsafe_fn)]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    use std::ops::Range;

    use super::{Elem, Work, kv_rows, query, softmax};

    /// Whether this CPU has FMA and F16C (checked once).
    pub fn fma_f16c() -> bool {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("f16c"))
    }

    /// Eight keys' or values' elements into one register of f32.
    pub trait Load8: Elem {
        /// The eight elements from `p` on, widened to f32 (exactly).
        ///
        /// # Safety
        /// `p..p + 8` is readable and the CPU has AVX2 and F16C.
        unsafe fn load8(p: *const Self) -> __m256;
    }

    impl Load8 for f32 {
        #[inline(always)]
        unsafe fn load8(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
    }

    impl Load8 for f16 {
        #[inline(always)]
        unsafe fn load8(p: *const f16) -> __m256 {
            _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
        }
    }

    /// The eight sums of `a[0..8]`'s lanes, in key order.
    #[inline(always)]
    unsafe fn reduce8(a: &[__m256; 8]) -> __m256 {
        let t0 = _mm256_hadd_ps(a[0], a[1]);
        let t1 = _mm256_hadd_ps(a[2], a[3]);
        let t2 = _mm256_hadd_ps(a[4], a[5]);
        let t3 = _mm256_hadd_ps(a[6], a[7]);
        let u0 = _mm256_hadd_ps(t0, t1);
        let u1 = _mm256_hadd_ps(t2, t3);
        _mm256_add_ps(
            _mm256_permute2f128_ps(u0, u1, 0x20),
            _mm256_permute2f128_ps(u0, u1, 0x31),
        )
    }

    /// Σ q·k for one key (the keys past the last whole block of eight).
    #[inline(always)]
    unsafe fn dot1<E: Load8>(q: *const f32, k: *const E, chunks: usize) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for c in 0..chunks {
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(8 * c)), E::load8(k.add(8 * c)), acc);
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
        ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn group_row<E: Load8>(w: &Work<E>, i: usize, kv: usize, js: Range<usize>, out: &mut [f32]) {
        let (hd, g) = (w.hd, js.len());
        let chunks = hd / 8;
        let (keys, values, n) = kv_rows(w, i, kv);
        let (kp, vp) = (keys.as_ptr(), values.as_ptr());
        let mut scores = vec![0f32; g * n];
        let scale = _mm256_set1_ps(w.scale);
        let whole = n - n % 8;
        for p in (0..whole).step_by(8) {
            for j in 0..g {
                let q = query(w, i, kv, js.start + j).as_ptr();
                let mut acc = [_mm256_setzero_ps(); 8];
                for c in 0..chunks {
                    let qv = _mm256_loadu_ps(q.add(8 * c));
                    for (k, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(qv, E::load8(kp.add((p + k) * hd + 8 * c)), *a);
                    }
                }
                _mm256_storeu_ps(scores.as_mut_ptr().add(j * n + p), _mm256_mul_ps(reduce8(&acc), scale));
            }
        }
        for p in whole..n {
            for j in 0..g {
                scores[j * n + p] = dot1(query(w, i, kv, js.start + j).as_ptr(), kp.add(p * hd), chunks) * w.scale;
            }
        }
        let mut sums = vec![0f32; g];
        softmax(&mut scores, n, &mut sums);
        // Weighted values: each head's output row is taken eight registers at a time and
        // kept in them while every key's value adds in, in key order — the same sequence of
        // multiply-adds per output value as one register at a time, but eight independent
        // chains instead of one waiting on each addition (which bound this loop before).
        let sp = scores.as_ptr();
        for (j, o) in out.chunks_exact_mut(hd).enumerate() {
            let inv = 1.0 / sums[j];
            let (s, o) = (sp.add(j * n), o.as_mut_ptr());
            let mut c = 0;
            while c < chunks {
                c += match chunks - c {
                    8.. => weighted::<8, E>(s, inv, vp.add(8 * c), hd, n, o.add(8 * c)),
                    4..=7 => weighted::<4, E>(s, inv, vp.add(8 * c), hd, n, o.add(8 * c)),
                    2..=3 => weighted::<2, E>(s, inv, vp.add(8 * c), hd, n, o.add(8 * c)),
                    _ => weighted::<1, E>(s, inv, vp.add(8 * c), hd, n, o.add(8 * c)),
                };
            }
        }
    }

    /// `M` registers of an output row (at `o`): Σ over keys `p` of (`s[p]` · `inv`) times
    /// the value row's same lanes (`v` + `p · hd`), added in key order from zero. Returns `M`.
    #[inline(always)]
    unsafe fn weighted<const M: usize, E: Load8>(
        s: *const f32,
        inv: f32,
        v: *const E,
        hd: usize,
        n: usize,
        o: *mut f32,
    ) -> usize {
        let mut acc = [_mm256_setzero_ps(); M];
        for p in 0..n {
            let a = _mm256_set1_ps(*s.add(p) * inv);
            let row = v.add(p * hd);
            for (c, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(a, E::load8(row.add(8 * c)), *acc);
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(o.add(8 * c), *acc);
        }
        M
    }
}

/// Keys or values, each head's rows contiguous, and the distance between heads.
type Headwise<'a, E> = (&'a [E], usize);

/// The (t, heads · hd) outputs of every new row over keys and values held as `E` (with
/// the distances between their heads); `shape` is (heads, t, hd, kv_heads, total rows).
fn rows<E: Fast>(
    q: &[f32],
    ((k, kstride), (v, vstride)): (Headwise<E>, Headwise<E>),
    (h, t, hd, kvh, total): (usize, usize, usize, usize, usize),
    scale: f32,
) -> Vec<f32> {
    let groups = h / kvh;
    let work = Work {
        q,
        k,
        v,
        kstride,
        vstride,
        t,
        hd,
        groups,
        start: total - t,
        scale,
    };
    // Output row i holds heads 0..h in order: KV head kv's group is one slice of it.
    let item = |idx: usize, out: &mut [f32]| group_row_best(&work, idx / kvh, idx % kvh, 0..groups, out);
    let mut y = vec![0f32; t * h * hd];
    // Work ≈ rows × heads × context × hd; below ~1M multiply-adds a sleeping worker's
    // wake-up costs more than it saves — but a decode step keeps the workers awake
    // (`awake.rs`), and then 32k is enough.
    let enough = if t <= super::awake::SHORT_PASS {
        1 << 15
    } else {
        1 << 20
    };
    if t * h * total * hd < enough {
        y.chunks_exact_mut(groups * hd)
            .enumerate()
            .for_each(|(idx, out)| item(idx, out));
    } else {
        y.par_chunks_exact_mut(groups * hd)
            .enumerate()
            .for_each(|(idx, out)| item(idx, out));
    }
    y
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "oae-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (h, t, hd) = ql.shape().dims3()?;
        let (kvh, total, khd) = kl.shape().dims3()?;
        if vl.shape().dims3()? != (kvh, total, khd) || khd != hd || kvh == 0 || !h.is_multiple_of(kvh) || total < t {
            candle_core::bail!(
                "oae-attention: q {:?}, k {:?}, v {:?} do not fit together",
                ql.shape(),
                kl.shape(),
                vl.shape()
            );
        }
        let q = contiguous(qs, ql, "q")?;
        let shape = (h, t, hd, kvh, total);
        let y = match keys_values(ks, kl, vs, vl)? {
            Kv::F32(kv) => rows(q, kv, shape, self.scale),
            Kv::F16(kv) => rows(q, kv, shape, self.scale),
        };
        Ok((CpuStorage::F32(y), Shape::from((t, h * hd))))
    }
}

/// Causal attention of `q` (heads, t, hd) over `k`, `v` (kv_heads, total, hd) whose last `t`
/// positions are the new rows: (t, heads · hd). `k` and `v` may be views of longer buffers
/// (the KV cache's): they are read in place.
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> candle_core::Result<Tensor> {
    let rows_contiguous = |t: &Tensor| {
        let st = t.stride();
        let (_, n, hd) = t.dims3()?;
        Ok::<bool, candle_core::Error>((hd <= 1 || st[2] == 1) && (n <= 1 || st[1] == hd))
    };
    let k = if rows_contiguous(k)? {
        k.clone()
    } else {
        k.contiguous()?
    };
    let v = if rows_contiguous(v)? {
        v.clone()
    } else {
        v.contiguous()?
    };
    q.contiguous()?
        .apply_op3_no_bwd(&k, &v, &CausalAttention { scale: scale as f32 })
}

/// Query heads `heads` of one new row's attention — the row after `k`'s and `v`'s other
/// rows, as [`attend`] computes it, bit for bit — into `out` (`heads.len()` × hd values).
/// `q` holds every head's query (heads × hd); `k` and `v` (kv_heads, total, hd) have
/// contiguous rows (a KV cache's buffers viewed to their length do). For splitting one
/// decode step's attention by heads over a [`team`](super::team).
pub fn decode_heads(
    q: &[f32],
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    heads: Range<usize>,
    out: &mut [f32],
) -> candle_core::Result<()> {
    let (kvh, total, hd) = k.dims3()?;
    let h = q.len() / hd.max(1);
    if v.dims3()? != (kvh, total, hd)
        || kvh == 0
        || total == 0
        || h * hd != q.len()
        || !h.is_multiple_of(kvh)
        || heads.end > h
        || out.len() != heads.len() * hd
    {
        candle_core::bail!(
            "oae-attention: q of {} values, heads {heads:?}, k {:?}, v {:?} and {} outputs do not fit together",
            q.len(),
            k.shape(),
            v.shape(),
            out.len()
        );
    }
    let ((ks, kl), (vs, vl)) = (k.storage_and_layout(), v.storage_and_layout());
    let (Storage::Cpu(ks), Storage::Cpu(vs)) = (&*ks, &*vs) else {
        candle_core::bail!("oae-attention: decode_heads takes keys and values on the CPU");
    };
    let shape = (h, hd, kvh, total);
    match keys_values(ks, kl, vs, vl)? {
        Kv::F32(kv) => heads_of(q, kv, shape, scale, heads, out),
        Kv::F16(kv) => heads_of(q, kv, shape, scale, heads, out),
    }
    Ok(())
}

/// [`decode_heads`] over keys and values held as `E`; `shape` is (heads, hd, kv_heads,
/// total rows).
fn heads_of<E: Fast>(
    q: &[f32],
    ((k, kstride), (v, vstride)): (Headwise<E>, Headwise<E>),
    (h, hd, kvh, total): (usize, usize, usize, usize),
    scale: f32,
    heads: Range<usize>,
    out: &mut [f32],
) {
    let groups = h / kvh;
    let work = Work {
        q,
        k,
        v,
        kstride,
        vstride,
        t: 1,
        hd,
        groups,
        start: total - 1,
        scale,
    };
    let mut out = out;
    for kv in 0..kvh {
        let first = kv * groups;
        let js = heads.start.clamp(first, first + groups) - first..heads.end.clamp(first, first + groups) - first;
        if js.is_empty() {
            continue;
        }
        let (mine, rest) = std::mem::take(&mut out).split_at_mut(js.len() * hd);
        out = rest;
        group_row_best(&work, 0, kv, js, mine);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, DType, Device, IndexOp};

    fn random(shape: (usize, usize, usize), seed: u64) -> Tensor {
        let mut rng = oae_core::rng::seeded(seed, &["attention-test"]);
        let n = shape.0 * shape.1 * shape.2;
        let v: Vec<f32> = (0..n)
            .map(|_| oae_core::rng::standard_normal(&mut rng) as f32)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The op equals masked softmax attention written with tensor ops, and each of a batch's
    /// rows equals that row computed alone over its own prefix, bit for bit — also when the
    /// batch is big enough to be split over threads.
    #[test]
    fn matches_masked_softmax_and_is_batch_invariant() {
        // Head dimensions of whole registers (the FMA kernels: 2, 8 and 5 = 4 + 1 registers
        // per row) and not (the plain loops); groups of 3 and of 6 query heads.
        for (t, total, h, kvh, hd) in [
            (1, 9, 6, 2, 16),
            (5, 12, 6, 2, 64),
            (64, 200, 6, 2, 12),
            (2, 45, 6, 1, 40),
        ] {
            let (q, k, v) = (
                random((h, t, hd), 1),
                random((kvh, total, hd), 2),
                random((kvh, total, hd), 3),
            );
            let scale = 0.25;
            let got = attend(&q, &k, &v, scale).unwrap();
            let start = total - t;
            let mask = crate::model::causal_mask(start, t, &Device::Cpu).unwrap();
            let g = h / kvh;
            let att = (q.reshape((kvh, g * t, hd)).unwrap().matmul(&k.t().unwrap()).unwrap() * scale).unwrap();
            let att = att.reshape((h, t, total)).unwrap().broadcast_add(&mask).unwrap();
            let att = candle_nn::ops::softmax(&att, D::Minus1)
                .unwrap()
                .reshape((kvh, g * t, total))
                .unwrap();
            let want = att
                .matmul(&v)
                .unwrap()
                .reshape((h, t, hd))
                .unwrap()
                .transpose(0, 1)
                .unwrap()
                .reshape((t, h * hd))
                .unwrap();
            let d = (got.clone() - want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-5, "t={t}: {d}");
            for i in 0..t {
                let qi = q.i((.., i..i + 1, ..)).unwrap();
                let n = start + i + 1;
                let (ki, vi) = (k.i((.., ..n, ..)).unwrap(), v.i((.., ..n, ..)).unwrap());
                let alone = attend(&qi, &ki, &vi, scale).unwrap();
                let row = got.i(i..i + 1).unwrap();
                assert_eq!(
                    alone.to_vec2::<f32>().unwrap(),
                    row.to_vec2::<f32>().unwrap(),
                    "t={t}, row {i}"
                );
            }
        }
    }

    /// Keys and values held in f16 give exactly what their f32 widenings give (each element
    /// widened as it is read, the same operations in the same order), with the FMA kernels
    /// and the plain loops, in a batch and alone; mixed types are refused.
    #[test]
    fn f16_keys_and_values_equal_their_f32_widening() {
        for (t, total, h, kvh, hd) in [(1, 70, 9, 3, 64), (4, 33, 6, 2, 16), (3, 20, 4, 2, 12)] {
            let q = random((h, t, hd), 4);
            let k = random((kvh, total, hd), 5).to_dtype(candle_core::DType::F16).unwrap();
            let v = random((kvh, total, hd), 6).to_dtype(candle_core::DType::F16).unwrap();
            let wide = |x: &Tensor| x.to_dtype(candle_core::DType::F32).unwrap();
            let got = attend(&q, &k, &v, 0.125).unwrap();
            let want = attend(&q, &wide(&k), &wide(&v), 0.125).unwrap();
            assert_eq!(got.to_vec2::<f32>().unwrap(), want.to_vec2::<f32>().unwrap(), "hd={hd}");
            // The cache's view of a longer f16 buffer is read in place.
            let longer = Tensor::cat(&[&k, &k], 1).unwrap();
            let view = longer.narrow(1, 0, total).unwrap();
            assert_eq!(
                attend(&q, &view, &v, 0.125).unwrap().to_vec2::<f32>().unwrap(),
                got.to_vec2::<f32>().unwrap()
            );
            let e = attend(&q, &k, &wide(&v), 0.125).unwrap_err().to_string();
            assert!(e.contains("both be f32 or both f16"), "{e}");
        }
    }

    /// Any range of query heads of one new row, from keys and values in f32 or f16 held in
    /// longer buffers (as the KV cache's are), gives those heads' values of `attend`, bit for
    /// bit; shapes that do not fit are refused.
    #[test]
    fn decode_heads_equal_attend_for_any_heads() {
        for (h, kvh, hd, total) in [(9, 3, 64, 130), (6, 2, 12, 7), (4, 4, 8, 1)] {
            let q = random((h, 1, hd), 11);
            let (kb, vb) = (random((kvh, total + 5, hd), 12), random((kvh, total + 5, hd), 13));
            for dtype in [DType::F32, DType::F16] {
                let (kb, vb) = (kb.to_dtype(dtype).unwrap(), vb.to_dtype(dtype).unwrap());
                let (k, v) = (kb.narrow(1, 0, total).unwrap(), vb.narrow(1, 0, total).unwrap());
                let want = attend(&q, &k, &v, 0.125)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                let qv = q.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for a in 0..h {
                    for b in a + 1..=h {
                        let mut out = vec![f32::NAN; (b - a) * hd];
                        decode_heads(&qv, &k, &v, 0.125, a..b, &mut out).unwrap();
                        assert_eq!(out, want[a * hd..b * hd], "{dtype:?}, heads {a}..{b} of {h}");
                    }
                }
                let mut short = vec![0f32; hd];
                assert!(decode_heads(&qv, &k, &v, 0.125, 0..2, &mut short).is_err());
                assert!(decode_heads(&qv, &k, &v, 0.125, 0..h + 1, &mut vec![0f32; (h + 1) * hd]).is_err());
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        let q = random((4, 2, 8), 1);
        let k = random((3, 5, 8), 2);
        assert!(attend(&q, &k, &k, 1.0).is_err());
        let k = random((2, 1, 8), 2);
        assert!(attend(&q, &k, &k, 1.0).is_err(), "fewer keys than new rows");
    }
}
