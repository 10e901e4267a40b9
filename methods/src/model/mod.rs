//! The model core: configuration, weights, decoder, tokenizer and sampling.
//!
//! [`ModelSpec`] is how a method's config names its model (`model = { kind = "synthetic" }`
//! by default); [`LoadedModel`] is the decoder plus its tokenizer, ready to serve.

mod attention;
mod awake;
pub mod catalog;
mod chat;
mod config;
mod cpu_step;
#[cfg(feature = "cuda")]
mod cuda;
pub mod cuda_info;
mod decoder;
mod fastmath;
mod fused;
mod kv_cache;
mod load;
mod matvec;
pub mod quant;
mod sampling;
mod swiglu;
mod switch;
mod synthetic;
mod team;
mod team_step;
pub mod throughput;
mod tokenizer;
mod weight;

pub use candle_core::{DType, Device};
use serde::Deserialize;

use oae_harness::DeviceSpec;

pub use chat::ChatTemplate;
pub use decoder::{
    Decoder, KvCache, LlamaConfig, Logits, MoeCounters, all_rows, causal_mask, kv_dtype_allowed, last_row,
};
pub(crate) use decoder::{Ffn, Mlp, Moe};
pub use load::{DEFAULT_MAX_SEQ, load_gguf, load_hf, save_hf};
pub use sampling::{Sampling, argmax, probabilities, sample, sample_from};
pub use synthetic::SyntheticSpec;
pub use tokenizer::{ByteTokenizer, HfTokenizer, Tokenizer};
pub use weight::{Table, Weight, WeightFormat};

use crate::error::{Error, Result};

/// Which model a method runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ModelSpec {
    /// The embedded default: deterministic synthetic Llama-family weights, byte tokenizer.
    Synthetic(SyntheticSpec),
    /// A Llama-architecture GGUF file.
    Gguf(FileModel),
    /// A Hugging Face directory (Llama, Mistral, Qwen2, Mixtral).
    Hf(FileModel),
}

/// A model read from disk: by `path`, or by catalog `name` from the model cache.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileModel {
    /// File or directory; relative paths are relative to the suite file.
    pub path: Option<String>,
    /// A model of `oae models list`, looked up in the model cache.
    pub name: Option<String>,
    /// Context length to allocate for (default: the model's, capped at 8192).
    pub max_seq: Option<usize>,
    /// How the matrices are held: as the file stores them (default), f32, or q8_0.
    pub weights: WeightFormat,
}

impl FileModel {
    /// The path to open.
    pub fn locate(&self) -> Result<std::path::PathBuf> {
        match (&self.path, &self.name) {
            (Some(p), None) => Ok(p.into()),
            (None, Some(n)) => {
                let e = catalog::entry(n).ok_or_else(|| {
                    let known: Vec<&str> = catalog::CATALOG.iter().map(|e| e.name).collect();
                    Error::Model(format!("unknown model name `{n}`; known: {}", known.join(", ")))
                })?;
                let root = catalog::cache_dir();
                if !e.present(&root) {
                    return Err(Error::Model(format!(
                        "model `{n}` is not in the model cache {}; run `oae models fetch {n}` (or set OAE_MODELS_DIR)",
                        root.display()
                    )));
                }
                Ok(e.model_path(&root))
            }
            (Some(_), Some(_)) => Err(Error::Model("give either `path` or `name`, not both".into())),
            (None, None) => Err(Error::Model("give the model's `path` or its catalog `name`".into())),
        }
    }
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
    /// The model's chat template, when it is an instruct model with a recognised one.
    pub chat: Option<ChatTemplate>,
    /// Tokens that end generation (end-of-sequence, end-of-turn).
    pub stops: Vec<u32>,
}

/// Whether prompts are wrapped in the model's chat template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatMode {
    /// Use the template when the model has one.
    #[default]
    Auto,
    /// Raw prompts.
    Off,
    /// Require a template (error when the model has none).
    On,
}

impl LoadedModel {
    /// Token ids for a request prompt under `mode`.
    pub fn prompt_ids(&self, text: &str, mode: ChatMode, system: Option<&str>) -> Result<Vec<u32>> {
        self.tokenizer.encode(&self.render(text, mode, system)?)
    }

    /// The text of a one-turn prompt under `mode`: `user` wrapped in the chat template, or
    /// as it is.
    pub fn render(&self, user: &str, mode: ChatMode, system: Option<&str>) -> Result<String> {
        match (mode, &self.chat) {
            (ChatMode::Off, _) | (ChatMode::Auto, None) => Ok(user.to_string()),
            (_, Some(t)) => Ok(t.render(user, system)),
            (ChatMode::On, None) => Err(Error::Model(format!(
                "chat = \"on\" but {} has no recognised chat template; use chat = \"off\"",
                self.name
            ))),
        }
    }

    /// Whether `id` ends generation.
    pub fn is_stop(&self, id: u32) -> bool {
        self.stops.contains(&id)
    }
}

impl ModelSpec {
    /// Checks what can be checked without building the model (shapes, ranges).
    pub fn check(&self) -> Result<()> {
        match self {
            ModelSpec::Synthetic(s) => s.check(),
            ModelSpec::Gguf(f) | ModelSpec::Hf(f) => {
                let p = f.locate()?;
                if !p.exists() {
                    return Err(Error::Model(format!("{}: no such file or directory", p.display())));
                }
                if f.max_seq.is_some_and(|m| m < 2) {
                    return Err(Error::Model("max_seq must be at least 2".into()));
                }
                Ok(())
            }
        }
    }

    /// Makes a relative `path` relative to the suite file that wrote it.
    pub fn resolve_paths(&mut self, source: &oae_core::config::SourceFile) {
        if let ModelSpec::Gguf(f) | ModelSpec::Hf(f) = self
            && let Some(p) = &f.path
        {
            f.path = Some(source.resolve(p).to_string_lossy().into_owned());
        }
    }

    /// The `weights` key.
    pub fn weights(&self) -> WeightFormat {
        match self {
            ModelSpec::Synthetic(s) => s.weights,
            ModelSpec::Gguf(f) | ModelSpec::Hf(f) => f.weights,
        }
    }

    /// Builds or loads the model on `device`, its matrices held as `weights` asks.
    pub fn load(&self, device: &Device) -> Result<LoadedModel> {
        let mut m = match self {
            ModelSpec::Synthetic(s) => s.build(device)?,
            ModelSpec::Gguf(f) => load_gguf(&f.locate()?, f.max_seq, device)?,
            ModelSpec::Hf(f) => load_hf(&f.locate()?, f.max_seq, device)?,
        };
        m.decoder = m.decoder.convert_weights(self.weights())?;
        if !matches!(self, ModelSpec::Synthetic(_)) {
            // "SmolLM2 (gguf)" → "SmolLM2 (gguf, q4_1+q8_0)": what ran, in the name tables show.
            let types = m.decoder.weight_types();
            let mut held: Vec<&str> = types
                .keys()
                .filter(|k| k.starts_with('q'))
                .map(String::as_str)
                .collect();
            if held.is_empty() {
                held = types.keys().map(String::as_str).collect();
            }
            let held = held.join("+");
            m.name = match m.name.strip_suffix(')') {
                Some(stem) => format!("{stem}, {held})"),
                None => format!("{} ({held})", m.name),
            };
        }
        Ok(m)
    }
}

/// The candle device for a harness device spec.
pub fn device(spec: DeviceSpec) -> Result<Device> {
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda(i) => Device::new_cuda(i).map_err(|e| {
            Error::Model(format!(
                "device cuda:{i} does not open: {} (`oae doctor` lists the CUDA libraries loaded)",
                cuda_info::first_line(&e)
            ))
        }),
        #[cfg(not(feature = "cuda"))]
        DeviceSpec::Cuda(i) => Err(Error::Model(format!(
            "device cuda:{i} requested, but this build has no CUDA support; rebuild with `--features cuda` or set `device = \"cpu\"` in [run]"
        ))),
    }
}
