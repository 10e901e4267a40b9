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

use serde::Deserialize;
use serde_json::json;

use oae_harness::{
    BuildContext, Completion, ConfigKey, Flow, Method, MethodError, MethodSpec, Probe, StopReason, TokenSink,
};
use oae_workloads::Request;
use oae_workloads::config::ConfigTable;
use oae_workloads::rng::seeded;

use crate::model::{self, KvCache, LoadedModel, Logits, ModelSpec, Sampling, sample};

/// The registry entry.
pub struct Spec;
/// The registry entry, for [`crate::registry`].
pub static SPEC: Spec = Spec;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DenseConfig {
    #[serde(default)]
    model: ModelSpec,
    #[serde(default)]
    temperature: f64,
    #[serde(default)]
    top_k: usize,
    #[serde(default = "one")]
    top_p: f64,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    ignore_eos: bool,
}

fn one() -> f64 {
    1.0
}

impl MethodSpec for Spec {
    fn id(&self) -> &'static str {
        "dense"
    }
    fn about(&self) -> &'static str {
        "baseline: prefill + KV-cache decode, batch 1, greedy or seeded top-k/top-p"
    }
    fn keys(&self) -> &'static [ConfigKey] {
        &[
            ConfigKey {
                name: "model",
                default: "{ kind = \"synthetic\" }",
                help: "model to run; synthetic keys: seed, layers, hidden, heads, kv_heads, ffn, vocab, max_seq, residual_scale, logit_scale",
            },
            ConfigKey {
                name: "temperature",
                default: "0.0",
                help: "0 = greedy; > 0 samples from softmax(logits / temperature)",
            },
            ConfigKey {
                name: "top_k",
                default: "0",
                help: "sample only among the k most likely tokens (0 = off)",
            },
            ConfigKey {
                name: "top_p",
                default: "1.0",
                help: "nucleus sampling mass (1 = off)",
            },
            ConfigKey {
                name: "seed",
                default: "0",
                help: "sampling seed; each request draws from (seed, request id)",
            },
            ConfigKey {
                name: "ignore_eos",
                default: "false",
                help: "keep generating past end-of-sequence (fixed output lengths)",
            },
        ]
    }
    fn build(&self, config: &ConfigTable, ctx: &BuildContext) -> Result<Box<dyn Method>, MethodError> {
        let cfg: DenseConfig = config.decode()?;
        let sampling = Sampling {
            temperature: cfg.temperature,
            top_k: cfg.top_k,
            top_p: cfg.top_p,
        };
        if let Err(msg) = sampling.validate() {
            let key = if msg.starts_with("temperature") {
                "temperature"
            } else {
                "top_p"
            };
            return Err(config.error(key, msg).into());
        }
        // Shape errors are configuration errors: report them before the run starts.
        cfg.model.check().map_err(|e| config.error("model", e.to_string()))?;
        let device = model::device(ctx.device).map_err(|e| config.error("", e.to_string()))?;
        Ok(Box::new(Dense {
            cfg,
            sampling,
            device,
            model: None,
        }))
    }
}

/// A dense instance.
pub struct Dense {
    cfg: DenseConfig,
    sampling: Sampling,
    device: candle_core::Device,
    model: Option<LoadedModel>,
}

impl Dense {
    /// Runs `tokens` after the cache and chooses the next token from the last position.
    fn next_token(
        &self,
        m: &LoadedModel,
        tokens: &[u32],
        cache: &mut KvCache,
        rng: &mut oae_workloads::rng::SeededRng,
    ) -> Result<u32, MethodError> {
        let logits = m.decoder.forward(tokens, cache, Logits::Last)?;
        let row: Vec<f32> = logits
            .flatten_all()
            .and_then(|l| l.to_vec1())
            .map_err(crate::Error::from)?;
        Ok(sample(&row, &self.sampling, rng))
    }

    fn model(&self) -> Result<&LoadedModel, MethodError> {
        self.model
            .as_ref()
            .ok_or_else(|| MethodError::failed("dense: serve() called before prepare()"))
    }
}

impl Method for Dense {
    fn prepare(&mut self) -> Result<(), MethodError> {
        self.model = Some(self.cfg.model.load(&self.device)?);
        Ok(())
    }

    fn serve(
        &mut self,
        request: &Request,
        sink: &mut dyn TokenSink,
        probe: &mut Probe,
    ) -> Result<Completion, MethodError> {
        let m = self.model()?;
        let cfg = *m.decoder.config();
        probe.phase("prefill");
        let ids = m.tokenizer.encode(&request.prompt);
        let need = ids.len() + request.max_new_tokens as usize;
        if need > cfg.max_seq {
            return Err(MethodError::failed(format!(
                "prompt ({} tokens) + max_new_tokens ({}) exceeds the model's context of {} tokens; shorten the workload's input_tokens/output_tokens",
                ids.len(),
                request.max_new_tokens,
                cfg.max_seq
            )));
        }
        let mut rng = seeded(self.cfg.seed, &["dense-sampling", &request.id.to_string()]);
        let eos = if self.cfg.ignore_eos { None } else { m.tokenizer.eos() };
        let mut cache = KvCache::new(cfg.layers);
        let mut next = self.next_token(m, &ids, &mut cache, &mut rng)?;
        probe.phase("decode");
        let mut produced = 0u32;
        let stop = loop {
            if Some(next) == eos {
                break StopReason::Eos;
            }
            let flow = sink.token(next);
            produced += 1;
            if produced >= request.max_new_tokens {
                break StopReason::Length;
            }
            if flow == Flow::Stop {
                break StopReason::Stopped;
            }
            next = self.next_token(m, &[next], &mut cache, &mut rng)?;
        };
        probe.end();
        probe.set("kv_tokens", cache.len() as f64);
        probe.set("kv_bytes_peak", cache.bytes() as f64);
        Ok(Completion {
            input_tokens: ids.len() as u32,
            stop,
        })
    }

    fn facts(&self) -> BTreeMap<String, serde_json::Value> {
        let mut f = BTreeMap::new();
        if let Some(m) = &self.model {
            let c = m.decoder.config();
            f.insert("model".into(), json!(m.name));
            f.insert("tokenizer".into(), json!(m.tokenizer.name()));
            f.insert(
                "shape".into(),
                json!({"layers": c.layers, "hidden": c.hidden, "heads": c.heads, "kv_heads": c.kv_heads, "ffn": c.ffn, "vocab": c.vocab_size, "max_seq": c.max_seq}),
            );
            f.insert("params".into(), json!(c.params()));
            f.insert("dtype".into(), json!("f32"));
            f.insert("weight_bytes_per_token".into(), json!(c.weight_bytes_per_token()));
        }
        f.insert("sampling".into(), json!({"temperature": self.sampling.temperature, "top_k": self.sampling.top_k, "top_p": self.sampling.top_p, "seed": self.cfg.seed}));
        f.insert("ignore_eos".into(), json!(self.cfg.ignore_eos));
        f.insert("device".into(), json!(format!("{:?}", self.device)));
        f
    }
}
