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
    /// The same quants with each pair of blocks (2j, 2j + 1) reordered as the 4-bit kernels
    /// unpack two blocks' nibbles: both blocks' values 0..16, then both blocks' 16..32 (an
    /// odd last block stays as it is).
    pub paired: Vec<i8>,
    /// Scales, `t × np` (padding 0).
    pub d: Vec<f32>,
    /// Scaled sums, `t × np` (padding 0).
    pub s: Vec<f32>,
}

impl Activations {
    /// Quantizes `x` (`t` rows of `cols` values; `cols` a multiple of 32).
    pub fn quantize(x: &[f32], t: usize, cols: usize) -> Activations {
        let nb = cols / 32;
        let np = super::pad8(nb);
        let mut a = Activations {
            t,
            nb,
            np,
            qs: vec![0; t * cols],
            paired: vec![0; t * cols],
            d: vec![0.0; t * np],
            s: vec![0.0; t * np],
        };
        for (i, row) in x.chunks_exact(cols).enumerate() {
            for (b, block) in row.chunks_exact(32).enumerate() {
                let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
                let qs = &mut a.qs[i * cols + b * 32..i * cols + (b + 1) * 32];
                let mut sum = 0i32;
                for (q, v) in qs.iter_mut().zip(block) {
                    // Round half away from zero (as roundf) without a libm call.
                    let y = v * inv;
                    *q = (y + 0.5f32.copysign(y)) as i8;
                    sum += *q as i32;
                }
                a.d[i * np + b] = d;
                a.s[i * np + b] = d * sum as f32;
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
