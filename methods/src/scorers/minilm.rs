//! `minilm`: cosine similarity of sentence embeddings from all-MiniLM-L6-v2 — the BERT of
//! candle-transformers, mean pooling over the attention mask, L2 normalisation, inputs cut at
//! 256 tokens: what sentence-transformers computes for this model (checked against its output
//! in `tests/minilm.rs`), and the similarity the CAG authors report.
//!
//! The score of an answer is its best cosine over the item's references, negatives as 0 (a
//! scorer's range is [0, 1]); an empty answer scores 0.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use oae_quality::{ModelScorer, TaskItem};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use crate::Error;
use crate::model::catalog;

/// The catalog name of the model.
pub const MODEL: &str = "all-minilm-l6-v2";
/// sentence-transformers' `max_seq_length` for this model.
pub const MAX_TOKENS: usize = 256;
/// Texts embedded per forward pass.
const BATCH: usize = 32;

/// The loaded embedder.
pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    weight_bytes: u64,
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Model(format!("{MODEL}: {e}"))
}

impl MiniLm {
    /// Loads the model from the model cache, or says how to fetch it.
    pub fn from_cache() -> Result<Self, Error> {
        let root = catalog::cache_dir();
        let entry = catalog::entry(MODEL).ok_or_else(|| err("not in the model catalog"))?;
        if !entry.present(&root) {
            return Err(Error::Model(format!(
                "scorer `minilm` needs {MODEL}, which is not in the model cache ({}); fetch it once with `oae models fetch {MODEL}`",
                root.display()
            )));
        }
        Self::load(&entry.model_path(&root))
    }

    /// Loads a sentence-transformers BERT directory (config.json, model.safetensors,
    /// tokenizer.json) on the CPU.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let device = Device::Cpu;
        let config: Config = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json")).map_err(|e| err(format!("config.json: {e}")))?,
        )
        .map_err(|e| err(format!("config.json: {e}")))?;
        // SAFETY: the file is the cache's (checked at fetch), mapped read-only while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &device) }
            .map_err(err)?;
        let model = BertModel::load(vb, &config).map_err(err)?;
        let weight_bytes = std::fs::metadata(dir.join("model.safetensors")).map_or(0, |m| m.len());
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(err)?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(err)?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        Ok(Self {
            model,
            tokenizer,
            device,
            weight_bytes,
        })
    }

    /// Bytes of its weights (the safetensors file).
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// Unit-length sentence embeddings of `texts`, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            let enc = self
                .tokenizer
                .encode_batch(chunk.iter().map(|t| t.to_string()).collect::<Vec<_>>(), true)
                .map_err(err)?;
            let rows = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| -> Result<Tensor, Error> {
                let v: Vec<Tensor> = enc
                    .iter()
                    .map(|e| Tensor::new(f(e).as_slice(), &self.device))
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
                Tensor::stack(&v, 0).map_err(err)
            };
            let ids = rows(&|e| e.get_ids().to_vec())?;
            let types = rows(&|e| e.get_type_ids().to_vec())?;
            let mask = rows(&|e| e.get_attention_mask().to_vec())?;
            let hidden = self.model.forward(&ids, &types, Some(&mask)).map_err(err)?;
            // Mean over the tokens the mask keeps, then L2-normalise.
            let m = mask.to_dtype(DType::F32).map_err(err)?.unsqueeze(2).map_err(err)?;
            let summed = hidden.broadcast_mul(&m).map_err(err)?.sum(1).map_err(err)?;
            let counts = m.sum(1).map_err(err)?.clamp(1e-9, f64::MAX).map_err(err)?;
            let mean = summed.broadcast_div(&counts).map_err(err)?;
            let norm = mean
                .sqr()
                .map_err(err)?
                .sum_keepdim(1)
                .map_err(err)?
                .sqrt()
                .map_err(err)?;
            let unit = mean
                .broadcast_div(&norm.clamp(1e-12, f64::MAX).map_err(err)?)
                .map_err(err)?;
            out.extend(unit.to_vec2::<f32>().map_err(err)?);
        }
        Ok(out)
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

impl ModelScorer for MiniLm {
    fn name(&self) -> &'static str {
        "minilm"
    }

    fn score_batch(&mut self, answers: &[(&str, &TaskItem)]) -> Result<Vec<f64>, String> {
        // Every distinct text once: answers, then references.
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut texts: Vec<&str> = Vec::new();
        for (a, item) in answers {
            for t in std::iter::once(*a).chain(item.references.iter().map(String::as_str)) {
                if !t.trim().is_empty() && !index.contains_key(t) {
                    index.insert(t, texts.len());
                    texts.push(t);
                }
            }
        }
        let emb = self.embed(&texts).map_err(|e| e.to_string())?;
        Ok(answers
            .iter()
            .map(|(a, item)| {
                let Some(&ai) = index.get(a) else {
                    return 0.0; // an empty answer
                };
                item.references
                    .iter()
                    .filter_map(|r| index.get(r.as_str()))
                    .map(|&ri| cosine(&emb[ai], &emb[ri]).clamp(0.0, 1.0))
                    .fold(0.0, f64::max)
            })
            .collect())
    }
}
