//! Formats kept exactly as the GGUF file holds them, computed with candle's block types: its
//! `vec_dot` against activations quantized to the format's partner (Q8_K, Q8_0, Q8_1),
//! threaded here over weight rows. That is every k-quant and Q5_x — candle's portable k-quant
//! loops are written so the compiler vectorizes them for the build's baseline (and it has NEON
//! versions on aarch64): measured at 15-19 GB/s on one thread for Q4_K, Q5_K and Q6_K
//! (`--bench quant`), as fast as AVX-512 VNNI kernels written for them here were — and, on a
//! CPU without AVX2, Q4_0 / Q4_1 / Q8_0 too, whose own kernels need it.

use candle_core::quantized::GgmlDType;
use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0, GgmlType,
};
use rayon::prelude::*;

/// `bytes` as a slice of blocks.
fn blocks<T: GgmlType>(bytes: &[u8]) -> &[T] {
    let size = std::mem::size_of::<T>();
    assert!(bytes.len().is_multiple_of(size), "a row is whole blocks");
    assert!(
        (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()),
        "block rows are aligned (8-byte buffer, even strides)"
    );
    // SAFETY: size and alignment checked; the block types are plain `repr(C)` data of
    // integers and f16, valid for any bit pattern.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / size) }
}

fn dequantize_as<T: GgmlType>(row: &[u8], out: &mut [f32]) {
    T::to_float(blocks::<T>(row), out)
}

/// Evaluates `$e` with `$T` the candle block type of GGUF type `$t`.
macro_rules! with_block {
    ($t:expr, $T:ident => $e:expr) => {
        with_block!(@arms $t, $T, $e, [
            Q4_0 BlockQ4_0, Q4_1 BlockQ4_1, Q8_0 BlockQ8_0, Q5_0 BlockQ5_0, Q5_1 BlockQ5_1,
            Q2K BlockQ2K, Q3K BlockQ3K, Q4K BlockQ4K, Q5K BlockQ5K, Q6K BlockQ6K
        ])
    };
    (@arms $t:expr, $T:ident, $e:expr, [$($v:ident $b:ident),*]) => {
        match $t {
            $(GgmlDType::$v => {
                type $T = $b;
                $e
            })*
            _ => unreachable!("QType::of_gguf admits only block formats"),
        }
    };
}

/// One stored row as F32 values.
pub fn dequantize(t: GgmlDType, row: &[u8], out: &mut [f32]) {
    with_block!(t, T => dequantize_as::<T>(row, out))
}

fn quantize_as<T: GgmlType>(values: &[f32]) -> Vec<u8> {
    let mut blocks = vec![T::zeros(); values.len() / T::BLCK_SIZE];
    T::from_float(values, &mut blocks);
    let n = blocks.len() * std::mem::size_of::<T>();
    // SAFETY: plain repr(C) blocks of integers and f16 viewed as their bytes.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), n) }.to_vec()
}

/// `values` (whole blocks) quantized to `t` with candle's quantizers, as GGUF bytes.
pub fn quantize(t: GgmlDType, values: &[f32]) -> Vec<u8> {
    with_block!(t, T => quantize_as::<T>(values))
}

/// `out[r·t + i]` = stored row `r` · activation row `i`, rows in chunks of `chunk` over the
/// thread pool.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    ty: GgmlDType,
    data: &[u8],
    stride: usize,
    rows: usize,
    x: &[f32],
    t: usize,
    cols: usize,
    chunk: usize,
    out: &mut [f32],
) {
    with_block!(ty, T => matmul_as::<T>(data, stride, rows, x, t, cols, chunk, out))
}

#[allow(clippy::too_many_arguments)]
fn matmul_as<T: GgmlType>(
    data: &[u8],
    stride: usize,
    rows: usize,
    x: &[f32],
    t: usize,
    cols: usize,
    chunk: usize,
    out: &mut [f32],
) {
    let nbx = cols / T::VecDotType::BLCK_SIZE;
    let mut xq = vec![T::VecDotType::zeros(); t * nbx];
    for (row, q) in x.chunks_exact(cols).zip(xq.chunks_exact_mut(nbx.max(1))) {
        T::VecDotType::from_float(row, q);
    }
    debug_assert_eq!(out.len(), rows * t);
    out.par_chunks_mut(chunk * t).enumerate().for_each(|(c, o)| {
        for (k, ov) in o.chunks_exact_mut(t).enumerate() {
            let r = c * chunk + k;
            let w = blocks::<T>(&data[r * stride..(r + 1) * stride]);
            for (i, v) in ov.iter_mut().enumerate() {
                *v = T::vec_dot(cols, w, &xq[i * nbx..(i + 1) * nbx]);
            }
        }
    });
}
