//! `cag` — cache-augmented generation (Chan et al., "Don't Do RAG", WWW '25): the whole
//! knowledge base is prefilled into the KV cache once at setup; each query restores that
//! cache, appends its question and decodes. No retrieval, no per-query knowledge prefill —
//! and no way to hold a base larger than the model's context.
//!
//! The cached prefix is exactly the head of the full-context prompt (`rag` with
//! `retriever = "all"`): the template's opening, the instruction and every chunk in
//! document order. So a CAG answer equals the full-context answer; only the prefill moved
//! to setup.
//!
//! **Overhead model:** setup = loading the model, chunking the base, and prefilling it
//! (`preload_s`, tokens/s in the facts; the harness meters all of it). A base that does not
//! fit the context with `reserve_tokens` to spare is *not applicable*: setup says so with
//! the sizes and the fix, and the scorecards list the method as not applicable instead of
//! truncating the knowledge. Per request: `restore` (the snapshot taken back: cloning the
//! copy-on-write cache, O(layers)), `prefill` (the question, attending over the whole
//! cached base), `decode` (every step attends over the base too). Counters:
//! `knowledge_tokens`, `cache_bytes` (the snapshot), `restore_ms`, `kv_tokens`,
//! `kv_bytes_peak`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use oae_core::config::ConfigTable;
use oae_harness::{BuildContext, Completion, ConfigKey, Method, MethodError, MethodSpec, Probe, TokenSink};
use oae_workloads::{KnowledgeBase, Request};

use crate::generate::{Generator, continue_and_decode};
use crate::knowledge::{self, Chunk, Prompt};
use crate::model::{KvCache, LoadedModel};

/// The registry entry.
pub struct Spec;
/// The registry entry, for [`crate::registry`].
pub static SPEC: Spec = Spec;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CagConfig {
    knowledge: Option<String>,
    #[serde(default = "knowledge::default_reserve")]
    reserve_tokens: u32,
}

impl MethodSpec for Spec {
    fn id(&self) -> &'static str {
        "cag"
    }
    fn about(&self) -> &'static str {
        "cache-augmented generation: the whole [[knowledge]] base prefilled into the KV cache at setup, restored per query; not applicable when the base exceeds the context"
    }
    fn manifest(&self) -> Option<&'static str> {
        Some(include_str!("manifest.toml"))
    }
    fn keys(&self) -> &'static [ConfigKey] {
        crate::generation_keys!(
            ConfigKey {
                name: "knowledge",
                default: "(required)",
                help: "name of the suite's [[knowledge]] base to preload"
            },
            knowledge::RESERVE_KEY,
        )
    }
    fn build(&self, config: &ConfigTable, ctx: &BuildContext) -> Result<Box<dyn Method>, MethodError> {
        Ok(Box::new(Cag::new(config, ctx)?))
    }
}

impl Cag {
    /// Builds an instance from its config table (what the registry's `build` does).
    pub fn new(config: &ConfigTable, ctx: &BuildContext) -> Result<Self, MethodError> {
        let (generator, rest) = Generator::from_config(config, ctx)?;
        let cfg: CagConfig = rest.decode()?;
        let Some(name) = &cfg.knowledge else {
            return Err(config
                .error(
                    "knowledge",
                    "missing: cag preloads a knowledge base; add knowledge = \"<name of a [[knowledge]] table>\"",
                )
                .into());
        };
        let kb = knowledge::lookup(name, config, ctx)?;
        Ok(Cag {
            generator,
            kb,
            reserve: cfg.reserve_tokens as usize,
            ready: None,
        })
    }

    /// The cache restored and `question` run after it: the next-token logits a query
    /// starts from (the invariant: equal to a fresh prefill of knowledge + question).
    pub fn restored_logits(&self, question: &str) -> Result<Vec<f32>, MethodError> {
        let r = self
            .ready
            .as_ref()
            .ok_or_else(|| MethodError::failed("cag: called before prepare()"))?;
        let mut cache = r.snapshot.clone();
        let tail = Prompt::tail(&self.generator, &r.model, question)?;
        let logits = crate::generate::prefill(&r.model, &tail, &mut cache)?;
        Ok(crate::model::last_row(&logits)?)
    }
}

/// A cag instance.
pub struct Cag {
    generator: Generator,
    kb: Arc<KnowledgeBase>,
    reserve: usize,
    ready: Option<Ready>,
}

struct Ready {
    model: LoadedModel,
    /// The cache after the knowledge prefix (never written to: per query a clone extends).
    snapshot: KvCache,
    facts: BTreeMap<String, serde_json::Value>,
}

impl Cag {
    /// The knowledge prefix's token ids: the full-context prompt's head.
    fn prefix(&self, m: &LoadedModel, chunks: &[Chunk]) -> Result<Vec<u32>, MethodError> {
        let all: Vec<&Chunk> = chunks.iter().collect();
        Ok(Prompt::build(&self.generator, m, &all, "")?.head)
    }
}

impl Method for Cag {
    fn prepare(&mut self) -> Result<(), MethodError> {
        let mut facts = BTreeMap::new();
        let t = Instant::now();
        let model = self.generator.load()?;
        facts.insert("load_s".into(), json!(t.elapsed().as_secs_f64()));
        let t = Instant::now();
        let chunks = knowledge::chunk(&self.kb, &model)?;
        let head = self.prefix(&model, &chunks)?;
        facts.insert("chunk_s".into(), json!(t.elapsed().as_secs_f64()));
        facts.insert("chunks".into(), json!(chunks.len()));
        facts.insert("knowledge_tokens".into(), json!(head.len()));
        let max_seq = model.decoder.config().max_seq;
        if head.len() + self.reserve > max_seq {
            return Err(knowledge::too_large("cag", &self.kb, head.len(), self.reserve, max_seq));
        }
        let t = Instant::now();
        let mut cache = KvCache::new(model.decoder.config().layers);
        crate::generate::prefill(&model, &head, &mut cache)?;
        let preload_s = t.elapsed().as_secs_f64();
        facts.insert("preload_s".into(), json!(preload_s));
        facts.insert(
            "preload_tokens_per_s".into(),
            json!(head.len() as f64 / preload_s.max(1e-9)),
        );
        facts.insert("cache_bytes".into(), json!(cache.bytes()));
        self.ready = Some(Ready {
            model,
            snapshot: cache,
            facts,
        });
        Ok(())
    }

    fn serve(
        &mut self,
        request: &Request,
        sink: &mut dyn TokenSink,
        probe: &mut Probe,
    ) -> Result<Completion, MethodError> {
        let r = self
            .ready
            .as_ref()
            .ok_or_else(|| MethodError::failed("cag: serve() called before prepare()"))?;
        probe.phase("restore");
        let t = Instant::now();
        let cache = r.snapshot.clone();
        probe.set("restore_ms", t.elapsed().as_secs_f64() * 1e3);
        probe.phase("prefill");
        let tail = Prompt::tail(&self.generator, &r.model, knowledge::question(request))?;
        let max_seq = r.model.decoder.config().max_seq;
        let need = cache.len() + tail.len() + request.max_new_tokens as usize;
        if need > max_seq {
            return Err(MethodError::failed(format!(
                "the cached knowledge ({} tokens) + question ({} tokens) + max_new_tokens ({}) exceeds the model's context of {max_seq} tokens; raise reserve_tokens to at least {} so setup refuses this base, or shorten the questions/answers",
                cache.len(),
                tail.len(),
                request.max_new_tokens,
                tail.len() + request.max_new_tokens as usize
            )));
        }
        probe.set("knowledge_tokens", r.snapshot.len() as f64);
        probe.set("cache_bytes", r.snapshot.bytes() as f64);
        continue_and_decode(
            &self.generator,
            &r.model,
            "cag-sampling",
            request,
            cache,
            &tail,
            sink,
            probe,
        )
    }

    fn cold_start_s(&self) -> Option<f64> {
        self.generator.cold_start().map(|c| c.total_s())
    }

    fn facts(&self) -> BTreeMap<String, serde_json::Value> {
        let mut f = self.generator.facts(self.ready.as_ref().map(|r| &r.model));
        f.insert(
            "cag".into(),
            json!({
                "knowledge": self.kb.name,
                "reserve_tokens": self.reserve,
                "setup": self.ready.as_ref().map(|r| json!(r.facts)),
            }),
        );
        f
    }

    fn detokenize(&self, ids: &[u32]) -> Option<String> {
        self.ready.as_ref().map(|r| r.model.tokenizer.decode(ids))
    }

    /// The weights and the resident knowledge cache.
    fn weight_bytes(&self) -> Option<u64> {
        self.ready
            .as_ref()
            .map(|r| (r.model.decoder.weight_bytes() + r.snapshot.bytes()) as u64)
    }
}
