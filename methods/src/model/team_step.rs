//! The CPU's decode step for quantized weights on a pool of two or more threads, run as one
//! [`team`](super::team) instead of a fork and join per product.
//!
//! Per layer the members meet six times: after the Q/K/V product, after member 0 writes the
//! new key and the last member the new value into the cache, after the attention (split by
//! query heads), and after
//! each of the output, gate/up and down products (each split over the members by tiles of
//! eight rows, see [`Team::parts`]). Between meetings every member computes what the next
//! stage needs whole — the residual stream, the norms, RoPE, SwiGLU and the activations'
//! quantization — for itself, with the same code as [`cpu_step`](super::cpu_step), so the
//! logits are that path's bit for bit (tested) and no member waits on another's serial work.
//!
//! Taken where the [`cpu_step`](super::cpu_step) path applies, the pool has at least two
//! threads and every matrix is in an own quantized format (`weights = "as-file"` of a Q4_0 /
//! Q4_1 / Q8_0 file, or `"q8_0"`); otherwise that path runs. `OAE_CPU_TEAM=0` turns it off
//! (A/B measurements). Measured on SmolLM2-135M Q4_1, 2 threads, in-process A/B runs (the
//! steps alternate between the two paths and each path's steps are timed, so this VM's drift
//! in bandwidth cancels): the fork-and-join path's steps took 4–14 % longer (median of six
//! runs of 30 × 64 tokens: 10 %).

use std::sync::OnceLock;

use candle_core::{Device, Tensor};

use super::cpu_step::{Held, add, applies, rms_norm, rope, values, with_row};
use super::decoder::{Decoder, Ffn, Head, KvCache};
use super::kv_cache::write_position;
use super::quant::QMatrix;
use super::team::{self, Board, Team};
use super::weight::{Table, Weight};
use crate::error::{Error, Result};

/// Whether the team step is on (`OAE_CPU_TEAM=0` turns it off).
fn enabled() -> bool {
    static SEEN: OnceLock<bool> = OnceLock::new();
    super::fused::enabled("OAE_CPU_TEAM", &SEEN)
}

/// The fewest tiles a member takes from a stage's shared tail (128 rows: about 45 KiB of
/// Q4_1 weights at SmolLM2's width, 2–3 µs of reading). Each part taken costs a round trip
/// of the counter's cache line and restarts the member's stream of weights: on SmolLM2 Q4_1,
/// 2 threads, in-process A/B runs (alternate steps timed, so this VM's drift cancels), a
/// tenth of each product shared out this way in parts of what is left per member, at least 16
/// tiles, gave 2–4 % shorter steps than a quarter in parts of half that, at least 4 tiles, and
/// than a product split in fixed halves.
const MIN_UNITS: usize = 16;

/// The matrix of a weight in an own quantized format.
fn own(w: &Weight) -> Option<&QMatrix> {
    match w {
        Weight::Quant(q) if q.is_own() => Some(q),
        _ => None,
    }
}

/// One layer's matrices and Q/K/V bias.
struct LayerParts<'a> {
    qkv: &'a QMatrix,
    bias: Option<Vec<f32>>,
    wo: &'a QMatrix,
    gu: &'a QMatrix,
    down: &'a QMatrix,
}

/// The first `depth` layers' parts and the head's matrix, where all are in own formats.
fn parts(d: &Decoder, depth: usize) -> Result<Option<(Vec<LayerParts<'_>>, &QMatrix)>> {
    let head = match &d.head {
        Head::Tied => match &d.embed {
            Table::Quant(q) if q.is_own() => q.as_ref(),
            _ => return Ok(None),
        },
        Head::Matrix(w) => match own(w) {
            Some(q) => q,
            None => return Ok(None),
        },
    };
    let mut layers = Vec::with_capacity(depth);
    for l in d.layers.iter().take(depth) {
        let Ffn::Dense(mlp) = &l.ffn else { return Ok(None) };
        let (gu, down) = mlp.weights();
        let (Some(qkv), Some(wo), Some(gu), Some(down)) = (own(&l.qkv), own(&l.wo), own(gu), own(down)) else {
            return Ok(None);
        };
        layers.push(LayerParts {
            qkv,
            bias: l.qkv_bias.as_ref().map(values).transpose()?,
            wo,
            gu,
            down,
        });
    }
    Ok(Some((layers, head)))
}

/// `x · Wᵀ` into `out` by the team (stage `stage`'s counter), then a meeting.
fn product(team: &Team, stage: usize, w: &QMatrix, x: &[f32], out: &Board) -> Result<()> {
    let xa = w
        .quantize_input(x)
        .ok_or_else(|| Error::Model("the team step needs own quantized formats".into()))?;
    for units in team.parts(stage, w.units(), MIN_UNITS) {
        let rows = w.unit_row(units.start)..w.unit_row(units.end);
        // SAFETY: the members' parts are disjoint, and the board is read only after the
        // meeting below.
        w.units_into(&xa, units, unsafe { out.part(rows) });
    }
    team.sync()
}

/// The team's [`Step`](super::fused::Step).
pub(super) fn decode_step(
    d: &Decoder,
    token: u32,
    pos: usize,
    cache: &mut KvCache,
    depth: usize,
) -> Result<Option<Tensor>> {
    if !enabled() || rayon::current_num_threads() < 2 || pos >= d.config().max_seq || !applies(d, depth) {
        return Ok(None);
    }
    let Some((layers, head)) = parts(d, depth)? else {
        return Ok(None);
    };
    let cfg = *d.config();
    let (h, kvh, hd, f) = (cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.ffn);
    let eps = cfg.rms_eps as f32;
    // The op-by-op path's scale (1/√hd in f64, then f32), so the scores are its bits.
    let scale = (1.0 / (hd as f64).sqrt()) as f32;
    let kv_dtype = d.kv_dtype();
    let cpu = Device::Cpu;
    let cos = with_row(&d.cos, pos, hd / 2, <[f32]>::to_vec)?;
    let sin = with_row(&d.sin, pos, hd / 2, <[f32]>::to_vec)?;
    let x0 = values(&d.embed.lookup(&[token], &cpu)?)?;
    // The norms' weights, read in place: each layer's two, then the final one.
    let held = (d.layers.iter().take(depth))
        .flat_map(|l| [&l.attn_norm, &l.ffn_norm])
        .chain([&d.norm])
        .map(Held::of)
        .collect::<Result<Vec<_>>>()?;
    let norms: Vec<&[f32]> = held.iter().map(Held::values).collect();

    let (mut qkv_buf, mut y_buf) = (vec![0f32; (h + 2 * kvh) * hd], vec![0f32; h * hd]);
    let (mut o_buf, mut gu_buf, mut down_buf) = (vec![0f32; cfg.hidden], vec![0f32; 2 * f], vec![0f32; cfg.hidden]);
    let mut logits = vec![0f32; head.rows()];
    let (qkv_b, y_b, o_b) = (Board::new(&mut qkv_buf), Board::new(&mut y_buf), Board::new(&mut o_buf));
    let (gu_b, down_b, logits_b) = (
        Board::new(&mut gu_buf),
        Board::new(&mut down_buf),
        Board::new(&mut logits),
    );
    // Every layer's buffers made ready for one more position (grown, made this cache's own).
    let len = cache.len();
    let bufs = (0..depth)
        .map(|li| cache.reserve(li, 1, (kvh, hd), kv_dtype, &cpu))
        .collect::<Result<Vec<_>>>()?;

    let ran = team::run(4 * depth + 1, |team| {
        let mut x = x0.clone();
        let mut act = vec![0f32; f];
        for (li, l) in layers.iter().enumerate() {
            product(team, 4 * li, l.qkv, &rms_norm(&x, norms[2 * li], eps), &qkv_b)?;
            // SAFETY: read after the product's meeting; written next in the next layer,
            // several meetings on.
            let mut qkv = unsafe { qkv_b.all() }.to_vec();
            if let Some(b) = &l.bias {
                add(&mut qkv, b);
            }
            let (q, rest) = qkv.split_at_mut(h * hd);
            let (k, v) = rest.split_at_mut(kvh * hd);
            rope(q, hd, &cos, &sin);
            // The new key and value into the cache's buffers (reserved above), the key by
            // member 0 and the value by the last member.
            if team.index() == 0 {
                rope(k, hd, &cos, &sin);
                write_position(&bufs[li].0, len, k)?;
            }
            if team.index() + 1 == team.size() {
                write_position(&bufs[li].1, len, v)?;
            }
            team.sync()?;
            let (kc, vc) = (bufs[li].0.narrow(1, 0, len + 1)?, bufs[li].1.narrow(1, 0, len + 1)?);
            let heads = team.share(h);
            // SAFETY: each member writes its own heads; read after the meeting below.
            let out = unsafe { y_b.part(heads.start * hd..heads.end * hd) };
            super::attention::decode_heads(q, &kc, &vc, scale, heads, out)?;
            team.sync()?;

            // SAFETY: read after the attention's meeting; written next in the next layer.
            product(team, 4 * li + 1, l.wo, unsafe { y_b.all() }, &o_b)?;
            // SAFETY: read after the product's meeting; written next in the next layer.
            add(&mut x, unsafe { o_b.all() });
            product(team, 4 * li + 2, l.gu, &rms_norm(&x, norms[2 * li + 1], eps), &gu_b)?;
            // SAFETY: as above.
            super::swiglu::swiglu_rows(unsafe { gu_b.all() }, f, &mut act);
            product(team, 4 * li + 3, l.down, &act, &down_b)?;
            // SAFETY: as above.
            add(&mut x, unsafe { down_b.all() });
        }
        product(team, 4 * depth, head, &rms_norm(&x, norms[2 * depth], eps), &logits_b)
    });
    match ran {
        None => Ok(None),
        Some(Err(e)) => Err(e),
        Some(Ok(())) => Ok(Some(Tensor::from_vec(logits, (1, head.rows()), &cpu)?)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use candle_core::quantized::GgmlDType;
    use candle_core::{DType, Device, Tensor};

    use super::decode_step;
    use crate::error::{Error, Result};
    use crate::model::decoder::Decoder;
    use crate::model::fused::with_path;
    use crate::model::quant::QMatrix;
    use crate::model::weight::Weight;
    use crate::model::{KvCache, Logits, ModelSpec, SyntheticSpec, WeightFormat, last_row};

    /// A weight requantized to Q4_1.
    fn q4_1(w: &Weight) -> Result<Weight> {
        let t = w.to_dense(&Device::Cpu)?.t()?.contiguous()?;
        let (rows, cols) = t.dims2()?;
        let q = QMatrix::quantize(GgmlDType::Q4_1, rows, cols, &t.flatten_all()?.to_vec1()?).map_err(Error::Model)?;
        Ok(Weight::Quant(Arc::new(q)))
    }

    /// The model's logits for `toks` after `prompt`, one token at a time, with `step` taking
    /// each token; at token 40 a snapshot of the cache is kept across a step (which must
    /// leave it as it was) and the cache then rolled back to it.
    fn decode(d: &Decoder, step: &dyn Fn(u32, &mut KvCache) -> Tensor) -> Vec<Vec<f32>> {
        let prompt: Vec<u32> = (0..12u32).map(|i| (i * 37 + 5) % 500).collect();
        let toks: Vec<u32> = (0..70u32).map(|i| (i * 101 + 7) % 500).collect();
        let mut cache = KvCache::new(d.config().layers);
        d.forward(&prompt, &mut cache, Logits::Last).unwrap();
        let mut out = Vec::new();
        for (i, &t) in toks.iter().enumerate() {
            if i == 40 {
                let snap = cache.clone();
                let keys = |c: &KvCache| {
                    let (k, _) = c.view(0).unwrap().unwrap();
                    k.to_dtype(DType::F32).unwrap().to_vec3::<f32>().unwrap()
                };
                let before = keys(&snap);
                out.push(last_row(&step(3, &mut cache)).unwrap());
                let after = keys(&snap);
                assert_eq!(before, after, "a snapshot keeps its keys");
                cache = snap;
            }
            out.push(last_row(&step(t, &mut cache)).unwrap());
        }
        out
    }

    /// On pools of two and three threads the team's steps give the op-by-op path's logits
    /// bit for bit, with Q8_0 and Q4_1 weights (tiles and left-over rows), the cache in f16
    /// and in f32, across the cache's growth and past a snapshot; a one-thread pool and
    /// dense weights take the other paths.
    #[test]
    fn team_steps_equal_the_op_by_op_path() {
        let spec = SyntheticSpec {
            hidden: 192,
            heads: 6,
            kv_heads: 2,
            ffn: 416,
            vocab: 515,
            max_seq: 256,
            weights: WeightFormat::Q8_0,
            ..SyntheticSpec::default()
        };
        let q8 = ModelSpec::Synthetic(spec.clone()).load(&Device::Cpu).unwrap().decoder;
        let q41 = q8.map_weights(q4_1, |t| Ok(t.clone()), q8.embed.clone()).unwrap();
        // Heads of 24 values: 1/√24 in f32 differs in its last bit from the f64 value rounded
        // to f32, which the op-by-op path uses.
        let odd = ModelSpec::Synthetic(SyntheticSpec {
            hidden: 96,
            heads: 4,
            ffn: 224,
            ..spec
        })
        .load(&Device::Cpu)
        .unwrap()
        .decoder;
        for (name, model) in [("q8_0", &q8), ("q4_1", &q41), ("q8_0, heads of 24", &odd)] {
            for kv in [DType::F16, DType::F32] {
                let d = model.to_dtype(DType::F32).unwrap().with_kv_dtype(kv).unwrap();
                let layers = d.config().layers;
                let (want, _) = with_path(false, || decode(&d, &|t, c| d.forward(&[t], c, Logits::Last).unwrap()));
                for threads in [2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let team_step = |t: u32, c: &mut KvCache| {
                        // Another test's team may hold the process's one: wait for it.
                        for _ in 0..1_000_000 {
                            let pos = c.len();
                            if let Some(l) = pool.install(|| decode_step(&d, t, pos, c, layers)).unwrap() {
                                c.len += 1;
                                return l;
                            }
                            std::thread::yield_now();
                        }
                        panic!("no team formed");
                    };
                    let got = decode(&d, &team_step);
                    let first = want.iter().zip(&got).enumerate().find_map(|(i, (w, g))| {
                        let j = w.iter().zip(g).position(|(a, b)| a.to_bits() != b.to_bits())?;
                        Some((i, j, w[j], g[j]))
                    });
                    assert_eq!(
                        first, None,
                        "{name}, cache {kv:?}, {threads} threads: (token, logit, want, got)"
                    );
                    assert_eq!(want.len(), got.len());
                }
                let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
                let mut c = KvCache::new(layers);
                assert!(one.install(|| decode_step(&d, 1, 0, &mut c, layers)).unwrap().is_none());
            }
        }
        let dense = q8.convert_weights(WeightFormat::F32).unwrap();
        let mut c = KvCache::new(dense.config().layers);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        assert!(pool.install(|| decode_step(&dense, 1, 0, &mut c, 4)).unwrap().is_none());
    }
}
