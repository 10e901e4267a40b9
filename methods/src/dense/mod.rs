//! `dense` — the baseline every other method is compared with.
//!
//! Batch size 1: prefill the whole prompt in one forward pass, then decode one token per
//! forward with the KV cache. Greedy by default; seeded temperature / top-k / top-p
//! sampling draws from a stream derived from (`seed`, request id), so a request's output
//! does not depend on which requests came before it.
//!
//! **Overhead model:** setup = generating (or loading) the weights once. Per request:
//! `prefill` covers tokenization, the prompt's forward pass and choosing the first token;
//! `decode` covers every later token (one forward each, memory-bound on the weights).
//! Counters: `kv_tokens` (cache length at the end), `kv_bytes_peak`.

use std::collections::BTreeMap;

use oae_core::config::ConfigTable;
use oae_harness::{BuildContext, Completion, ConfigKey, Method, MethodError, MethodSpec, Probe, TokenSink};
use oae_workloads::Request;

use crate::generate::{Generator, serve_autoregressive};
use crate::model::LoadedModel;

/// The registry entry.
pub struct Spec;
/// The registry entry, for [`crate::registry`].
pub static SPEC: Spec = Spec;

impl MethodSpec for Spec {
    fn id(&self) -> &'static str {
        "dense"
    }
    fn manifest(&self) -> Option<&'static str> {
        Some(include_str!("manifest.toml"))
    }
    fn about(&self) -> &'static str {
        "baseline: prefill + KV-cache decode, batch 1, greedy or seeded top-k/top-p, any loaded model"
    }
    fn keys(&self) -> &'static [ConfigKey] {
        crate::generation_keys!()
    }
    fn build(&self, config: &ConfigTable, ctx: &BuildContext) -> Result<Box<dyn Method>, MethodError> {
        let (generator, rest) = Generator::from_config(config, ctx)?;
        // No keys of its own: anything left is a typo.
        rest.decode::<NoKeys>()?;
        Ok(Box::new(Dense { generator, model: None }))
    }
}

/// An empty key set that rejects unknown keys.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoKeys {}

/// A dense instance.
pub struct Dense {
    generator: Generator,
    model: Option<LoadedModel>,
}

impl Method for Dense {
    fn prepare(&mut self) -> Result<(), MethodError> {
        self.model = Some(self.generator.load()?);
        Ok(())
    }

    fn serve(
        &mut self,
        request: &Request,
        sink: &mut dyn TokenSink,
        probe: &mut Probe,
    ) -> Result<Completion, MethodError> {
        let m = crate::generate::prepared(&self.model, "dense")?;
        serve_autoregressive(&self.generator, m, "dense-sampling", request, sink, probe)
    }

    fn cold_start_s(&self) -> Option<f64> {
        self.generator.cold_start().map(|c| c.total_s())
    }

    fn facts(&self) -> BTreeMap<String, serde_json::Value> {
        self.generator.facts(self.model.as_ref())
    }

    fn detokenize(&self, ids: &[u32]) -> Option<String> {
        self.model.as_ref().map(|m| m.tokenizer.decode(ids))
    }

    fn weight_bytes(&self) -> Option<u64> {
        self.model.as_ref().map(|m| m.decoder.weight_bytes() as u64)
    }
}
