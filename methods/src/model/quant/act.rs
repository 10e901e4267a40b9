//! Activation rows quantized to 8 bits per block of 32 values, the form the integer dot
//! products take: per block a scale `d = max|x| / 127`, the rounded quotients, and
//! `s = d · Σq` (what a weight block's minimum multiplies).

/// `t` activation rows of `cols` values, quantized.
pub struct Activations {
    /// Rows.
    pub t: usize,
    /// Blocks per row.
    pub nb: usize,
    /// Blocks per row, padded to a multiple of 8 (the scale arrays' stride).
    pub np: usize,
    /// Quants, `t × cols`.
    pub qs: Vec<i8>,
    /// The same quants with each pair of blocks (2j, 2j + 1) reordered as the row layout's
    /// 4-bit kernels unpack two blocks' nibbles: both blocks' values 0..16, then both blocks'
    /// 16..32 (an odd last block stays as it is). Empty unless asked for (tiles do not use
    /// it).
    pub paired: Vec<i8>,
    /// Scales, `t × np` (padding 0).
    pub d: Vec<f32>,
    /// Scaled sums, `t × np` (padding 0).
    pub s: Vec<f32>,
}

/// One row's blocks: quants, scales, scaled sums.
fn quantize_row(row: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    for (b, block) in row.chunks_exact(32).enumerate() {
        // |x|'s largest in eight lanes (max is exact in any order).
        let mut lanes = [0f32; 8];
        for c in block.chunks_exact(8) {
            for (m, v) in lanes.iter_mut().zip(c) {
                *m = m.max(v.abs());
            }
        }
        let amax = lanes.iter().fold(0f32, |m, &v| m.max(v));
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        let q = &mut qs[b * 32..(b + 1) * 32];
        for (q, v) in q.iter_mut().zip(block) {
            // Round half away from zero (as roundf) without a libm call.
            let y = v * inv;
            *q = (y + 0.5f32.copysign(y)) as i8;
        }
        let sum: i32 = q.iter().map(|&v| v as i32).sum();
        d[b] = amax / 127.0;
        s[b] = d[b] * sum as f32;
    }
}

/// [`quantize_row`] with AVX2: the same values (every step is exact or elementwise, NaN to
/// 0 as Rust's saturating cast), a block in four registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_op_in_unsafe_fn)]
unsafe fn quantize_row_avx2(row: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    use std::arch::x86_64::*;
    let sign = _mm256_set1_ps(-0.0);
    let half = _mm256_set1_ps(0.5);
    for (b, block) in row.chunks_exact(32).enumerate() {
        let p = block.as_ptr();
        let v = [0, 1, 2, 3].map(|k| _mm256_loadu_ps(p.add(8 * k)));
        // max with the running value second: a NaN lane keeps it (as f32::max ignores NaN).
        let mut m = _mm256_setzero_ps();
        for x in v {
            m = _mm256_max_ps(_mm256_andnot_ps(sign, x), m);
        }
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps(m2, m2, 1)));
        let inv = _mm256_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
        let ints = v.map(|x| {
            let y = _mm256_mul_ps(x, inv);
            // y + copysign(0.5, y), truncated; NaN lanes to 0. |y| ≤ 127 (|x| ≤ amax), so
            // the packs below never saturate.
            let r = _mm256_add_ps(y, _mm256_or_ps(half, _mm256_and_ps(sign, y)));
            _mm256_cvttps_epi32(_mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r)))
        });
        let t = _mm256_add_epi32(_mm256_add_epi32(ints[0], ints[1]), _mm256_add_epi32(ints[2], ints[3]));
        let t4 = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
        let t2 = _mm_add_epi32(t4, _mm_unpackhi_epi64(t4, t4));
        let sum = _mm_cvtsi128_si32(_mm_add_epi32(t2, _mm_shuffle_epi32(t2, 1)));
        // Packed per 128-bit lane: dwords [q0..4, q8..12, q16..20, q24..28 | q4..8, …]; put
        // back in order.
        let p8 = _mm256_packs_epi16(
            _mm256_packs_epi32(ints[0], ints[1]),
            _mm256_packs_epi32(ints[2], ints[3]),
        );
        let q = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(qs.as_mut_ptr().add(32 * b) as *mut __m256i, q);
        d[b] = amax / 127.0;
        s[b] = d[b] * sum as f32;
    }
}

/// [`quantize_row`] with the widest registers the CPU has.
fn quantize_row_best(row: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::isa() != super::Isa::Generic {
        // SAFETY: the quantized kernels' instruction sets all include AVX2.
        return unsafe { quantize_row_avx2(row, qs, d, s) };
    }
    quantize_row(row, qs, d, s)
}

impl Activations {
    /// Quantizes `x` (`t` rows of `cols` values; `cols` a multiple of 32), with the
    /// pair-ordered copy where `paired`.
    pub fn quantize(x: &[f32], t: usize, cols: usize, paired: bool) -> Activations {
        let nb = cols / 32;
        let np = super::pad8(nb);
        let mut a = Activations {
            t,
            nb,
            np,
            qs: vec![0; t * cols],
            paired: if paired { vec![0; t * cols] } else { Vec::new() },
            d: vec![0.0; t * np],
            s: vec![0.0; t * np],
        };
        for (i, row) in x.chunks_exact(cols).enumerate() {
            quantize_row_best(
                row,
                &mut a.qs[i * cols..(i + 1) * cols],
                &mut a.d[i * np..i * np + nb],
                &mut a.s[i * np..i * np + nb],
            );
            if !paired {
                continue;
            }
            let (qs, paired) = (&a.qs[i * cols..(i + 1) * cols], &mut a.paired[i * cols..(i + 1) * cols]);
            for j in 0..nb / 2 {
                let (src, dst) = (&qs[64 * j..64 * (j + 1)], &mut paired[64 * j..64 * (j + 1)]);
                dst[..16].copy_from_slice(&src[..16]);
                dst[16..32].copy_from_slice(&src[32..48]);
                dst[32..48].copy_from_slice(&src[16..32]);
                dst[48..].copy_from_slice(&src[48..]);
            }
            if nb % 2 == 1 {
                paired[32 * (nb - 1)..].copy_from_slice(&qs[32 * (nb - 1)..]);
            }
        }
        a
    }

    /// Row `i`: its quants, scales and scaled sums.
    pub fn row(&self, i: usize) -> (&[i8], &[f32], &[f32]) {
        let cols = self.nb * 32;
        (
            &self.qs[i * cols..(i + 1) * cols],
            &self.d[i * self.np..(i + 1) * self.np],
            &self.s[i * self.np..(i + 1) * self.np],
        )
    }
}

#[cfg(test)]
mod tests {
    /// The AVX2 quantizer gives exactly the portable one's quants, scales and sums, with
    /// zeros, ties, NaN and infinities among the values.
    #[test]
    fn avx2_quantizer_equals_the_portable_one() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::arch::is_x86_feature_detected!("avx2") {
                eprintln!("skipped: no AVX2 on this CPU");
                return;
            }
            let mut rng = oae_core::rng::seeded(21, &["act-test"]);
            let mut x: Vec<f32> = (0..32 * 40)
                .map(|_| 3.0 * oae_core::rng::standard_normal(&mut rng) as f32)
                .collect();
            x[32..64].fill(0.0);
            // Ties: amax 127 makes y = x exactly.
            for (k, v) in x[64..96].iter_mut().enumerate() {
                *v = k as f32 - 16.5;
            }
            x[95] = 127.0;
            x[100] = f32::NAN;
            x[140] = f32::INFINITY;
            x[170] = f32::NEG_INFINITY;
            x[200] = -0.0;
            let (mut qa, mut qb) = (vec![0i8; x.len()], vec![0i8; x.len()]);
            let (mut da, mut db) = (vec![0f32; 40], vec![0f32; 40]);
            let (mut sa, mut sb) = (vec![0f32; 40], vec![0f32; 40]);
            super::quantize_row(&x, &mut qa, &mut da, &mut sa);
            // SAFETY: the CPU has AVX2 (checked).
            unsafe { super::quantize_row_avx2(&x, &mut qb, &mut db, &mut sb) };
            assert_eq!(qa, qb);
            assert_eq!(
                da.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                db.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            assert_eq!(
                sa.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                sb.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        eprintln!("skipped: the AVX2 quantizer exists on x86-64 only");
    }
}
