//! The decoder's matrices, dense or quantized, and the choice between them.
//!
//! A [`Weight`] is a projection `x · W`: a candle tensor stored (in, out) in any dtype on any
//! device, or a [`QMatrix`] of quantized (out, in) rows on the CPU. A [`Table`] is the
//! embedding matrix, which is both gathered (token → row) and, when the head is tied,
//! multiplied (`x · Eᵀ`). [`WeightFormat`] is the model spec's `weights` key.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use serde::Deserialize;

use super::matvec;
use super::quant::QMatrix;
use crate::error::{Error, Result};

/// How a model's matrices are held (`weights` in the model spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum WeightFormat {
    /// As the file stores them: a GGUF file's quantized blocks stay quantized (on the CPU;
    /// a GPU gets them dequantized to f32); float tensors become f32.
    #[default]
    #[serde(rename = "as-file")]
    AsFile,
    /// Every matrix dequantized to f32.
    #[serde(rename = "f32")]
    F32,
    /// Every matrix (re)quantized to Q8_0 (CPU only).
    #[serde(rename = "q8_0")]
    Q8_0,
}

impl WeightFormat {
    /// The spec's spelling.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::AsFile => "as-file",
            WeightFormat::F32 => "f32",
            WeightFormat::Q8_0 => "q8_0",
        }
    }
}

/// A projection's weights.
#[derive(Clone)]
pub enum Weight {
    /// (in, out), any dtype, any device.
    Dense(Tensor),
    /// Quantized (out, in) rows; CPU, f32 activations.
    Quant(Arc<QMatrix>),
}

/// `x · Wᵀ` by a quantized matrix as a candle op on F32 CPU tensors.
struct QMatMul<'a>(&'a QMatrix);

impl CustomOp1 for QMatMul<'_> {
    fn name(&self) -> &'static str {
        "oae-qmatmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("oae-qmatmul needs a contiguous input");
        };
        let (t, inp) = l.shape().dims2()?;
        if inp != self.0.cols() {
            candle_core::bail!(
                "oae-qmatmul: input rows of {inp} values for a matrix of {} columns",
                self.0.cols()
            );
        }
        let x = &s.as_slice::<f32>()?[a..b];
        Ok((CpuStorage::F32(self.0.matmul(x, t)), Shape::from((t, self.0.rows()))))
    }
}

fn qmatmul(q: &QMatrix, x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return Err(Error::Model(format!(
            "quantized weights take f32 activations on the CPU (got {:?} on {:?})",
            x.dtype(),
            x.device()
        )));
    }
    Ok(x.contiguous()?.apply_op1_no_bwd(&QMatMul(q))?)
}

/// Dequantized (rows, cols) F32 values of `q` as a tensor.
fn dequantized(q: &QMatrix, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(q.dequantize(), (q.rows(), q.cols()), &Device::Cpu)?.to_device(device)?)
}

/// Bytes of a tensor.
fn tensor_bytes(t: &Tensor) -> usize {
    t.elem_count() * t.dtype().size_in_bytes()
}

/// Adds a tensor's bytes to a per-type tally.
pub(crate) fn tally_tensor(t: &Tensor, into: &mut BTreeMap<String, usize>) {
    *into.entry(format!("{:?}", t.dtype()).to_lowercase()).or_default() += tensor_bytes(t);
}

impl Weight {
    /// (in, out).
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Weight::Dense(t) => {
                let d = t.dims();
                (d[0], d[1])
            }
            Weight::Quant(q) => (q.cols(), q.rows()),
        }
    }

    /// `x · W` for `x` (tokens, in).
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Weight::Dense(w) => Ok(matvec::matmul(x, w)?),
            Weight::Quant(q) => qmatmul(q, x),
        }
    }

    /// Resident bytes.
    pub fn bytes(&self) -> usize {
        match self {
            Weight::Dense(t) => tensor_bytes(t),
            Weight::Quant(q) => q.bytes(),
        }
    }

    /// Adds its bytes to a per-type tally (`f32`, `q4_1`, …).
    pub fn tally(&self, into: &mut BTreeMap<String, usize>) {
        match self {
            Weight::Dense(t) => tally_tensor(t, into),
            Weight::Quant(q) => {
                for (k, v) in q.bytes_by_type() {
                    *into.entry(k.to_string()).or_default() += v;
                }
            }
        }
    }

    /// The matrix as a dense (in, out) tensor on `device` (F32 when it was quantized).
    pub fn to_dense(&self, device: &Device) -> Result<Tensor> {
        match self {
            Weight::Dense(t) => Ok(t.clone()),
            Weight::Quant(q) => Ok(dequantized(q, device)?.t()?.contiguous()?),
        }
    }

    /// Columns `start..start + len` of the dense (in, out) matrix.
    pub fn columns(&self, start: usize, len: usize) -> Result<Tensor> {
        let device = match self {
            Weight::Dense(t) => t.device().clone(),
            Weight::Quant(_) => Device::Cpu,
        };
        Ok(self.to_dense(&device)?.narrow(1, start, len)?.contiguous()?)
    }

    /// The outputs of `parts` side by side (one product instead of several): dense parts
    /// are concatenated, quantized parts stacked row-wise; a mix is made dense.
    pub fn concat_out(parts: &[&Weight]) -> Result<Weight> {
        let quant: Option<Vec<&QMatrix>> = parts
            .iter()
            .map(|w| match w {
                Weight::Quant(q) => Some(q.as_ref()),
                Weight::Dense(_) => None,
            })
            .collect();
        if let Some(qs) = quant {
            return Ok(Weight::Quant(Arc::new(QMatrix::concat(&qs).map_err(Error::Model)?)));
        }
        let device = parts
            .iter()
            .find_map(|w| match w {
                Weight::Dense(t) => Some(t.device().clone()),
                Weight::Quant(_) => None,
            })
            .unwrap_or(Device::Cpu);
        let dense = parts.iter().map(|w| w.to_dense(&device)).collect::<Result<Vec<_>>>()?;
        Ok(Weight::Dense(Tensor::cat(&dense, 1)?))
    }

    /// The same matrix in `dtype`: dense ones converted; quantized ones compute with f32
    /// activations, so any other dtype is refused.
    pub fn to_dtype(&self, dtype: DType) -> Result<Weight> {
        match self {
            Weight::Dense(t) => Ok(Weight::Dense(t.to_dtype(dtype)?)),
            Weight::Quant(_) if dtype == DType::F32 => Ok(self.clone()),
            Weight::Quant(_) => Err(Error::Model(format!(
                "dtype {dtype:?} with quantized weights: their kernels take f32 activations; set dtype = \"f32\", or weights = \"f32\" in the model spec to run every matrix as floats"
            ))),
        }
    }

    /// A copy with its own memory (clones share it).
    pub fn deep_copy(&self) -> Result<Weight> {
        Ok(match self {
            Weight::Dense(t) => Weight::Dense(t.copy()?),
            Weight::Quant(q) => Weight::Quant(Arc::new(q.as_ref().clone())),
        })
    }

    /// `dense` (in, out) held as this matrix is: quantized to its block format when it has a
    /// single one (an upcycled expert of a quantized model stays quantized like its base),
    /// else dense in its dtype.
    pub fn held_like(&self, dense: Tensor) -> Result<Weight> {
        match self {
            Weight::Quant(q) => match q.single_format() {
                Some(t) => {
                    let (inp, out) = (dense.dims()[0], dense.dims()[1]);
                    let rows = dense.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.t()?.contiguous()?;
                    let values = rows.flatten_all()?.to_vec1::<f32>()?;
                    Ok(Weight::Quant(Arc::new(
                        QMatrix::quantize(t, out, inp, &values).map_err(Error::Model)?,
                    )))
                }
                None => Ok(Weight::Dense(dense)),
            },
            Weight::Dense(t) => Ok(Weight::Dense(dense.to_dtype(t.dtype())?)),
        }
    }

    /// The matrix held as `format` asks, on `device`.
    pub fn convert(&self, format: WeightFormat, device: &Device) -> Result<Weight> {
        match (format, self) {
            (WeightFormat::AsFile, _) if device.is_cpu() => Ok(self.clone()),
            (WeightFormat::AsFile | WeightFormat::F32, Weight::Quant(_)) => Ok(Weight::Dense(self.to_dense(device)?)),
            (WeightFormat::AsFile | WeightFormat::F32, Weight::Dense(t)) => Ok(Weight::Dense(t.to_device(device)?)),
            (WeightFormat::Q8_0, _) => {
                let (inp, out) = self.dims();
                let rows = self.to_dense(&Device::Cpu)?.to_dtype(DType::F32)?.t()?.contiguous()?;
                let values = rows.flatten_all()?.to_vec1::<f32>()?;
                let q = QMatrix::quantize_q8_0(out, inp, &values).map_err(Error::Model)?;
                Ok(Weight::Quant(Arc::new(q)))
            }
        }
    }
}

/// The embedding matrix (vocab, hidden).
#[derive(Clone)]
pub enum Table {
    /// Any dtype, any device.
    Dense(Tensor),
    /// Quantized rows (one per token); CPU.
    Quant(Arc<QMatrix>),
}

impl Table {
    /// The rows of `ids`, (tokens, hidden).
    pub fn lookup(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        match self {
            Table::Dense(e) => Ok(e.index_select(&Tensor::new(ids, device)?, 0)?),
            Table::Quant(q) => {
                let cols = q.cols();
                let mut v = vec![0f32; ids.len() * cols];
                for (&id, out) in ids.iter().zip(v.chunks_exact_mut(cols)) {
                    q.dequantize_row(id as usize, out);
                }
                Ok(Tensor::from_vec(v, (ids.len(), cols), device)?)
            }
        }
    }

    /// `x · Eᵀ` (the tied head).
    pub fn head(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Table::Dense(e) => Ok(matvec::matmul_t(x, e)?),
            Table::Quant(q) => qmatmul(q, x),
        }
    }

    /// The element type activations start in.
    pub fn dtype(&self) -> DType {
        match self {
            Table::Dense(e) => e.dtype(),
            Table::Quant(_) => DType::F32,
        }
    }

    /// Resident bytes.
    pub fn bytes(&self) -> usize {
        match self {
            Table::Dense(t) => tensor_bytes(t),
            Table::Quant(q) => q.bytes(),
        }
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        match self {
            Table::Dense(t) => t.dims()[1] * t.dtype().size_in_bytes(),
            Table::Quant(q) => q.bytes() / q.rows().max(1),
        }
    }

    /// As a (projection) weight `x · Eᵀ`, for tallies and conversion.
    fn as_weight(&self) -> Result<Weight> {
        Ok(match self {
            Table::Dense(e) => Weight::Dense(e.t()?),
            Table::Quant(q) => Weight::Quant(q.clone()),
        })
    }

    /// Adds its bytes to a per-type tally.
    pub fn tally(&self, into: &mut BTreeMap<String, usize>) -> Result<()> {
        self.as_weight()?.tally(into);
        Ok(())
    }

    /// The dense (vocab, hidden) matrix on `device`.
    pub fn to_dense(&self, device: &Device) -> Result<Tensor> {
        match self {
            Table::Dense(e) => Ok(e.clone()),
            Table::Quant(q) => dequantized(q, device),
        }
    }

    /// The same table in `dtype` (quantized tables stay, for f32).
    pub fn to_dtype(&self, dtype: DType) -> Result<Table> {
        Ok(match self.as_weight()?.to_dtype(dtype)? {
            Weight::Dense(t) => Table::Dense(t.t()?.contiguous()?),
            Weight::Quant(q) => Table::Quant(q),
        })
    }

    /// The table held as `format` asks, on `device`.
    pub fn convert(&self, format: WeightFormat, device: &Device) -> Result<Table> {
        Ok(match self.as_weight()?.convert(format, device)? {
            Weight::Dense(t) => Table::Dense(t.t()?.contiguous()?),
            Weight::Quant(q) => Table::Quant(q),
        })
    }
}
