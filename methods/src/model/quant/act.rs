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

/// One row's blocks: quants, scales, scaled sums. Every step is exact or elementwise, so the
/// result does not depend on the registers it was computed with.
#[inline(always)]
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

/// [`quantize_row`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_row_avx2(row: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    quantize_row(row, qs, d, s)
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
