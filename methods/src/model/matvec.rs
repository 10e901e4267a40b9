//! Single-row matrix products for decode: `x (1, in) · W (in, out)`, and `x · Wᵀ` for the
//! tied head.
//!
//! Decoding one sequence multiplies one row by every weight matrix, so it is bound by how
//! fast the weights stream from memory. This op splits W's rows (contiguous in memory)
//! over the compute threads: each thread streams its own slab once, accumulating
//! `x[i] · W[i, :]` into a private partial sum, and the partials are added at the end. With
//! one thread it is a single sequential pass over W.
//! Used on CPU for single-row F32 products; every other shape and device goes through
//! candle's matmul.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

struct MatVec;

/// The vector's data, the matrix's data and the matrix's two dimensions.
type Operands<'a> = (&'a [f32], &'a [f32], (usize, usize));

/// The contiguous F32 data of both operands and the matrix's two dimensions.
fn operands<'a>(
    op: &str,
    s1: &'a CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
) -> candle_core::Result<Operands<'a>> {
    let (Some((x0, x1)), Some((w0, w1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
        candle_core::bail!("{op} needs contiguous operands");
    };
    Ok((
        &s1.as_slice::<f32>()?[x0..x1],
        &s2.as_slice::<f32>()?[w0..w1],
        l2.shape().dims2()?,
    ))
}

/// Whether this CPU has AVX2 and FMA (checked once).
#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
}

/// `y += Σ_i x[i] · w[i*out .. (i+1)*out]` over the rows given (the portable loop).
#[inline(always)]
fn accumulate_generic(y: &mut [f32], x: &[f32], w: &[f32], out: usize) {
    for (i, &xi) in x.iter().enumerate() {
        let row = &w[i * out..(i + 1) * out];
        for (acc, &wij) in y.iter_mut().zip(row) {
            *acc += xi * wij;
        }
    }
}

/// The same loop compiled for AVX2 + FMA (8 lanes, fused multiply-add).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn accumulate_avx2(y: &mut [f32], x: &[f32], w: &[f32], out: usize) {
    for (i, &xi) in x.iter().enumerate() {
        let row = &w[i * out..(i + 1) * out];
        for (acc, &wij) in y.iter_mut().zip(row) {
            *acc = xi.mul_add(wij, *acc);
        }
    }
}

/// `y += Σ_i x[i] · W[i, :]`, with the widest vector unit this CPU has.
fn accumulate(y: &mut [f32], x: &[f32], w: &[f32], out: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { accumulate_avx2(y, x, w, out) };
        return;
    }
    accumulate_generic(y, x, w, out);
}

impl CustomOp2 for MatVec {
    fn name(&self) -> &'static str {
        "oae-matvec"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w, (inp, out)) = operands(self.name(), s1, l1, s2, l2)?;
        if x.len() != inp {
            candle_core::bail!("oae-matvec: x has {} values, W has {inp} rows", x.len());
        }
        let threads = rayon::current_num_threads().min(inp / 64).max(1);
        let mut y = vec![0f32; out];
        if threads == 1 {
            accumulate(&mut y, x, w, out);
        } else {
            let rows = inp.div_ceil(threads);
            let partials: Vec<Vec<f32>> = (0..threads)
                .into_par_iter()
                .map(|t| {
                    let (a, b) = (t * rows, ((t + 1) * rows).min(inp));
                    let mut p = vec![0f32; out];
                    accumulate(&mut p, &x[a..b], &w[a * out..b * out], out);
                    p
                })
                .collect();
            for p in partials {
                for (acc, v) in y.iter_mut().zip(p) {
                    *acc += v;
                }
            }
        }
        Ok((CpuStorage::F32(y), Shape::from((1, out))))
    }
}

/// `y[j] = W[j, :] · x` for the rows given (W stored (out, in)): eight partial sums.
#[inline(always)]
fn dots_generic(y: &mut [f32], x: &[f32], w: &[f32]) {
    let inp = x.len();
    for (j, v) in y.iter_mut().enumerate() {
        let row = &w[j * inp..(j + 1) * inp];
        let mut acc = [0f32; 8];
        let split = inp - inp % 8;
        for (r, xv) in row[..split].chunks_exact(8).zip(x[..split].chunks_exact(8)) {
            for k in 0..8 {
                acc[k] = r[k].mul_add(xv[k], acc[k]);
            }
        }
        let tail: f32 = row[split..].iter().zip(&x[split..]).map(|(a, b)| a * b).sum();
        *v = acc.iter().sum::<f32>() + tail;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dots_avx2(y: &mut [f32], x: &[f32], w: &[f32]) {
    dots_generic(y, x, w)
}

fn dots(y: &mut [f32], x: &[f32], w: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { dots_avx2(y, x, w) };
        return;
    }
    dots_generic(y, x, w);
}

/// `x (1, in) · Wᵀ` for W stored (out, in) — the tied output head, whose matrix is the
/// embedding table: one dot product per output row, row slabs split over the threads.
struct MatVecT;

impl CustomOp2 for MatVecT {
    fn name(&self) -> &'static str {
        "oae-matvec-t"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w, (out, inp)) = operands(self.name(), s1, l1, s2, l2)?;
        if x.len() != inp {
            candle_core::bail!("oae-matvec-t: x has {} values, W has {inp} columns", x.len());
        }
        let mut y = vec![0f32; out];
        let threads = rayon::current_num_threads().min(out / 64).max(1);
        if threads == 1 {
            dots(&mut y, x, w);
        } else {
            let rows = out.div_ceil(threads);
            y.par_chunks_mut(rows)
                .enumerate()
                .for_each(|(t, chunk)| dots(chunk, x, &w[t * rows * inp..(t * rows + chunk.len()) * inp]));
        }
        Ok((CpuStorage::F32(y), Shape::from((1, out))))
    }
}

fn fast_path(x: &Tensor, w: &Tensor) -> candle_core::Result<bool> {
    Ok(enabled()
        && x.dims().len() == 2
        && x.dim(0)? == 1
        && x.device().is_cpu()
        && x.dtype() == candle_core::DType::F32
        && w.dtype() == candle_core::DType::F32
        && w.is_contiguous())
}

/// `x · wᵀ` for `w` stored (out, in); single-row CPU inputs take the threaded path.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    if fast_path(x, w)? {
        x.contiguous()?.apply_op2_no_bwd(w, &MatVecT)
    } else {
        x.matmul(&w.t()?)
    }
}

/// Whether the fast path is on (`OAE_MATVEC=0` turns it off, for A/B measurements).
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| super::switch::on("OAE_MATVEC"))
}

/// `x · w` for a single-row F32 `x` on the CPU with contiguous `w`; candle's matmul otherwise.
pub fn matmul(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    if fast_path(x, w)? {
        x.contiguous()?.apply_op2_no_bwd(w, &MatVec)
    } else {
        x.matmul(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn random(rows: usize, cols: usize, seed: u64) -> Tensor {
        let mut rng = oae_core::rng::seeded(seed, &["matvec-test"]);
        let v: Vec<f32> = (0..rows * cols)
            .map(|_| oae_core::rng::standard_normal(&mut rng) as f32)
            .collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let (a, b): (Vec<f32>, Vec<f32>) = (
            a.flatten_all().unwrap().to_vec1().unwrap(),
            b.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert_eq!(a.len(), b.len());
        a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
    }

    /// Both kernels equal candle's matmul, on one thread and split over several, for sizes
    /// that are not multiples of the vector width or of the thread count.
    #[test]
    fn kernels_equal_candle_matmul() {
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                for (inp, out) in [(7, 5), (576, 1536), (257, 1001)] {
                    let x = random(1, inp, 1);
                    let w = random(inp, out, 2);
                    let d = max_diff(&matmul(&x, &w).unwrap(), &x.matmul(&w).unwrap());
                    assert!(d < 1e-3, "matvec {inp}x{out} on {threads} threads: {d}");
                    let wt = random(out, inp, 3);
                    let d = max_diff(&matmul_t(&x, &wt).unwrap(), &x.matmul(&wt.t().unwrap()).unwrap());
                    assert!(d < 1e-3, "matvec-t {out}x{inp} on {threads} threads: {d}");
                }
                // More than one row goes to candle's matmul unchanged.
                let x = random(3, 64, 4);
                let w = random(64, 32, 5);
                assert_eq!(max_diff(&matmul(&x, &w).unwrap(), &x.matmul(&w).unwrap()), 0.0);
            });
        }
    }
}
