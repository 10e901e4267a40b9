//! The model core: configuration, weights, decoder, tokenizer and sampling.
//!
//! [`ModelSpec`] is how a method's config names its model (`model = { kind = "synthetic" }`
//! by default); [`LoadedModel`] is the decoder plus its tokenizer, ready to serve.

mod decoder;
mod sampling;
mod synthetic;
mod tokenizer;

use candle_core::Device;
use serde::Deserialize;

use oae_harness::DeviceSpec;

pub use decoder::{Decoder, KvCache, LlamaConfig, Logits};
pub use sampling::{Sampling, sample};
pub use synthetic::SyntheticSpec;
pub use tokenizer::{ByteTokenizer, Tokenizer};

use crate::error::{Error, Result};

/// Which model a method runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ModelSpec {
    /// The embedded default: deterministic synthetic Llama-family weights, byte tokenizer.
    Synthetic(SyntheticSpec),
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec::Synthetic(SyntheticSpec::default())
    }
}

/// A decoder with its tokenizer.
pub struct LoadedModel {
    /// The network.
    pub decoder: Decoder,
    /// Its tokenizer.
    pub tokenizer: Box<dyn Tokenizer>,
    /// Short description for run.json, e.g. `synthetic(seed=0)`.
    pub name: String,
}

impl ModelSpec {
    /// Checks what can be checked without building the model (shapes, ranges).
    pub fn check(&self) -> Result<()> {
        match self {
            ModelSpec::Synthetic(s) => s.check(),
        }
    }

    /// Builds or loads the model on `device`.
    pub fn load(&self, device: &Device) -> Result<LoadedModel> {
        match self {
            ModelSpec::Synthetic(s) => s.build(device),
        }
    }
}

/// The candle device for a harness device spec.
pub fn device(spec: DeviceSpec) -> Result<Device> {
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda(i) => Err(Error::Model(format!(
            "device cuda:{i} requested, but CUDA support is not available in this build; set `device = \"cpu\"` in [run]"
        ))),
    }
}
