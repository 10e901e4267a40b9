//! SwiGLU's elementwise step: from the gate and up projections side by side (t, 2·f),
//! silu(gate) · up (t, f). On F32 CPU tensors one op (one pass, the vectorizable SiLU of
//! [`fastmath`](super::fastmath)) instead of two views, a SiLU, a product and their
//! allocations; elsewhere candle's ops.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use super::fastmath::silu;

struct SwiGlu;

/// Each row of `gu` (f gate values, then f up values) into a row of `out` (f values).
#[inline(always)]
fn rows(gu: &[f32], f: usize, out: &mut [f32]) {
    for (r, o) in gu.chunks_exact(2 * f).zip(out.chunks_exact_mut(f)) {
        let (g, u) = r.split_at(f);
        for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
            *o = silu(g) * u;
        }
    }
}

/// [`rows`] compiled for AVX2 (the same operations, wider registers).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_avx2(gu: &[f32], f: usize, out: &mut [f32]) {
    rows(gu, f, out)
}

/// Rows of `gu` (f gate values, then f up values) into rows of `out` (f values), with AVX2
/// where the CPU has it.
pub(super) fn swiglu_rows(gu: &[f32], f: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::fastmath::has_avx2() {
        // SAFETY: the CPU has AVX2 (checked).
        unsafe { rows_avx2(gu, f, out) };
        return;
    }
    rows(gu, f, out);
}

impl CustomOp1 for SwiGlu {
    fn name(&self) -> &'static str {
        "oae-swiglu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("oae-swiglu needs a contiguous input");
        };
        let (t, two_f) = l.shape().dims2()?;
        if two_f % 2 != 0 {
            candle_core::bail!("oae-swiglu: {two_f} columns are not gate and up side by side");
        }
        let f = two_f / 2;
        let mut out = vec![0f32; t * f];
        swiglu_rows(&s.as_slice::<f32>()?[a..b], f, &mut out);
        Ok((CpuStorage::F32(out), Shape::from((t, f))))
    }
}

/// silu(gate) · up for `gu` = (t, 2·f) holding gate then up.
pub fn swiglu(gu: &Tensor, f: usize) -> candle_core::Result<Tensor> {
    if gu.device().is_cpu() && gu.dtype() == DType::F32 && gu.dim(1)? == 2 * f {
        return gu.contiguous()?.apply_op1_no_bwd(&SwiGlu);
    }
    gu.narrow(1, 0, f)?.silu()? * gu.narrow(1, f, f)?
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    /// The op equals candle's SiLU times up within SiLU's rounding, on rows of odd width.
    #[test]
    fn matches_candle_silu_times_up() {
        let mut rng = oae_core::rng::seeded(3, &["swiglu-test"]);
        let (t, f) = (3, 37);
        let v: Vec<f32> = (0..t * 2 * f)
            .map(|_| 4.0 * oae_core::rng::standard_normal(&mut rng) as f32)
            .collect();
        let gu = Tensor::from_vec(v, (t, 2 * f), &Device::Cpu).unwrap();
        let got = super::swiglu(&gu, f).unwrap().to_vec2::<f32>().unwrap();
        let want = (gu.narrow(1, 0, f).unwrap().silu().unwrap() * gu.narrow(1, f, f).unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{g} vs {w}");
        }
        assert!(
            super::swiglu(&gu.narrow(1, 0, 5).unwrap(), 2).is_ok(),
            "a view is made contiguous"
        );
    }
}
