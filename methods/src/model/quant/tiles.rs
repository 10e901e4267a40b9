//! Rows of the own formats interleaved in tiles of eight, and the products that read them.
//!
//! A tile holds eight consecutive rows block by block: for each block of 32 values, the
//! eight rows' quants in chunks of four bytes (chunk `c` = bytes `4c..4c + 4` of every row's
//! block, row after row: one 256-bit register), then the eight rows' f16 scales, then (Q4_1)
//! their minimums. One chunk's eight lanes then dot with the same four activation values
//! broadcast, so a register computes eight rows at once and a tile's eight results come out
//! in one register, with no horizontal sum per row — the per-row cost that kept the row
//! layout's kernels at 22–28 GB/s from cache on SmolLM2's 576-value rows (45 GB/s tiled,
//! `OAE_BENCH_IN_CACHE=1 cargo bench -p oae-methods --bench quant`). Tiles stream without
//! software prefetch: the hardware prefetcher follows them, and prefetching ahead measured
//! 10–35 % slower from memory.
//!
//! A 4-bit chunk's low nibbles are values `4c..4c + 4` of each row, its high nibbles values
//! `16 + 4c..16 + 4c + 4`; an 8-bit chunk is values `4c..4c + 4`. The same bytes as the row
//! layout (scales unpadded), so a tiled matrix is at most the row layout's size.
//!
//! A row's value is the same whichever tile position, thread count or number of activation
//! rows computes it: each (tile, activation row) runs one fixed sequence.

use super::QType;
use super::act::Activations;
use super::kernels::Isa;

/// Rows per tile.
pub const ROWS: usize = 8;

/// Bytes of one block of a tile: quants, scales, minimums.
pub fn block_bytes(q: QType) -> usize {
    match q {
        QType::Q4_0 => 128 + 16,
        QType::Q4_1 => 128 + 32,
        QType::Q8_0 => 256 + 16,
        QType::Foreign(_) => unreachable!("foreign rows are not tiled"),
    }
}

/// Bytes of quants per block and row.
fn quant_bytes(q: QType) -> usize {
    if q == QType::Q8_0 { 32 } else { 16 }
}

/// Packs eight own-layout rows (`row(k)` for k in 0..8, `nb` blocks each) into `tile`.
pub fn pack<'a>(q: QType, nb: usize, row: impl Fn(usize) -> &'a [u8], tile: &mut [u8]) {
    let (qb, tb, np) = (quant_bytes(q), block_bytes(q), super::pad8(nb));
    for k in 0..ROWS {
        let r = row(k);
        let (quants, scales) = r.split_at(nb * qb);
        for b in 0..nb {
            let blk = &mut tile[b * tb..(b + 1) * tb];
            for c in 0..qb / 4 {
                blk[32 * c + 4 * k..32 * c + 4 * k + 4].copy_from_slice(&quants[qb * b + 4 * c..qb * b + 4 * c + 4]);
            }
            let s = 8 * qb;
            blk[s + 2 * k..s + 2 * k + 2].copy_from_slice(&scales[2 * b..2 * b + 2]);
            if q == QType::Q4_1 {
                blk[s + 16 + 2 * k..s + 18 + 2 * k].copy_from_slice(&scales[2 * (np + b)..2 * (np + b) + 2]);
            }
        }
    }
}

/// Row `k` of `tile` back in the own row layout (`out` is one row's bytes, padding zeroed).
pub fn unpack(q: QType, nb: usize, tile: &[u8], k: usize, out: &mut [u8]) {
    let (qb, tb, np) = (quant_bytes(q), block_bytes(q), super::pad8(nb));
    out.fill(0);
    let (quants, scales) = out.split_at_mut(nb * qb);
    for b in 0..nb {
        let blk = &tile[b * tb..(b + 1) * tb];
        for c in 0..qb / 4 {
            quants[qb * b + 4 * c..qb * b + 4 * c + 4].copy_from_slice(&blk[32 * c + 4 * k..32 * c + 4 * k + 4]);
        }
        let s = 8 * qb;
        scales[2 * b..2 * b + 2].copy_from_slice(&blk[s + 2 * k..s + 2 * k + 2]);
        if q == QType::Q4_1 {
            scales[2 * (np + b)..2 * (np + b) + 2].copy_from_slice(&blk[s + 16 + 2 * k..s + 18 + 2 * k]);
        }
    }
}

/// `out[r·t + i]` = row `r` of the tiles in `data` (tiles of `tile` bytes, `out.len() / t`
/// rows, a multiple of eight) dotted with activation row `i`, with the kernels for `isa`
/// (the row layout's portable loop, row by row, where this CPU lacks it).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
pub fn rows_with(isa: Isa, q: QType, data: &[u8], tile: usize, x: &Activations, out: &mut [f32]) {
    let t = x.t.max(1);
    let tiles = out.len() / t / ROWS;
    assert_eq!(out.len(), tiles * ROWS * t, "tiled rows come in eights");
    assert!(data.len() >= tiles * tile, "tiles past the matrix");
    assert_eq!(tile, x.nb * block_bytes(q), "tile layout does not fit the activations");
    #[cfg(target_arch = "x86_64")]
    if super::kernels::call_isa(isa, (x86::tiles_avx2, x86::tiles_vnni), q, data, tile, x, out) {
        return;
    }
    let stride = q.row_bytes(x.nb * 32);
    let mut row = vec![0u8; stride];
    for (r, o) in out.chunks_exact_mut(t).enumerate() {
        unpack(
            q,
            x.nb,
            &data[(r / ROWS) * tile..(r / ROWS + 1) * tile],
            r % ROWS,
            &mut row,
        );
        super::kernels::rows_with(Isa::Generic, q, &row, stride, x, o);
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_op_in_unsafe_fn)]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::QType;
    use super::Activations;

    use super::super::kernels::x86::{Q4_0, Q4_1, Q8_0};

    /// `acc` + Σ of four u8·i8 products per i32 lane (`w` at most 128 per byte).
    #[inline(always)]
    unsafe fn dot<const VNNI: bool>(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        if VNNI {
            _mm256_dpbusd_epi32(acc, w, x)
        } else {
            // Each i16 lane is at most 2 · 128 · 127: no saturation.
            _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)))
        }
    }

    /// The four activation values of chunk `c` of a block, in every lane.
    #[inline(always)]
    unsafe fn bcast(xb: *const i8, c: usize) -> __m256i {
        _mm256_set1_epi32((xb.add(4 * c) as *const i32).read_unaligned())
    }

    /// One block's integer sums, one i32 lane per row of the tile.
    #[inline(always)]
    unsafe fn block<const KIND: u8, const VNNI: bool>(blk: *const u8, xb: *const i8) -> __m256i {
        let (mut s0, mut s1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        if KIND == Q8_0 {
            for c in 0..8 {
                let w = _mm256_loadu_si256(blk.add(32 * c) as *const __m256i);
                let p = dot::<VNNI>(
                    if c % 2 == 0 { s0 } else { s1 },
                    _mm256_abs_epi8(w),
                    _mm256_sign_epi8(bcast(xb, c), w),
                );
                if c % 2 == 0 { s0 = p } else { s1 = p }
            }
            return _mm256_add_epi32(s0, s1);
        }
        let m4 = _mm256_set1_epi8(15);
        for c in 0..4 {
            let w = _mm256_loadu_si256(blk.add(32 * c) as *const __m256i);
            s0 = dot::<VNNI>(s0, _mm256_and_si256(w, m4), bcast(xb, c));
            if VNNI {
                // The high nibbles in place (16 × the value): one instruction fewer, and the
                // sum, a multiple of 16, shifts back exactly below.
                s1 = dot::<VNNI>(s1, _mm256_andnot_si256(m4, w), bcast(xb, 4 + c));
            } else {
                s1 = dot::<VNNI>(s1, _mm256_and_si256(_mm256_srli_epi16(w, 4), m4), bcast(xb, 4 + c));
            }
        }
        if VNNI {
            s1 = _mm256_srai_epi32(s1, 4);
        }
        _mm256_add_epi32(s0, s1)
    }

    /// A tile's eight rows dotted with one activation row (quants, scales, scaled sums).
    #[inline(always)]
    unsafe fn tile<const KIND: u8, const VNNI: bool>(
        tile: *const u8,
        nb: usize,
        xq: *const i8,
        xd: *const f32,
        xs: *const f32,
    ) -> __m256 {
        let tb = if KIND == Q8_0 {
            272
        } else if KIND == Q4_1 {
            160
        } else {
            144
        };
        let qb = if KIND == Q8_0 { 256 } else { 128 };
        let (mut acc0, mut acc1, mut accm) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        for b in 0..nb {
            let blk = tile.add(b * tb);
            let s = _mm256_cvtepi32_ps(block::<KIND, VNNI>(blk, xq.add(32 * b)));
            let d = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(qb) as *const __m128i));
            let sc = _mm256_mul_ps(d, _mm256_set1_ps(*xd.add(b)));
            // Two accumulators: consecutive blocks' additions do not wait on each other.
            if b % 2 == 0 {
                acc0 = _mm256_fmadd_ps(s, sc, acc0);
            } else {
                acc1 = _mm256_fmadd_ps(s, sc, acc1);
            }
            if KIND == Q4_1 {
                let m = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(qb + 16) as *const __m128i));
                accm = _mm256_fmadd_ps(m, _mm256_set1_ps(*xs.add(b)), accm);
            } else if KIND == Q4_0 {
                accm = _mm256_fmadd_ps(d, _mm256_set1_ps(*xs.add(b)), accm);
            }
        }
        let r = _mm256_add_ps(acc0, acc1);
        match KIND {
            Q4_0 => _mm256_fnmadd_ps(_mm256_set1_ps(8.0), accm, r),
            Q4_1 => _mm256_add_ps(r, accm),
            _ => r,
        }
    }

    #[inline(always)]
    unsafe fn tiles_of<const KIND: u8, const VNNI: bool>(data: &[u8], size: usize, x: &Activations, out: &mut [f32]) {
        let cols = x.nb * 32;
        let t = x.t.max(1);
        let tiles = out.len() / t / 8;
        let mut lanes = [0f32; 8];
        for k in 0..tiles {
            let p = data.as_ptr().add(k * size);
            for i in 0..t {
                let v = tile::<KIND, VNNI>(
                    p,
                    x.nb,
                    x.qs.as_ptr().add(i * cols),
                    x.d.as_ptr().add(i * x.np),
                    x.s.as_ptr().add(i * x.np),
                );
                if t == 1 {
                    _mm256_storeu_ps(out.as_mut_ptr().add(8 * k), v);
                } else {
                    _mm256_storeu_ps(lanes.as_mut_ptr(), v);
                    for (r, &l) in lanes.iter().enumerate() {
                        out[(8 * k + r) * t + i] = l;
                    }
                }
            }
        }
    }

    super::super::kernels::entry_points!(tiles_of, tiles_avx2, tiles_vnni);
}
