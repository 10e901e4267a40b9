//! Weight matrices kept in their GGUF quantization, and the products that read them.
//!
//! A [`QMatrix`] is an (out, in) matrix stored row by row in blocks of 32 (Q4_0, Q4_1,
//! Q8_0, in this module's own row layout) or in GGUF's superblocks (the k-quants and Q5_x,
//! as the file holds them). `x · Wᵀ` quantizes each activation row to 8 bits per 32-value
//! block (as llama.cpp does) and takes integer dot products against the weight blocks, so a
//! decoded token streams the file's bytes instead of four bytes per weight.
//!
//! Row layout of the own formats, chosen so that a group of eight blocks' scales converts
//! with one instruction: the rows' quants (`nb` blocks of 16 or 32 bytes), then the `nb`
//! scales as f16 padded to a multiple of 8, then (Q4_1) the `nb` minimums likewise — the
//! same bytes as the file plus at most 28 bytes of padding per row. Where the CPU runs the
//! own kernels, every whole eight rows are then interleaved into a tile ([`tiles`]), the
//! layout the products read fastest; rows past the last whole tile stay in the row layout.
//!
//! **Overhead model:** one pass over the quantized bytes per product, whatever the number of
//! activation rows (each weight row is dotted with every activation row while it is in
//! cache); activation quantization is O(rows × in), negligible next to the weights.

mod act;
mod foreign;
mod kernels;
mod tiles;

use std::borrow::Cow;
use std::collections::BTreeMap;

use candle_core::quantized::GgmlDType;
use rayon::prelude::*;

pub use act::Activations;
pub use kernels::{Isa, isa};

/// A block format this module computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QType {
    /// 32 values: f16 scale, 4-bit quants offset by 8.
    Q4_0,
    /// 32 values: f16 scale and minimum, 4-bit quants.
    Q4_1,
    /// 32 values: f16 scale, 8-bit quants.
    Q8_0,
    /// A format kept as the file holds it and computed with candle's block kernels (the
    /// k-quants, Q5_0, Q5_1).
    Foreign(GgmlDType),
}

impl QType {
    /// The format of a GGUF tensor type, `None` for float types (kept as dense tensors) and
    /// for types with no kernel. Q4_0, Q4_1 and Q8_0 take the own layout and kernels where
    /// the CPU has AVX2, and stay as in the file for candle's kernels elsewhere.
    pub fn of_gguf(t: GgmlDType) -> Option<QType> {
        use GgmlDType as G;
        let own = kernels::isa() != Isa::Generic;
        match t {
            G::Q4_0 if own => Some(QType::Q4_0),
            G::Q4_1 if own => Some(QType::Q4_1),
            G::Q8_0 if own => Some(QType::Q8_0),
            G::Q4_0 | G::Q4_1 | G::Q8_0 => Some(QType::Foreign(t)),
            G::Q5_0 | G::Q5_1 | G::Q2K | G::Q3K | G::Q4K | G::Q5K | G::Q6K => Some(QType::Foreign(t)),
            G::F32 | G::F16 | G::BF16 | G::Q8_1 | G::Q8K => None,
        }
    }

    /// Lower-case name as llama.cpp writes it (`q4_1`, `q6_k`).
    pub fn name(self) -> &'static str {
        use GgmlDType as G;
        match self {
            QType::Q4_0 => "q4_0",
            QType::Q4_1 => "q4_1",
            QType::Q8_0 | QType::Foreign(G::Q8_0) => "q8_0",
            QType::Foreign(G::Q4_0) => "q4_0",
            QType::Foreign(G::Q4_1) => "q4_1",
            QType::Foreign(G::Q5_0) => "q5_0",
            QType::Foreign(G::Q5_1) => "q5_1",
            QType::Foreign(G::Q2K) => "q2_k",
            QType::Foreign(G::Q3K) => "q3_k",
            QType::Foreign(G::Q4K) => "q4_k",
            QType::Foreign(G::Q5K) => "q5_k",
            QType::Foreign(G::Q6K) => "q6_k",
            QType::Foreign(_) => "other",
        }
    }

    /// Values per block.
    pub fn block(self) -> usize {
        match self {
            QType::Q4_0 | QType::Q4_1 | QType::Q8_0 => 32,
            QType::Foreign(t) => t.block_size(),
        }
    }

    /// The GGUF type.
    pub fn gguf(self) -> GgmlDType {
        match self {
            QType::Q4_0 => GgmlDType::Q4_0,
            QType::Q4_1 => GgmlDType::Q4_1,
            QType::Q8_0 => GgmlDType::Q8_0,
            QType::Foreign(t) => t,
        }
    }

    /// Bytes of quants per block in the own layouts.
    fn quant_bytes(self) -> usize {
        match self {
            QType::Q8_0 => 32,
            _ => 16,
        }
    }

    /// Bytes of one stored row of `cols` values.
    fn row_bytes(self, cols: usize) -> usize {
        let nb = cols / self.block();
        match self {
            QType::Q4_0 | QType::Q8_0 => nb * self.quant_bytes() + 2 * pad8(nb),
            QType::Q4_1 => nb * 16 + 4 * pad8(nb),
            QType::Foreign(t) => nb * t.type_size(),
        }
    }
}

/// `n` rounded up to a multiple of 8.
fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Bytes with 8-byte alignment (the block structs read in place need 2).
#[derive(Clone, Default)]
struct Bytes {
    words: Vec<u64>,
    len: usize,
}

impl Bytes {
    fn zeroed(len: usize) -> Bytes {
        Bytes {
            words: vec![0; len.div_ceil(8)],
            len,
        }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: the words hold at least `len` initialised bytes; u8 has no alignment.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and the borrow is unique.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

/// Whether the own formats' whole eight rows are stored as tiles: yes, unless
/// `OAE_QUANT_TILES=0` keeps the row layout (for A/B measurements).
fn tiles_wanted() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| super::switch::on("OAE_QUANT_TILES"))
}

/// Rows of one block format.
#[derive(Clone)]
struct Segment {
    qtype: QType,
    rows: usize,
    /// Bytes per row, or per tile of eight rows where `tiled`.
    stride: usize,
    tiled: bool,
    data: Bytes,
}

impl Segment {
    /// Row `r` in the row layout (the own formats' or the file's).
    fn row(&self, r: usize) -> Cow<'_, [u8]> {
        if !self.tiled {
            return Cow::Borrowed(&self.data.as_slice()[r * self.stride..(r + 1) * self.stride]);
        }
        let nb = self.stride / tiles::block_bytes(self.qtype);
        let mut out = vec![0u8; self.qtype.row_bytes(nb * 32)];
        let k = r / tiles::ROWS;
        tiles::unpack(
            self.qtype,
            nb,
            &self.data.as_slice()[k * self.stride..(k + 1) * self.stride],
            r % tiles::ROWS,
            &mut out,
        );
        Cow::Owned(out)
    }

    /// Units of a one-row product: a tile (eight rows) or a row.
    fn units(&self) -> usize {
        if self.tiled { self.rows / tiles::ROWS } else { self.rows }
    }

    /// An own-format segment's rows from unit `u` on, as many as `out` holds for `xa`'s
    /// activation rows, times `xa` (each weight row's values contiguous in `out`).
    fn own_rows(&self, isa: Isa, xa: &Activations, u: usize, out: &mut [f32]) {
        let data = &self.data.as_slice()[u * self.stride..];
        if self.tiled {
            tiles::rows_with(isa, self.qtype, data, self.stride, xa, out)
        } else {
            kernels::rows_with(isa, self.qtype, data, self.stride, xa, out)
        }
    }

    /// Rows in the row layout.
    fn of_rows(qtype: QType, cols: usize, data: Bytes) -> Segment {
        let stride = qtype.row_bytes(cols);
        Segment {
            qtype,
            rows: data.len / stride,
            stride,
            tiled: false,
            data,
        }
    }

    /// This row-layout segment with its whole eight rows in tiles where the kernels read
    /// tiles (an own format, not `OAE_QUANT_TILES=0`), the rest kept as rows.
    fn tiled(self, cols: usize) -> Vec<Segment> {
        let n = self.rows / tiles::ROWS;
        if self.tiled || matches!(self.qtype, QType::Foreign(_)) || n == 0 || !tiles_wanted() {
            return vec![self];
        }
        let nb = cols / 32;
        let size = nb * tiles::block_bytes(self.qtype);
        let mut data = Bytes::zeroed(n * size);
        for (k, tile) in data.as_mut_slice().chunks_exact_mut(size).enumerate() {
            let src = self.data.as_slice();
            tiles::pack(
                self.qtype,
                nb,
                |r| &src[(8 * k + r) * self.stride..(8 * k + r + 1) * self.stride],
                tile,
            );
        }
        let mut out = vec![Segment {
            qtype: self.qtype,
            rows: n * tiles::ROWS,
            stride: size,
            tiled: true,
            data,
        }];
        let rest = self.rows - n * tiles::ROWS;
        if rest > 0 {
            let mut data = Bytes::zeroed(rest * self.stride);
            data.as_mut_slice()
                .copy_from_slice(&self.data.as_slice()[n * tiles::ROWS * self.stride..]);
            out.push(Segment {
                rows: rest,
                data,
                ..self
            });
        }
        out
    }
}

/// An (out, in) matrix of quantized rows; consecutive row ranges may use different formats
/// (a fused Q/K/V of a file that quantized V more finely).
#[derive(Clone)]
pub struct QMatrix {
    cols: usize,
    segments: Vec<Segment>,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QMatrix({} x {}, {:?})",
            self.rows(),
            self.cols,
            self.bytes_by_type()
        )
    }
}

/// Why a matrix cannot be built.
pub type QResult<T> = std::result::Result<T, String>;

impl QMatrix {
    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        self.segments.iter().map(|s| s.rows).sum()
    }

    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Resident bytes.
    pub fn bytes(&self) -> usize {
        self.segments.iter().map(|s| s.data.len).sum()
    }

    /// Resident bytes per format name.
    pub fn bytes_by_type(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for s in &self.segments {
            *m.entry(s.qtype.name()).or_default() += s.data.len;
        }
        m
    }

    /// The matrix from a GGUF tensor's bytes (`rows` rows of `cols` values in `t`'s blocks).
    pub fn from_gguf(t: GgmlDType, rows: usize, cols: usize, raw: &[u8]) -> QResult<QMatrix> {
        let qtype = QType::of_gguf(t).ok_or_else(|| format!("{t:?} blocks have no quantized kernel"))?;
        Self::from_gguf_as(qtype, t, rows, cols, raw)
    }

    /// [`from_gguf`](Self::from_gguf) into a given format (`t`'s own layout or as in the file).
    fn from_gguf_as(qtype: QType, t: GgmlDType, rows: usize, cols: usize, raw: &[u8]) -> QResult<QMatrix> {
        let block = qtype.block();
        if cols == 0 || !cols.is_multiple_of(block) {
            return Err(format!("rows of {cols} values are not whole {t:?} blocks of {block}"));
        }
        let nb = cols / block;
        let file_row = nb * t.type_size();
        if raw.len() != rows * file_row {
            return Err(format!(
                "{} bytes for {rows} rows of {nb} {t:?} blocks ({} expected)",
                raw.len(),
                rows * file_row
            ));
        }
        let stride = qtype.row_bytes(cols);
        let mut data = Bytes::zeroed(rows * stride);
        let out = data.as_mut_slice();
        for r in 0..rows {
            let src = &raw[r * file_row..(r + 1) * file_row];
            let dst = &mut out[r * stride..(r + 1) * stride];
            match qtype {
                QType::Foreign(_) => dst.copy_from_slice(src),
                _ => repack_row(qtype, nb, src, dst),
            }
        }
        Ok(QMatrix {
            cols,
            segments: Segment::of_rows(qtype, cols, data).tiled(cols),
        })
    }

    /// `rows` × `cols` F32 values quantized to Q8_0 (scale = max |x| / 127 per block of 32,
    /// values rounded to nearest), as llama.cpp's `quantize` writes them.
    pub fn quantize_q8_0(rows: usize, cols: usize, values: &[f32]) -> QResult<QMatrix> {
        let m = Self::quantize_q8_0_own(rows, cols, values)?;
        if QType::of_gguf(GgmlDType::Q8_0) == Some(QType::Q8_0) {
            let segments = m.segments.into_iter().flat_map(|s| s.tiled(cols)).collect();
            return Ok(QMatrix { cols, segments });
        }
        // No own kernels here: the same blocks in the file's layout, for candle's.
        let nb = cols / 32;
        let mut raw = vec![0u8; rows * nb * 34];
        let s = &m.segments[0];
        for r in 0..rows {
            let row = s.row(r);
            let (quants, scales) = row.split_at(nb * 32);
            for b in 0..nb {
                let o = (r * nb + b) * 34;
                raw[o..o + 2].copy_from_slice(&scales[2 * b..2 * b + 2]);
                raw[o + 2..o + 34].copy_from_slice(&quants[32 * b..32 * (b + 1)]);
            }
        }
        QMatrix::from_gguf(GgmlDType::Q8_0, rows, cols, &raw)
    }

    fn quantize_q8_0_own(rows: usize, cols: usize, values: &[f32]) -> QResult<QMatrix> {
        if cols == 0 || !cols.is_multiple_of(32) {
            return Err(format!("rows of {cols} values are not whole Q8_0 blocks of 32"));
        }
        if values.len() != rows * cols {
            return Err(format!("{} values for a {rows} × {cols} matrix", values.len()));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "value {} (row {}, column {}) is not finite",
                values[i],
                i / cols,
                i % cols
            ));
        }
        let nb = cols / 32;
        let stride = QType::Q8_0.row_bytes(cols);
        let mut data = Bytes::zeroed(rows * stride);
        let out = data.as_mut_slice();
        for (r, row) in values.chunks_exact(cols).enumerate() {
            let dst = &mut out[r * stride..(r + 1) * stride];
            let (qs, ds) = dst.split_at_mut(nb * 32);
            for (b, block) in row.chunks_exact(32).enumerate() {
                let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = half::f16::from_f32(amax / 127.0);
                let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
                for (q, v) in qs[b * 32..(b + 1) * 32].iter_mut().zip(block) {
                    *q = (v * inv).round().clamp(-127.0, 127.0) as i8 as u8;
                }
                ds[2 * b..2 * b + 2].copy_from_slice(&d.to_bits().to_le_bytes());
            }
        }
        Ok(QMatrix {
            cols,
            segments: vec![Segment::of_rows(QType::Q8_0, cols, data)],
        })
    }

    /// The GGUF type of every row, when there is one.
    pub fn single_format(&self) -> Option<GgmlDType> {
        let t = self.segments.first()?.qtype;
        self.segments.iter().all(|s| s.qtype == t).then(|| t.gguf())
    }

    /// `rows` × `cols` F32 values quantized to GGUF type `t` (candle's quantizers, as
    /// llama.cpp's `quantize` without an importance matrix).
    pub fn quantize(t: GgmlDType, rows: usize, cols: usize, values: &[f32]) -> QResult<QMatrix> {
        let qtype = QType::of_gguf(t).ok_or_else(|| format!("{t:?} blocks have no quantized kernel"))?;
        if cols == 0 || !cols.is_multiple_of(qtype.block()) {
            return Err(format!(
                "rows of {cols} values are not whole {t:?} blocks of {}",
                qtype.block()
            ));
        }
        if values.len() != rows * cols {
            return Err(format!("{} values for a {rows} × {cols} matrix", values.len()));
        }
        Self::from_gguf(t, rows, cols, &foreign::quantize(t, values))
    }

    /// The rows of `parts` one after another (all with the same number of columns).
    pub fn concat(parts: &[&QMatrix]) -> QResult<QMatrix> {
        let cols = parts.first().map_or(0, |p| p.cols);
        if let Some(p) = parts.iter().find(|p| p.cols != cols) {
            return Err(format!("cannot stack rows of {} and {cols} values", p.cols));
        }
        let segments = row_runs(cols, parts.iter().flat_map(|p| &p.segments))
            .into_iter()
            .flat_map(|s| s.tiled(cols))
            .collect();
        Ok(QMatrix { cols, segments })
    }

    /// The same matrix with every row in the row layout, no tiles (for A/B measurements
    /// and tests of the tiles).
    pub fn untiled(&self) -> QMatrix {
        let segments = row_runs(self.cols, &self.segments);
        QMatrix {
            cols: self.cols,
            segments,
        }
    }

    /// Whether any rows are stored in tiles.
    pub fn has_tiles(&self) -> bool {
        self.segments.iter().any(|s| s.tiled)
    }

    /// The matrix with row `i` taken from row `order[i]`.
    pub fn gather_rows(&self, order: &[usize]) -> QResult<QMatrix> {
        let rows = self.rows();
        if let Some(&bad) = order.iter().find(|&&r| r >= rows) {
            return Err(format!("row {bad} of a {rows}-row matrix"));
        }
        let parts: Vec<QMatrix> = order
            .iter()
            .map(|&r| {
                let (s, local) = self.locate(r);
                let row = s.row(local);
                let mut data = Bytes::zeroed(row.len());
                data.as_mut_slice().copy_from_slice(&row);
                QMatrix {
                    cols: self.cols,
                    segments: vec![Segment::of_rows(s.qtype, self.cols, data)],
                }
            })
            .collect();
        QMatrix::concat(&parts.iter().collect::<Vec<_>>())
    }

    /// The segment holding row `r` and the row's index in it.
    fn locate(&self, mut r: usize) -> (&Segment, usize) {
        for s in &self.segments {
            if r < s.rows {
                return (s, r);
            }
            r -= s.rows;
        }
        panic!("row index past the matrix (checked by callers)")
    }

    /// Row `r` as F32 values into `out` (`cols` long).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (s, local) = self.locate(r);
        match s.qtype {
            QType::Foreign(t) => foreign::dequantize(t, &s.row(local), out),
            q => dequantize_own(q, self.cols / 32, &s.row(local), out),
        }
    }

    /// Every row as F32 values, row-major (rows × cols).
    pub fn dequantize(&self) -> Vec<f32> {
        self.dequantize_range(0, self.rows())
    }

    /// Rows `start..start + n` as F32 values, row-major, dequantized over the thread pool.
    pub fn dequantize_range(&self, start: usize, n: usize) -> Vec<f32> {
        let mut v = vec![0f32; n * self.cols];
        v.par_chunks_mut(self.cols)
            .enumerate()
            .for_each(|(r, out)| self.dequantize_row(start + r, out));
        v
    }

    /// `x · Wᵀ` for `x` of `t` rows of `cols` values (row-major): `t` rows of `rows()`
    /// values. Weight rows are split over the current thread pool's threads.
    pub fn matmul(&self, x: &[f32], t: usize) -> Vec<f32> {
        self.matmul_isa(kernels::isa(), x, t)
    }

    /// [`matmul`](Self::matmul) with the own formats' kernels for `isa` (which the caller has
    /// checked this CPU has; for A/B benchmarks).
    pub fn matmul_isa(&self, isa: Isa, x: &[f32], t: usize) -> Vec<f32> {
        assert_eq!(
            x.len(),
            t * self.cols,
            "activation rows must have the matrix's column count"
        );
        let rows = self.rows();
        // Transposed result: each weight row's `t` values are contiguous, so threads own
        // disjoint slices.
        let mut yt = vec![0f32; rows * t];
        let own = self
            .segments
            .iter()
            .any(|s| !matches!(s.qtype, QType::Foreign(_)))
            .then(|| {
                let paired = self
                    .segments
                    .iter()
                    .any(|s| !s.tiled && matches!(s.qtype, QType::Q4_0 | QType::Q4_1));
                Activations::quantize(x, t, self.cols, paired)
            });
        let threads = rayon::current_num_threads().max(1);
        let mut offset = 0;
        for s in &self.segments {
            let out = &mut yt[offset * t..(offset + s.rows) * t];
            offset += s.rows;
            match s.qtype {
                QType::Foreign(ty) => {
                    let chunk = s.rows.div_ceil(threads).max(1);
                    foreign::matmul(ty, s.data.as_slice(), s.stride, s.rows, x, t, self.cols, chunk, out)
                }
                _ => {
                    let xa = own.as_ref().expect("quantized above when a segment needs it");
                    // Whole units (tiles, or rows outside tiles) per thread.
                    let units = s.units().div_ceil(threads).max(1);
                    let rows = units * (s.rows / s.units().max(1)).max(1);
                    out.par_chunks_mut(rows * t)
                        .enumerate()
                        .for_each(|(c, out)| s.own_rows(isa, xa, c * units, out));
                }
            }
        }
        if t == 1 {
            return yt;
        }
        // Transposed back in blocks of 64 weight rows: each block of `yt` (64 × t values) is
        // read while it is in cache and `y`'s rows are written 64 values at a time. Writing
        // `y` column by column (one value per cache line) took a quarter of a 128-token
        // prefill on SmolLM2.
        let mut y = vec![0f32; rows * t];
        for r0 in (0..rows).step_by(64) {
            let r1 = (r0 + 64).min(rows);
            for (i, yr) in y.chunks_exact_mut(rows).enumerate() {
                for (r, v) in yr[r0..r1].iter_mut().enumerate() {
                    *v = yt[(r0 + r) * t + i];
                }
            }
        }
        y
    }
}

impl QMatrix {
    /// Whether every row is in an own format (none kept for candle's kernels).
    pub fn is_own(&self) -> bool {
        !self.segments.iter().any(|s| matches!(s.qtype, QType::Foreign(_)))
    }

    /// One activation row `x` quantized as [`units_into`](Self::units_into) reads it, or
    /// `None` where a segment is in a foreign format (those products take F32 values).
    pub fn quantize_input(&self, x: &[f32]) -> Option<Activations> {
        if !self.is_own() {
            return None;
        }
        let paired = self
            .segments
            .iter()
            .any(|s| !s.tiled && matches!(s.qtype, QType::Q4_0 | QType::Q4_1));
        Some(Activations::quantize(x, 1, self.cols, paired))
    }

    /// The units a one-row product splits into: each tile of eight rows, and each row kept
    /// in the row layout.
    pub fn units(&self) -> usize {
        self.segments.iter().map(Segment::units).sum()
    }

    /// The first row of unit `u` (`u` up to [`units`](Self::units), which gives `rows()`).
    pub fn unit_row(&self, mut u: usize) -> usize {
        let mut row = 0;
        for s in &self.segments {
            if u < s.units() {
                return row + u * s.rows / s.units();
            }
            u -= s.units();
            row += s.rows;
        }
        row
    }

    /// The rows of `units` of `x · Wᵀ` for the one row quantized in `xa`
    /// ([`quantize_input`](Self::quantize_input)), into `out` (a value per row): the values
    /// [`matmul`](Self::matmul) gives those rows, bit for bit.
    pub fn units_into(&self, xa: &Activations, units: std::ops::Range<usize>, out: &mut [f32]) {
        assert!(
            self.is_own(),
            "units_into takes own formats (quantize_input refuses others)"
        );
        assert_eq!(xa.t, 1, "one activation row");
        assert_eq!(xa.nb * 32, self.cols, "activations of the matrix's column count");
        assert_eq!(
            out.len(),
            self.unit_row(units.end) - self.unit_row(units.start),
            "a value per row of the units"
        );
        let isa = kernels::isa();
        let (mut base, mut out) = (0, out);
        for s in &self.segments {
            let n = s.units();
            // This segment's share of the units, counted from its first.
            let (a, b) = (
                units.start.max(base) - base,
                units.end.min(base + n).saturating_sub(base),
            );
            base += n;
            if a >= b {
                continue;
            }
            let (mine, rest) = std::mem::take(&mut out).split_at_mut((b - a) * (s.rows / n));
            out = rest;
            s.own_rows(isa, xa, a, mine);
        }
    }
}

/// `segments` (rows of `cols` values) in the row layout, consecutive ones of a format as one.
fn row_runs<'a>(cols: usize, segments: impl IntoIterator<Item = &'a Segment>) -> Vec<Segment> {
    let mut runs: Vec<(QType, Vec<u8>)> = Vec::new();
    for s in segments {
        if runs.last().is_none_or(|(q, _)| *q != s.qtype) {
            runs.push((s.qtype, Vec::new()));
        }
        let (_, bytes) = runs.last_mut().expect("pushed above");
        if s.tiled {
            for r in 0..s.rows {
                bytes.extend_from_slice(&s.row(r));
            }
        } else {
            bytes.extend_from_slice(s.data.as_slice());
        }
    }
    runs.into_iter()
        .map(|(q, bytes)| {
            let mut data = Bytes::zeroed(bytes.len());
            data.as_mut_slice().copy_from_slice(&bytes);
            Segment::of_rows(q, cols, data)
        })
        .collect()
}

/// A GGUF Q4_0 / Q4_1 / Q8_0 row (blocks of scale[, min], quants) into the own layout.
fn repack_row(q: QType, nb: usize, src: &[u8], dst: &mut [u8]) {
    let (qb, head) = match q {
        QType::Q4_1 => (16, 4),
        QType::Q4_0 => (16, 2),
        _ => (32, 2),
    };
    let (quants, scales) = dst.split_at_mut(nb * qb);
    let np = pad8(nb);
    for b in 0..nb {
        let blk = &src[b * (head + qb)..(b + 1) * (head + qb)];
        quants[b * qb..(b + 1) * qb].copy_from_slice(&blk[head..]);
        scales[2 * b..2 * b + 2].copy_from_slice(&blk[0..2]);
        if q == QType::Q4_1 {
            scales[2 * (np + b)..2 * (np + b) + 2].copy_from_slice(&blk[2..4]);
        }
    }
}

/// Reads the f16 at `i` of a little-endian f16 array.
fn f16_at(bytes: &[u8], i: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]])).to_f32()
}

/// An own-layout row as F32 values.
fn dequantize_own(q: QType, nb: usize, row: &[u8], out: &mut [f32]) {
    let qb = q.quant_bytes();
    let (quants, scales) = row.split_at(nb * qb);
    let np = pad8(nb);
    for b in 0..nb {
        let d = f16_at(scales, b);
        let o = &mut out[b * 32..(b + 1) * 32];
        let qs = &quants[b * qb..(b + 1) * qb];
        match q {
            QType::Q8_0 => {
                for (v, &x) in o.iter_mut().zip(qs) {
                    *v = d * (x as i8) as f32;
                }
            }
            QType::Q4_0 | QType::Q4_1 => {
                let (m, off) = if q == QType::Q4_1 {
                    (f16_at(scales, np + b), 0.0)
                } else {
                    (0.0, 8.0)
                };
                for (j, &x) in qs.iter().enumerate() {
                    o[j] = d * ((x & 15) as f32 - off) + m;
                    o[j + 16] = d * ((x >> 4) as f32 - off) + m;
                }
            }
            QType::Foreign(_) => unreachable!("foreign rows are dequantized by candle"),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod f16_tests {
    /// Every half-precision value reads back from its little-endian bytes as `half` converts
    /// it (NaNs stay NaN).
    #[test]
    fn f16_conversion_is_exact_for_every_value() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = super::f16_at(&h.to_le_bytes(), 0);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{h:#06x}: {got} vs {want}"
            );
        }
    }
}
