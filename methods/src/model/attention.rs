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
//! **Overhead model:** per new row and query head, 2 · (start + i + 1) · head_dim
//! multiply-adds; rows × heads are split over the thread pool when there is enough work.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

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

/// A (heads, rows, hd) tensor whose rows are contiguous within each head — a KV cache
/// buffer viewed up to its length is one, without a copy: its values from the first and the
/// distance between heads.
fn headwise<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<(&'a [f32], usize)> {
    let (h, n, hd) = l.shape().dims3()?;
    let st = l.stride();
    if (hd > 1 && st[2] != 1) || (n > 1 && st[1] != hd) {
        candle_core::bail!("oae-attention: {what}'s rows are not contiguous (strides {st:?})");
    }
    let head = if h > 1 { st[0] } else { n * hd };
    let start = l.start_offset();
    let end = start + h.saturating_sub(1) * head + n * hd;
    Ok((&s.as_slice::<f32>()?[start..end], head))
}

/// Σ a·b in a fixed order (eight lanes, then the lanes summed). Plain multiply and add:
/// `mul_add` without the FMA target feature is a libm call per element.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let split = a.len() - a.len() % 8;
    for (x, y) in a[..split].chunks_exact(8).zip(b[..split].chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f32 = a[split..].iter().zip(&b[split..]).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
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
        let ((k, kstride), (v, vstride)) = (headwise(ks, kl, "k")?, headwise(vs, vl, "v")?);
        let (start, groups) = (total - t, h / kvh);
        let row = |idx: usize, out: &mut [f32]| {
            let (i, head) = (idx / h, idx % h);
            let kv = head / groups;
            let qr = &q[(head * t + i) * hd..(head * t + i + 1) * hd];
            let n = start + i + 1;
            let keys = &k[kv * kstride..kv * kstride + n * hd];
            let values = &v[kv * vstride..kv * vstride + n * hd];
            let mut scores: Vec<f32> = keys.chunks_exact(hd).map(|kr| dot(qr, kr) * self.scale).collect();
            let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            let mut sum = 0f32;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            out.fill(0.0);
            for (w, vr) in scores.iter().zip(values.chunks_exact(hd)) {
                let w = w / sum;
                for (o, x) in out.iter_mut().zip(vr) {
                    *o += w * x;
                }
            }
        };
        let mut y = vec![0f32; t * h * hd];
        // Work ≈ rows × heads × context × hd; below ~1M multiply-adds threads cost more.
        if t * h * total * hd < (1 << 20) {
            y.chunks_exact_mut(hd).enumerate().for_each(|(idx, out)| row(idx, out));
        } else {
            y.par_chunks_exact_mut(hd)
                .enumerate()
                .for_each(|(idx, out)| row(idx, out));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device, IndexOp};

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
        for (t, total) in [(1, 9), (5, 12), (64, 200)] {
            let (h, kvh, hd) = (6, 2, 16);
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

    #[test]
    fn mismatched_shapes_are_refused() {
        let q = random((4, 2, 8), 1);
        let k = random((3, 5, 8), 2);
        assert!(attend(&q, &k, &k, 1.0).is_err());
        let k = random((2, 1, 8), 2);
        assert!(attend(&q, &k, &k, 1.0).is_err(), "fewer keys than new rows");
    }
}
