use candle_core::quantized::GgmlDType;

use super::kernels::{Isa, rows_with};
use super::*;

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = oae_core::rng::seeded(seed, &["quant-test"]);
    (0..n)
        .map(|_| oae_core::rng::standard_normal(&mut rng) as f32)
        .collect()
}

fn build(t: GgmlDType, rows: usize, cols: usize, seed: u64) -> (QMatrix, Vec<f32>) {
    let v = random(rows * cols, seed);
    let bytes = super::foreign::quantize(t, &v);
    // candle's own dequantization of the same bytes, row by row.
    let mut deq = vec![0f32; v.len()];
    let row_bytes = bytes.len() / rows;
    for (r, out) in deq.chunks_exact_mut(cols).enumerate() {
        super::foreign::dequantize(t, &bytes[r * row_bytes..(r + 1) * row_bytes], out);
    }
    (QMatrix::from_gguf(t, rows, cols, &bytes).unwrap(), deq)
}

/// Checks `y` against the dequantized weights times the unquantized activations: each value
/// within 1 % of Σ|w·x| (8-bit activations round to ±0.4 % of a block's largest value).
fn check(y: &[f32], w: &[f32], x: &[f32], t: usize, rows: usize, cols: usize, what: &str) {
    assert_eq!(y.len(), t * rows, "{what}");
    for i in 0..t {
        for r in 0..rows {
            let (mut exact, mut mag) = (0f64, 0f64);
            for j in 0..cols {
                let p = w[r * cols + j] as f64 * x[i * cols + j] as f64;
                exact += p;
                mag += p.abs();
            }
            let got = y[i * rows + r] as f64;
            assert!(
                (got - exact).abs() <= 0.01 * mag + 1e-4,
                "{what}: row {r} of activation {i}: {got} vs {exact} (Σ|w·x| {mag})"
            );
        }
    }
}

/// Every own format, at sizes that are not multiples of eight blocks or of the thread
/// count, one and several activation rows, one and three threads, matches the F32 product of
/// the same dequantized weights; and its dequantization equals candle's.
#[test]
fn own_formats_match_the_f32_product_at_odd_sizes() {
    for ty in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
        for (rows, cols) in [(1, 32), (7, 96), (65, 608), (300, 1056)] {
            let (m, w) = build(ty, rows, cols, 1);
            assert_eq!(m.dequantize(), w, "{ty:?} {rows}x{cols} dequantization");
            for t in [1, 3] {
                let x = random(t * cols, 2);
                for threads in [1, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let y = pool.install(|| m.matmul(&x, t));
                    check(
                        &y,
                        &w,
                        &x,
                        t,
                        rows,
                        cols,
                        &format!("{ty:?} {rows}x{cols} t={t} threads={threads}"),
                    );
                }
            }
        }
    }
}

/// Every instruction set this CPU has gives the same products (up to float summation order)
/// as the portable loop.
#[test]
fn instruction_sets_agree() {
    let isas: Vec<Isa> = [Isa::Avx2, Isa::Vnni].into_iter().filter(|i| i.available()).collect();
    if isas.is_empty() {
        eprintln!("skipped: this CPU has no AVX2 (only the portable kernels run here)");
        return;
    }
    for ty in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
        let (rows, cols, t) = (13, 800, 2);
        let bytes = super::foreign::quantize(ty, &random(rows * cols, 3));
        let own = match ty {
            GgmlDType::Q4_0 => QType::Q4_0,
            GgmlDType::Q4_1 => QType::Q4_1,
            _ => QType::Q8_0,
        };
        // The own layout whatever OAE_QUANT_ISA says (the portable loop reads it too).
        let m = QMatrix::from_gguf_as(own, ty, rows, cols, &bytes).unwrap().untiled();
        assert_eq!(m.segments.len(), 1);
        let x = random(t * cols, 4);
        let a = Activations::quantize(&x, t, cols, true);
        let s = &m.segments[0];
        let mut want = vec![0f32; rows * t];
        rows_with(Isa::Generic, s.qtype, s.data.as_slice(), s.stride, &a, &mut want);
        for &isa in &isas {
            let mut got = vec![0f32; rows * t];
            rows_with(isa, s.qtype, s.data.as_slice(), s.stride, &a, &mut got);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                    "{ty:?} {}: {g} vs {w}",
                    isa.name()
                );
            }
        }
    }
}

/// Tiles hold the same rows as the row layout (dequantized equal), and their products agree
/// with the row layout's portable loop for every instruction set this CPU has; a row's value
/// is bit-for-bit the same whatever the number of activation rows or threads computing it
/// (prefill and decode, speculative verification and greedy decode depend on that).
#[test]
fn tiles_match_rows_and_are_batch_and_thread_invariant() {
    if !super::tiles_wanted() || super::isa() == Isa::Generic {
        eprintln!("skipped: no tiles here (OAE_QUANT_TILES=0 or a CPU without AVX2)");
        return;
    }
    let isas: Vec<Isa> = [Isa::Generic, Isa::Avx2, Isa::Vnni]
        .into_iter()
        .filter(|i| i.available())
        .collect();
    for ty in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
        // Two whole tiles and five rows past them; 25 blocks (not a multiple of eight).
        let (rows, cols, t) = (21, 800, 3);
        let (m, w) = build(ty, rows, cols, 11);
        assert!(m.has_tiles(), "{ty:?}");
        let rows_layout = m.untiled();
        assert!(!rows_layout.has_tiles());
        assert_eq!(m.dequantize(), w, "{ty:?} tiles dequantize as the file");
        assert_eq!(rows_layout.dequantize(), w, "{ty:?} rows dequantize as the file");
        assert!(m.bytes() <= rows_layout.bytes(), "{ty:?}: tiles no larger than rows");
        let x = random(t * cols, 12);
        let want = rows_layout.matmul_isa(Isa::Generic, &x, t);
        check(&want, &w, &x, t, rows, cols, &format!("{ty:?} rows"));
        for &isa in &isas {
            let got = m.matmul_isa(isa, &x, t);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                    "{ty:?} tiles {}: {g} vs {w}",
                    isa.name()
                );
            }
            // Each activation row alone gives bit-for-bit its row of the batch.
            for i in 0..t {
                let one = m.matmul_isa(isa, &x[i * cols..(i + 1) * cols], 1);
                assert_eq!(one, got[i * rows..(i + 1) * rows], "{ty:?} {} row {i}", isa.name());
            }
            let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
            assert_eq!(
                pool.install(|| m.matmul_isa(isa, &x, t)),
                got,
                "{ty:?} {} threads",
                isa.name()
            );
        }
    }
}

/// The k-quants computed with candle's block kernels match the F32 product too.
#[test]
fn k_quants_match_the_f32_product() {
    for ty in [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K] {
        let (rows, cols) = (9, 512);
        let (m, w) = build(ty, rows, cols, 5);
        assert_eq!(m.dequantize(), w);
        let x = random(2 * cols, 6);
        check(&m.matmul(&x, 2), &w, &x, 2, rows, cols, &format!("{ty:?}"));
        // 8-bit rows of 256 values are not whole superblocks for a 96-column matrix.
        assert!(
            QMatrix::from_gguf(ty, 1, 96, &[0; 10])
                .unwrap_err()
                .contains("not whole")
        );
    }
}

/// Stacking matrices of different formats and reordering rows keep every row's values;
/// quantizing to Q8_0 stays within half a step of each value (and the f16 scale's rounding).
#[test]
fn concat_gather_and_q8_quantization() {
    let (a, wa) = build(GgmlDType::Q4_1, 5, 64, 7);
    let (b, wb) = build(GgmlDType::Q8_0, 3, 64, 8);
    let c = QMatrix::concat(&[&a, &b, &a]).unwrap();
    assert_eq!(c.rows(), 13);
    assert_eq!(c.segments.len(), 3);
    let mut want = wa.clone();
    want.extend(&wb);
    want.extend(&wa);
    assert_eq!(c.dequantize(), want);
    let x = random(64, 9);
    check(&c.matmul(&x, 1), &want, &x, 1, 13, 64, "mixed segments");
    let g = c.gather_rows(&[12, 0, 6]).unwrap();
    let d = g.dequantize();
    assert_eq!(&d[..64], &want[12 * 64..13 * 64]);
    assert_eq!(&d[64..128], &want[..64]);
    assert_eq!(&d[128..], &want[6 * 64..7 * 64]);
    assert!(c.gather_rows(&[13]).is_err());
    assert!(QMatrix::concat(&[&a, &build(GgmlDType::Q8_0, 1, 96, 1).0]).is_err());

    // Tiled matrices stack and gather the same way (rows cut across tiles).
    let (a, wa) = build(GgmlDType::Q4_1, 13, 64, 13);
    let (b, wb) = build(GgmlDType::Q8_0, 9, 64, 14);
    let c = QMatrix::concat(&[&a, &b, &a]).unwrap();
    assert_eq!(c.rows(), 35);
    let mut want = wa.clone();
    want.extend(&wb);
    want.extend(&wa);
    assert_eq!(c.dequantize(), want);
    assert_eq!(c.untiled().dequantize(), want);
    check(&c.matmul(&x, 1), &want, &x, 1, 35, 64, "tiled segments");
    let g = c.gather_rows(&[34, 3, 15, 9, 0, 1, 2, 4, 5]).unwrap();
    let d = g.dequantize();
    for (i, r) in [34, 3, 15, 9, 0, 1, 2, 4, 5].into_iter().enumerate() {
        assert_eq!(
            &d[i * 64..(i + 1) * 64],
            &want[r * 64..(r + 1) * 64],
            "gathered row {i}"
        );
    }

    let v = random(4 * 96, 10);
    let q = QMatrix::quantize_q8_0(4, 96, &v).unwrap();
    assert_eq!(q.bytes_by_type().keys().copied().collect::<Vec<_>>(), ["q8_0"]);
    for (blk, (got, want)) in q.dequantize().chunks(32).zip(v.chunks(32)).enumerate() {
        let amax = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        for (g, w) in got.iter().zip(want) {
            // Half a step, plus up to 127 steps of the scale's f16 rounding (2^-11 relative).
            assert!(
                (g - w).abs() <= amax / 127.0 * (0.5 + 127.0 / 2048.0) + 1e-6,
                "block {blk}: {g} vs {w}"
            );
        }
    }
    assert!(QMatrix::quantize_q8_0(1, 33, &[0.0; 33]).unwrap_err().contains("whole"));
    assert!(
        QMatrix::quantize_q8_0(1, 32, &[f32::NAN; 32])
            .unwrap_err()
            .contains("not finite")
    );
}

/// A one-row product split into units (any ranges, in any order) gives what the whole
/// product gives, bit for bit: over tiles and left-over rows, mixed formats, and the row
/// layout; matrices with a foreign segment take no quantized input.
#[test]
fn units_give_the_whole_products_values() {
    let (a, _) = build(GgmlDType::Q4_1, 83, 96, 3);
    let (b, _) = build(GgmlDType::Q8_0, 21, 96, 4);
    let (c, _) = build(GgmlDType::Q4_0, 16, 96, 5);
    let mixed = QMatrix::concat(&[&a, &b, &c]).unwrap();
    let x = random(96, 6);
    for m in [mixed.clone(), mixed.untiled(), a.clone()] {
        let want = m.matmul(&x, 1);
        let xa = m.quantize_input(&x).expect("own formats");
        let n = m.units();
        assert_eq!(m.unit_row(0), 0);
        assert_eq!(m.unit_row(n), m.rows());
        for step in [1, 2, 3, 5, n] {
            let mut got = vec![f32::NAN; m.rows()];
            // Ranges of `step` units, the last ones first.
            let starts: Vec<usize> = (0..n).step_by(step).collect();
            for &u in starts.iter().rev() {
                let units = u..(u + step).min(n);
                let rows = m.unit_row(units.start)..m.unit_row(units.end);
                m.units_into(&xa, units, &mut got[rows]);
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{m:?}, {step} units at a time");
        }
    }
    assert!(mixed.has_tiles() && mixed.units() < mixed.rows());
    let (k, _) = build(GgmlDType::Q4K, 8, 256, 7);
    assert!(!k.is_own() && k.quantize_input(&random(256, 8)).is_none());
}
