//! Dot products of own-layout weight rows (Q4_0, Q4_1, Q8_0) with quantized activation
//! rows: AVX2 (`vpmaddubsw`) and AVX-512 VNNI (`vpdpbusd` on 256-bit registers), and a
//! portable loop that is the reference they are tested against. The instruction set is chosen
//! once from what the CPU reports at run time — never from what the build machine had — and
//! `OAE_QUANT_ISA=generic|avx2|vnni` forces one for A/B measurements (a set this CPU lacks
//! falls back to the best it has). Where it is `generic`, matrices keep the file's layout and
//! candle's kernels compute them.
//!
//! Each block's integer sum Σ q_w·q_x is exact; it is scaled by d_w·d_x in f32, and the
//! blocks' minimums (Q4_1) or the −8 offset (Q4_0) enter through the activations' scaled
//! sums, as in llama.cpp.

use super::QType;
use super::act::Activations;

/// An instruction set the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust (any CPU).
    Generic,
    /// AVX2 + FMA + F16C.
    Avx2,
    /// AVX2 plus AVX-512 VNNI on 256-bit registers.
    Vnni,
}

impl Isa {
    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::Vnni => "avx512-vnni",
        }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            Isa::Generic => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Vnni => {
                Isa::Avx2.available()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// The instruction set in use: the best available, or `OAE_QUANT_ISA` when this CPU has it.
pub fn isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        let best = [Isa::Vnni, Isa::Avx2, Isa::Generic]
            .into_iter()
            .find(|i| i.available())
            .unwrap_or(Isa::Generic);
        let asked = match std::env::var("OAE_QUANT_ISA").as_deref() {
            Ok("generic") => Isa::Generic,
            Ok("avx2") => Isa::Avx2,
            Ok("vnni") => Isa::Vnni,
            _ => best,
        };
        if asked.available() { asked } else { best }
    })
}

/// An instruction set's entry point of a kernel family: (format, weights, bytes per row or
/// tile, activations, outputs).
#[cfg(target_arch = "x86_64")]
pub(super) type Entry = unsafe fn(QType, &[u8], usize, &Activations, &mut [f32]);

/// Runs the family's kernel for `isa` (`entries`: AVX2, AVX-512 VNNI) when this CPU has it;
/// false when it has not (the caller runs its portable loop).
#[cfg(target_arch = "x86_64")]
pub(super) fn call_isa(
    isa: Isa,
    entries: (Entry, Entry),
    q: QType,
    data: &[u8],
    size: usize,
    x: &Activations,
    out: &mut [f32],
) -> bool {
    let f = match isa {
        Isa::Avx2 if Isa::Avx2.available() => entries.0,
        Isa::Vnni if Isa::Vnni.available() => entries.1,
        _ => return false,
    };
    // SAFETY: the CPU has the instruction set (checked); the callers checked the sizes.
    unsafe { f(q, data, size, x, out) };
    true
}

/// A kernel family's two entry points, `$avx2` and `$vnni`, calling `$f::<KIND, VNNI>` for
/// the block format (`$f(data, size, x, out)`, KIND one of the `Q*` constants in scope).
#[cfg(target_arch = "x86_64")]
macro_rules! entry_points {
    ($f:ident, $avx2:ident, $vnni:ident) => {
        #[inline(always)]
        unsafe fn dispatch<const VNNI: bool>(q: QType, data: &[u8], size: usize, x: &Activations, out: &mut [f32]) {
            match q {
                QType::Q4_0 => $f::<Q4_0, VNNI>(data, size, x, out),
                QType::Q4_1 => $f::<Q4_1, VNNI>(data, size, x, out),
                QType::Q8_0 => $f::<Q8_0, VNNI>(data, size, x, out),
                QType::Foreign(_) => unreachable!("foreign rows use candle's kernels"),
            }
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $avx2(q: QType, data: &[u8], size: usize, x: &Activations, out: &mut [f32]) {
            dispatch::<false>(q, data, size, x, out)
        }

        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
        pub unsafe fn $vnni(q: QType, data: &[u8], size: usize, x: &Activations, out: &mut [f32]) {
            dispatch::<true>(q, data, size, x, out)
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(super) use entry_points;

/// `out[r·t + i]` = row `r` of `data` (rows of `stride` bytes, `out.len() / t` of them)
/// dotted with activation row `i`, with the kernels for `isa` (the portable loop when this
/// CPU lacks it).
pub fn rows_with(isa: Isa, q: QType, data: &[u8], stride: usize, x: &Activations, out: &mut [f32]) {
    let n = out.len() / x.t.max(1);
    assert!(data.len() >= n * stride, "weight rows past the matrix");
    assert_eq!(
        stride,
        q.row_bytes(x.nb * 32),
        "row layout does not fit the activations"
    );
    assert!(
        isa == Isa::Generic || q == QType::Q8_0 || x.paired.len() == x.qs.len(),
        "4-bit rows need the pair-ordered activations"
    );
    #[cfg(target_arch = "x86_64")]
    if call_isa(isa, (x86::rows_avx2, x86::rows_vnni), q, data, stride, x, out) {
        return;
    }
    for (r, o) in out.chunks_exact_mut(x.t).enumerate() {
        let row = &data[r * stride..(r + 1) * stride];
        for (i, v) in o.iter_mut().enumerate() {
            *v = dot_generic(q, row, x, i);
        }
    }
}

/// Σ a·b over 32 values, written so the compiler vectorizes it for the build's baseline
/// (SSE2 on x86-64, NEON on aarch64).
#[inline(always)]
fn dot32(a: &[i8; 32], b: &[i8; 32]) -> i32 {
    a.iter().zip(b).map(|(&p, &q)| p as i32 * q as i32).sum()
}

/// One dot product in plain Rust.
fn dot_generic(q: QType, row: &[u8], x: &Activations, i: usize) -> f32 {
    let (nb, np) = (x.nb, x.np);
    let (xq, xd, xs) = x.row(i);
    let qb = q.quant_bytes();
    let (quants, scales) = row.split_at(nb * qb);
    let mut sum = 0f32;
    let mut min = 0f32;
    let mut w = [0i8; 32];
    for b in 0..nb {
        let dw = super::f16_at(scales, b);
        let qs = &quants[b * qb..(b + 1) * qb];
        if q == QType::Q8_0 {
            let qs: &[u8; 32] = qs.try_into().expect("32 quants");
            for k in 0..32 {
                w[k] = qs[k] as i8;
            }
        } else {
            let qs: &[u8; 16] = qs.try_into().expect("16 quant bytes");
            for k in 0..16 {
                w[k] = (qs[k] & 15) as i8;
                w[k + 16] = (qs[k] >> 4) as i8;
            }
        }
        let xb: &[i8; 32] = xq[b * 32..(b + 1) * 32].try_into().expect("32 values");
        sum += dw * xd[b] * dot32(&w, xb) as f32;
        match q {
            QType::Q4_1 => min += super::f16_at(scales, np + b) * xs[b],
            QType::Q4_0 => min -= 8.0 * dw * xs[b],
            _ => {}
        }
    }
    sum + min
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_op_in_unsafe_fn)]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    use super::super::QType;
    use super::Activations;

    /// The block formats as const-generic parameters.
    pub(in super::super) const Q4_0: u8 = 0;
    pub(in super::super) const Q4_1: u8 = 1;
    pub(in super::super) const Q8_0: u8 = 2;
    /// How far ahead of the row being computed to prefetch, in bytes. A fixed number of rows
    /// (four) was too near for SmolLM2's 360-byte rows; 4–8 KiB measured best from memory on
    /// this project's VM (`benches/quant.rs`: 8.2 ms of products per token without prefetch,
    /// 6.7 with four rows, 6.1–6.4 with 8 KiB).
    const AHEAD: usize = 8192;

    /// Σ of four u8·i8 products per i32 lane.
    #[inline(always)]
    unsafe fn i8dot<const VNNI: bool>(w: __m256i, x: __m256i) -> __m256i {
        if VNNI {
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x)
        } else {
            _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1))
        }
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Block `b`'s integer products, eight i32 partial sums.
    #[inline(always)]
    unsafe fn block<const KIND: u8, const VNNI: bool>(row: *const u8, xq: *const i8, b: usize) -> __m256i {
        let x = _mm256_loadu_si256(xq.add(32 * b) as *const __m256i);
        if KIND == Q8_0 {
            let w = _mm256_loadu_si256(row.add(32 * b) as *const __m256i);
            i8dot::<VNNI>(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w))
        } else {
            let m4 = _mm_set1_epi8(15);
            let q = _mm_loadu_si128(row.add(16 * b) as *const __m128i);
            let lo = _mm_and_si128(q, m4);
            let hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
            i8dot::<VNNI>(_mm256_set_m128i(hi, lo), x)
        }
    }

    /// Blocks `b` and `b + 1` of a 4-bit row against the pair-ordered activations: one
    /// 32-byte load gives both blocks' low nibbles (values 0..16) and high nibbles (16..32);
    /// i32 lanes 0..4 sum block `b`, lanes 4..8 block `b + 1`.
    #[inline(always)]
    unsafe fn pair4<const VNNI: bool>(row: *const u8, xp: *const i8, b: usize) -> __m256i {
        let m4 = _mm256_set1_epi8(15);
        let q = _mm256_loadu_si256(row.add(16 * b) as *const __m256i);
        let lo = _mm256_and_si256(q, m4);
        let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        let xlo = _mm256_loadu_si256(xp.add(32 * b) as *const __m256i);
        let xhi = _mm256_loadu_si256(xp.add(32 * b + 32) as *const __m256i);
        if VNNI {
            _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, xlo), hi, xhi)
        } else {
            // Each i16 lane is at most 2 · 2 · 15 · 127: no saturation.
            let s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
            _mm256_madd_epi16(s, _mm256_set1_epi16(1))
        }
    }

    /// Scales of blocks 2j, 2j + 1 of a group spread over lanes 0..4 and 4..8.
    #[inline(always)]
    unsafe fn pair_scales(sc: __m256, j: i32) -> __m256 {
        let (a, b) = (2 * j, 2 * j + 1);
        _mm256_permutevar8x32_ps(sc, _mm256_setr_epi32(a, a, a, a, b, b, b, b))
    }

    /// The activation row's pointers: quants in block order, pair-ordered quants, scales,
    /// scaled sums.
    type X = (*const i8, *const i8, *const f32, *const f32);

    /// Accumulates the group of (up to) eight blocks from `b` of one weight row into `acc`
    /// and `accm`. [`dot`] and [`dot2`] both run exactly this sequence per row, so a row's
    /// result does not depend on which computed it.
    #[inline(always)]
    unsafe fn step<const KIND: u8, const VNNI: bool>(
        row: *const u8,
        b: usize,
        nb: usize,
        np: usize,
        x: X,
        acc: &mut [__m256; 4],
        accm: &mut __m256,
    ) {
        let (xq, xp, xd, xs) = x;
        let qb = if KIND == Q8_0 { 32 } else { 16 };
        let scales = row.add(nb * qb);
        let mut sc = [0f32; 8];
        let dw = _mm256_cvtph_ps(_mm_loadu_si128(scales.add(2 * b) as *const __m128i));
        let scv = _mm256_mul_ps(dw, _mm256_loadu_ps(xd.add(b)));
        if KIND == Q4_1 {
            let m = _mm256_cvtph_ps(_mm_loadu_si128(scales.add(2 * (np + b)) as *const __m128i));
            *accm = _mm256_fmadd_ps(m, _mm256_loadu_ps(xs.add(b)), *accm);
        } else if KIND == Q4_0 {
            *accm = _mm256_fmadd_ps(dw, _mm256_loadu_ps(xs.add(b)), *accm);
        }
        let n = (nb - b).min(8);
        if KIND != Q8_0 {
            // Pairs of blocks, then an odd last one alone. A whole group of eight is
            // unrolled so the scale permutations and accumulators are constants.
            if n == 8 {
                for (j, a) in acc.iter_mut().enumerate() {
                    let p = _mm256_cvtepi32_ps(pair4::<VNNI>(row, xp, b + 2 * j));
                    *a = _mm256_fmadd_ps(p, pair_scales(scv, j as i32), *a);
                }
                return;
            }
            for j in 0..n / 2 {
                let p = _mm256_cvtepi32_ps(pair4::<VNNI>(row, xp, b + 2 * j));
                acc[j % 4] = _mm256_fmadd_ps(p, pair_scales(scv, j as i32), acc[j % 4]);
            }
            if n % 2 == 1 {
                _mm256_storeu_ps(sc.as_mut_ptr(), scv);
                let p = _mm256_cvtepi32_ps(block::<KIND, VNNI>(row, xq, b + n - 1));
                acc[0] = _mm256_fmadd_ps(p, _mm256_set1_ps(sc[n - 1]), acc[0]);
            }
        } else {
            _mm256_storeu_ps(sc.as_mut_ptr(), scv);
            if n == 8 {
                for k in 0..8 {
                    let p = _mm256_cvtepi32_ps(block::<KIND, VNNI>(row, xq, b + k));
                    acc[k % 4] = _mm256_fmadd_ps(p, _mm256_set1_ps(sc[k]), acc[k % 4]);
                }
            } else {
                for (k, &s) in sc.iter().enumerate().take(n) {
                    let p = _mm256_cvtepi32_ps(block::<KIND, VNNI>(row, xq, b + k));
                    acc[0] = _mm256_fmadd_ps(p, _mm256_set1_ps(s), acc[0]);
                }
            }
        }
    }

    /// The dot product from a row's accumulators.
    #[inline(always)]
    unsafe fn finish<const KIND: u8>(acc: &[__m256; 4], accm: __m256) -> f32 {
        let r = hsum(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ));
        match KIND {
            Q4_0 => r - 8.0 * hsum(accm),
            Q4_1 => r + hsum(accm),
            _ => r,
        }
    }

    /// One weight row dotted with one activation row.
    #[inline(always)]
    unsafe fn dot<const KIND: u8, const VNNI: bool>(row: *const u8, nb: usize, np: usize, x: X) -> f32 {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut accm = _mm256_setzero_ps();
        let mut b = 0;
        while b < nb {
            step::<KIND, VNNI>(row, b, nb, np, x, &mut acc, &mut accm);
            b += 8;
        }
        finish::<KIND>(&acc, accm)
    }

    /// Two weight rows dotted with one activation row, interleaved: the activation's loads
    /// and scales serve both, and the two rows' independent chains fill each other's
    /// latencies. Each row's arithmetic is [`dot`]'s, bit for bit.
    #[inline(always)]
    unsafe fn dot2<const KIND: u8, const VNNI: bool>(
        ra: *const u8,
        rb: *const u8,
        nb: usize,
        np: usize,
        x: X,
    ) -> (f32, f32) {
        let (mut acca, mut accb) = ([_mm256_setzero_ps(); 4], [_mm256_setzero_ps(); 4]);
        let (mut accma, mut accmb) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut b = 0;
        while b < nb {
            step::<KIND, VNNI>(ra, b, nb, np, x, &mut acca, &mut accma);
            step::<KIND, VNNI>(rb, b, nb, np, x, &mut accb, &mut accmb);
            b += 8;
        }
        (finish::<KIND>(&acca, accma), finish::<KIND>(&accb, accmb))
    }

    #[inline(always)]
    unsafe fn rows_of<const KIND: u8, const VNNI: bool>(data: &[u8], stride: usize, x: &Activations, out: &mut [f32]) {
        let cols = x.nb * 32;
        let t = x.t.max(1);
        let rows = out.len() / t;
        let xi = |i: usize| -> X {
            (
                x.qs.as_ptr().add(i * cols),
                x.paired.as_ptr().add(i * cols),
                x.d.as_ptr().add(i * x.np),
                x.s.as_ptr().add(i * x.np),
            )
        };
        // Ask for the lines AHEAD bytes past rows r..r+n's while they compute (within this
        // slice): one thread's demand loads alone leave memory idle between rows.
        let prefetch = |r: usize, n: usize| {
            let end = ((r + n) * stride + AHEAD).min(rows * stride);
            let mut off = (r * stride + AHEAD).min(end) & !63;
            while off < end {
                _mm_prefetch::<_MM_HINT_T0>(data.as_ptr().add(off) as *const i8);
                off += 64;
            }
        };
        let mut r = 0;
        // 4-bit rows in pairs, then an odd last one alone: +9-13 % from cache on SmolLM2's
        // shapes (`OAE_BENCH_IN_CACHE=1 cargo bench --bench quant`). Q8_0 rows measured
        // slower in pairs (their eight scales go through memory, twice as many at once).
        while KIND != Q8_0 && r + 1 < rows {
            prefetch(r, 2);
            let (ra, rb) = (data.as_ptr().add(r * stride), data.as_ptr().add((r + 1) * stride));
            for i in 0..t {
                let (a, b) = dot2::<KIND, VNNI>(ra, rb, x.nb, x.np, xi(i));
                out[r * t + i] = a;
                out[(r + 1) * t + i] = b;
            }
            r += 2;
        }
        while r < rows {
            prefetch(r, 1);
            let row = data.as_ptr().add(r * stride);
            for i in 0..t {
                out[r * t + i] = dot::<KIND, VNNI>(row, x.nb, x.np, xi(i));
            }
            r += 1;
        }
    }

    super::entry_points!(rows_of, rows_avx2, rows_vnni);
}
