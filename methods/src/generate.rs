//! What every model-driving adapter shares: the model and sampling keys of its config, the
//! prompt (chat template, context check), the emission of tokens with stop handling,
//! prefill of long prompts in memory-bounded blocks, and the autoregressive prefill + decode
//! loop that `dense`, `moe`, `rag` and `cag` serve with.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use oae_core::config::ConfigTable;
use oae_core::rng::{SeededRng, seeded};
use oae_harness::{BuildContext, Completion, DeviceSpec, Flow, MethodError, Probe, StopReason, TokenSink};
use oae_workloads::Request;

use std::time::Instant;

use candle_core::{DType, Tensor};

use crate::cold_start::{ColdStart, JitCache};

use crate::model::{self, ChatMode, KvCache, LoadedModel, Logits, ModelSpec, Sampling, last_row, sample};

/// The config keys [`GenConfig`] reads; an adapter decodes the others itself.
pub const KEYS: &[&str] = &[
    "model",
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "ignore_eos",
    "chat",
    "system",
    "dtype",
    "kv_cache",
];

/// `oae list methods` documentation of [`KEYS`], followed by an adapter's own keys.
#[macro_export]
macro_rules! generation_keys {
    ($($extra:expr),* $(,)?) => {
        &[
            oae_harness::ConfigKey {
                name: "model",
                default: "{ kind = \"synthetic\" }",
                help: "model to run: { kind = \"synthetic\", … } (keys: seed, layers, hidden, heads, kv_heads, ffn, vocab, max_seq, residual_scale, logit_scale, experts, top_k, weights), { kind = \"gguf\", path | name, max_seq, weights } or { kind = \"hf\", path | name, max_seq, weights }; weights = \"as-file\" (default: a GGUF file's quantized blocks stay quantized on the CPU), \"f32\" or \"q8_0\"",
            },
            oae_harness::ConfigKey {
                name: "temperature",
                default: "0.0",
                help: "0 = greedy; > 0 samples from softmax(logits / temperature)",
            },
            oae_harness::ConfigKey {
                name: "top_k",
                default: "0",
                help: "sample only among the k most likely tokens (0 = off)",
            },
            oae_harness::ConfigKey {
                name: "top_p",
                default: "1.0",
                help: "nucleus sampling mass (1 = off)",
            },
            oae_harness::ConfigKey {
                name: "seed",
                default: "0",
                help: "sampling seed; each request draws from (seed, request id)",
            },
            oae_harness::ConfigKey {
                name: "ignore_eos",
                default: "false",
                help: "keep generating past end-of-sequence (fixed output lengths)",
            },
            oae_harness::ConfigKey {
                name: "chat",
                default: "\"auto\"",
                help: "wrap prompts in the model's chat template: auto (when it has one), on, off",
            },
            oae_harness::ConfigKey {
                name: "system",
                default: "(template default)",
                help: "system message for chat-templated prompts",
            },
            oae_harness::ConfigKey {
                name: "dtype",
                default: "f32 on CPU, bf16 on CUDA",
                help: "element type of weights, activations and (unless kv_cache says otherwise) the KV cache: f32, bf16 or f16 (logits are returned in f32)",
            },
            oae_harness::ConfigKey {
                name: "kv_cache",
                default: "f16 on CPU (dtype f32), the dtype on CUDA",
                help: "element type of the KV cache's keys and values: f16 or f32 with dtype f32 on the CPU (attention computes in f32 either way; f16 halves the bytes a decode step reads); elsewhere only the dtype",
            },
            $($extra),*
        ]
    };
}

/// Model and sampling settings shared by the adapters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenConfig {
    /// The model.
    #[serde(default)]
    pub model: ModelSpec,
    #[serde(default)]
    temperature: f64,
    #[serde(default)]
    top_k: usize,
    #[serde(default = "one")]
    top_p: f64,
    /// Sampling seed.
    #[serde(default)]
    pub seed: u64,
    /// Generate past end-of-sequence.
    #[serde(default)]
    pub ignore_eos: bool,
    #[serde(default)]
    chat: ChatMode,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    dtype: Option<DtypeName>,
    #[serde(default)]
    kv_cache: Option<DtypeName>,
}

fn one() -> f64 {
    1.0
}

/// The `dtype` key's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtypeName {
    /// 32-bit float.
    F32,
    /// bfloat16.
    Bf16,
    /// IEEE half.
    F16,
}

impl DtypeName {
    /// The spelling in a config.
    pub fn name(self) -> &'static str {
        dtype_name(self.dtype())
    }

    /// The candle type.
    pub fn dtype(self) -> DType {
        match self {
            DtypeName::F32 => DType::F32,
            DtypeName::Bf16 => DType::BF16,
            DtypeName::F16 => DType::F16,
        }
    }

    /// The serving default: bf16 on a GPU (half the bytes per token of a memory-bound
    /// decode, and the precision GPU serving stacks default to), f32 on CPU (where this
    /// decoder's single-row fast path is f32, and candle's f16/bf16 products are slower).
    pub fn default_for(device: DeviceSpec) -> Self {
        match device {
            DeviceSpec::Cpu => DtypeName::F32,
            DeviceSpec::Cuda(_) => DtypeName::Bf16,
        }
    }
}

/// The name run.json gives a dtype.
pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        DType::F64 => "f64",
        _ => "other",
    }
}

/// A model-driving adapter's shared half: settings, device and (after `load`) the model.
pub struct Generator {
    /// Settings.
    pub cfg: GenConfig,
    /// Next-token rule.
    pub sampling: Sampling,
    /// Where the model runs.
    pub device_spec: DeviceSpec,
    /// The device, opened at the first `load` (in setup: on a GPU that creates the CUDA
    /// context and library handles, a cost setup must carry).
    device: std::sync::Mutex<Option<candle_core::Device>>,
    /// Element type the model serves in.
    pub dtype: DType,
    /// What the last `load` cost (for run.json).
    cold_start: std::sync::Mutex<Option<ColdStart>>,
}

impl Generator {
    /// Decodes the shared keys of `config` (checking sampling values and the model) and
    /// returns the table of the remaining, adapter-specific keys.
    pub fn from_config(config: &ConfigTable, ctx: &BuildContext) -> Result<(Self, ConfigTable), MethodError> {
        let (shared, rest) = config.split(KEYS);
        let mut cfg: GenConfig = shared.decode()?;
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
        cfg.model.resolve_paths(config.source());
        // Shape and path errors are configuration errors: report them before the run.
        cfg.model.check().map_err(|e| config.error("model", e.to_string()))?;
        // A CPU device costs nothing to open; a CUDA one is opened in setup (`load`), but a
        // build without CUDA refuses it here, before the run.
        let device = match ctx.device {
            DeviceSpec::Cpu => Some(candle_core::Device::Cpu),
            DeviceSpec::Cuda(_) if !cfg!(feature = "cuda") => {
                model::device(ctx.device).map_err(|e| config.error("", e.to_string()))?;
                None
            }
            DeviceSpec::Cuda(_) => None,
        };
        let dtype = cfg.dtype.unwrap_or(DtypeName::default_for(ctx.device));
        if let Some(kv) = cfg.kv_cache
            && !model::kv_dtype_allowed(ctx.device == DeviceSpec::Cpu, dtype.dtype(), kv.dtype())
        {
            let msg = format!(
                "kv_cache = \"{}\" needs dtype = \"f32\" on the CPU; with dtype = \"{}\" on {} the KV cache is held in the dtype: remove kv_cache or set it to \"{}\"",
                kv.name(),
                dtype.name(),
                if ctx.device == DeviceSpec::Cpu {
                    "the CPU"
                } else {
                    "a GPU"
                },
                dtype.name()
            );
            return Err(config.error("kv_cache", msg).into());
        }
        Ok((
            Self {
                cfg,
                sampling,
                device_spec: ctx.device,
                device: std::sync::Mutex::new(device),
                dtype: dtype.dtype(),
                cold_start: std::sync::Mutex::new(None),
            },
            rest,
        ))
    }

    /// Loads (or builds) the model, converts it to the serving dtype and warms it up
    /// ([`crate::cold_start`]), so first-call costs land in setup, not in the first measured
    /// request.
    pub fn load(&self) -> Result<LoadedModel, MethodError> {
        self.load_then(Ok)
    }

    /// [`load`](Self::load) with a method's own transform (e.g. MoE upcycling) applied to
    /// the F32 model before conversion and warm-up, so the warm-up runs the kernels the
    /// method serves with.
    pub fn load_then(
        &self,
        transform: impl FnOnce(LoadedModel) -> Result<LoadedModel, MethodError>,
    ) -> Result<LoadedModel, MethodError> {
        let jit = matches!(self.device_spec, DeviceSpec::Cuda(_)).then(JitCache::probe);
        let opened = Instant::now();
        let device = self.device()?;
        let context_s = opened.elapsed().as_secs_f64();
        let started = Instant::now();
        let m = transform(self.cfg.model.load(&device)?)?;
        let load_s = started.elapsed().as_secs_f64();
        let (m, convert_s) = self.convert(m)?;
        let (warmup_s, first_pass_s) = crate::cold_start::warm_up(&m)?;
        let record = ColdStart {
            context_s,
            load_s,
            convert_s,
            warmup_s,
            first_pass_s,
            jit_cache: jit.map(JitCache::after),
        };
        *self.cold_start.lock().unwrap_or_else(|e| e.into_inner()) = Some(record);
        Ok(m)
    }

    /// A second model a method serves with (a speculative draft), loaded from `spec` on the
    /// same device, converted and warmed up like the first; its times are added to the cold
    /// start record.
    pub fn load_extra(&self, spec: &ModelSpec) -> Result<LoadedModel, MethodError> {
        let started = Instant::now();
        let m = spec.load(&self.device()?)?;
        let load_s = started.elapsed().as_secs_f64();
        let (m, convert_s) = self.convert(m)?;
        let (warmup_s, _) = crate::cold_start::warm_up(&m)?;
        if let Some(c) = self.cold_start.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            c.load_s += load_s;
            c.convert_s += convert_s;
            c.warmup_s += warmup_s;
        }
        Ok(m)
    }

    /// The device, opened on first use (a CUDA context and its library handles).
    pub fn device(&self) -> Result<candle_core::Device, MethodError> {
        let mut d = self.device.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = d.as_ref() {
            return Ok(d.clone());
        }
        let opened = model::device(self.device_spec)?;
        *d = Some(opened.clone());
        Ok(opened)
    }

    /// `m` in the serving dtype, and the seconds the conversion took.
    pub fn convert(&self, mut m: LoadedModel) -> Result<(LoadedModel, f64), MethodError> {
        let started = Instant::now();
        if m.decoder.dtype() != self.dtype {
            m.decoder = m.decoder.to_dtype(self.dtype)?;
        }
        if let Some(kv) = self.cfg.kv_cache {
            m.decoder = m.decoder.with_kv_dtype(kv.dtype())?;
        }
        Ok((m, started.elapsed().as_secs_f64()))
    }

    /// What the last [`load`](Self::load) cost.
    pub fn cold_start(&self) -> Option<ColdStart> {
        self.cold_start.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The prompt's token ids, checked to fit the context with the request's output.
    pub fn prompt(&self, m: &LoadedModel, request: &Request) -> Result<Vec<u32>, MethodError> {
        let ids = m.prompt_ids(&request.prompt, self.cfg.chat, self.cfg.system.as_deref())?;
        let max_seq = m.decoder.config().max_seq;
        let need = ids.len() + request.max_new_tokens as usize;
        if need > max_seq {
            return Err(MethodError::failed(format!(
                "prompt ({} tokens) + max_new_tokens ({}) exceeds the model's context of {max_seq} tokens; shorten the workload's input_tokens/output_tokens or raise the model's max_seq",
                ids.len(),
                request.max_new_tokens
            )));
        }
        Ok(ids)
    }

    /// The text of a one-turn prompt: `user` in the chat template (when the config uses
    /// it), with the config's system message.
    pub fn render(&self, m: &LoadedModel, user: &str) -> Result<String, MethodError> {
        Ok(m.render(user, self.cfg.chat, self.cfg.system.as_deref())?)
    }

    /// The request's own sampling stream (independent of which requests came before).
    pub fn rng(&self, label: &str, request: &Request) -> SeededRng {
        seeded(self.cfg.seed, &[label, &request.id.to_string()])
    }

    /// A token emitter for one request.
    pub fn emitter(&self, m: &LoadedModel, request: &Request) -> Emitter {
        Emitter {
            produced: 0,
            max: request.max_new_tokens,
            stops: if self.cfg.ignore_eos {
                Vec::new()
            } else {
                m.stops.clone()
            },
        }
    }

    /// Facts for run.json: the model's shape and the sampling settings.
    pub fn facts(&self, m: Option<&LoadedModel>) -> BTreeMap<String, serde_json::Value> {
        let mut f = BTreeMap::new();
        if let Some(m) = m {
            let c = m.decoder.config();
            f.insert("model".into(), json!(m.name));
            f.insert("tokenizer".into(), json!(m.tokenizer.name()));
            f.insert(
                "shape".into(),
                json!({"layers": c.layers, "hidden": c.hidden, "heads": c.heads, "kv_heads": c.kv_heads, "head_dim": c.head_dim, "ffn": c.ffn, "experts": c.experts, "top_k": c.top_k, "vocab": c.vocab_size, "max_seq": c.max_seq, "tied_embeddings": c.tied_embeddings}),
            );
            f.insert("params".into(), json!(c.params()));
            f.insert("active_params".into(), json!(c.active_params()));
            f.insert("weight_bytes".into(), json!(m.decoder.weight_bytes()));
            let types = m.decoder.weight_types();
            let quantized = types.keys().any(|k| k.starts_with('q'));
            f.insert(
                "weights".into(),
                json!({
                    "format": self.cfg.model.weights().name(),
                    "bytes_by_type": types,
                    "kernels": if quantized { model::quant::isa().name() } else { "candle (float)" },
                }),
            );
            f.insert("dtype".into(), json!(dtype_name(m.decoder.dtype())));
            f.insert("kv_cache_dtype".into(), json!(dtype_name(m.decoder.kv_dtype())));
            f.insert(
                "logits".into(),
                json!(format!(
                    "computed in {}, returned in f32",
                    dtype_name(m.decoder.dtype())
                )),
            );
            f.insert(
                "weight_bytes_per_token".into(),
                json!(m.decoder.weight_bytes_per_token()),
            );
            let chat = match (self.cfg.chat, &m.chat) {
                (ChatMode::Off, _) | (_, None) => "off".to_string(),
                (_, Some(t)) => t.name().to_string(),
            };
            f.insert("chat_template".into(), json!(chat));
            f.insert("stop_tokens".into(), json!(m.stops));
        }
        f.insert(
            "sampling".into(),
            json!({"temperature": self.sampling.temperature, "top_k": self.sampling.top_k, "top_p": self.sampling.top_p, "seed": self.cfg.seed}),
        );
        f.insert("ignore_eos".into(), json!(self.cfg.ignore_eos));
        f.insert(
            "device".into(),
            json!(match self.device_spec {
                DeviceSpec::Cpu => "cpu".to_string(),
                DeviceSpec::Cuda(i) => format!("cuda:{i}"),
            }),
        );
        if let Some(c) = self.cold_start() {
            f.insert("cold_start".into(), c.facts());
        }
        f
    }
}

/// The model an adapter loaded in `prepare`, or the error for serving before it.
pub fn prepared<'a>(model: &'a Option<LoadedModel>, method: &str) -> Result<&'a LoadedModel, MethodError> {
    model
        .as_ref()
        .ok_or_else(|| MethodError::failed(format!("{method}: serve() called before prepare()")))
}

/// Hands generated tokens to the harness and decides when generation ends.
pub struct Emitter {
    produced: u32,
    max: u32,
    stops: Vec<u32>,
}

impl Emitter {
    /// Emits `token`; `Some(reason)` when generation must end (the stop token itself is not
    /// emitted).
    pub fn push(&mut self, token: u32, sink: &mut dyn TokenSink) -> Option<StopReason> {
        if self.stops.contains(&token) {
            return Some(StopReason::Eos);
        }
        let flow = sink.token(token);
        self.produced += 1;
        if self.produced >= self.max {
            return Some(StopReason::Length);
        }
        (flow == Flow::Stop).then_some(StopReason::Stopped)
    }

    /// Tokens emitted so far.
    pub fn produced(&self) -> u32 {
        self.produced
    }

    /// Tokens still allowed.
    pub fn remaining(&self) -> u32 {
        self.max.saturating_sub(self.produced)
    }
}

/// Runs `tokens` after the cache and chooses the next token from the last position.
pub fn next_token(
    m: &LoadedModel,
    tokens: &[u32],
    cache: &mut KvCache,
    sampling: &Sampling,
    rng: &mut SeededRng,
) -> Result<u32, MethodError> {
    let logits = m.decoder.forward(tokens, cache, Logits::Last)?;
    let row = last_row(&logits)?;
    Ok(sample(&row, sampling, rng))
}

/// Batch-1 autoregressive serving: prefill the prompt, then one forward per token.
/// Phases `prefill` (tokenization, prompt forward, first choice) and `decode`; counters
/// `kv_tokens` and `kv_bytes_peak`.
pub fn serve_autoregressive(
    generator: &Generator,
    m: &LoadedModel,
    label: &str,
    request: &Request,
    sink: &mut dyn TokenSink,
    probe: &mut Probe,
) -> Result<Completion, MethodError> {
    probe.phase("prefill");
    let ids = generator.prompt(m, request)?;
    let cache = KvCache::new(m.decoder.config().layers);
    continue_and_decode(generator, m, label, request, cache, &ids, sink, probe)
}

/// Runs `ids` after `cache` (in blocks of [`prefill_block`]), chooses the
/// first token, then decodes one forward per token. The caller has opened the `prefill`
/// phase (or the phase its own setup belongs to); this marks `decode`, and sets
/// `kv_tokens` and `kv_bytes_peak`. The completion's input tokens are everything the
/// answer was conditioned on: the cache's and `ids`.
#[allow(clippy::too_many_arguments)]
pub fn continue_and_decode(
    generator: &Generator,
    m: &LoadedModel,
    label: &str,
    request: &Request,
    mut cache: KvCache,
    ids: &[u32],
    sink: &mut dyn TokenSink,
    probe: &mut Probe,
) -> Result<Completion, MethodError> {
    let input_tokens = (cache.len() + ids.len()) as u32;
    let mut rng = generator.rng(label, request);
    let logits = prefill(m, ids, &mut cache)?;
    let mut next = sample(&last_row(&logits)?, &generator.sampling, &mut rng);
    probe.phase("decode");
    let mut out = generator.emitter(m, request);
    let stop = loop {
        if let Some(stop) = out.push(next, sink) {
            break stop;
        }
        next = next_token(m, &[next], &mut cache, &generator.sampling, &mut rng)?;
    };
    probe.end();
    probe.set("kv_tokens", cache.len() as f64);
    probe.set("kv_bytes_peak", cache.bytes() as f64);
    Ok(Completion::new(input_tokens, stop))
}

/// Bytes of attention scores one prefill block may allocate per layer. glibc serves blocks
/// under its 32 MiB mmap ceiling from reusable heap; larger ones are mapped and page-faulted
/// afresh for every layer, which on a 7.5k-token SmolLM2 preload cost 45 s of system time
/// (141 s preload with 512-token blocks, 82 s with blocks under this bound, 1 thread).
const SCORE_BYTES: usize = 16 << 20;

/// Tokens per forward pass when prefilling up to a context of `ctx` tokens with `heads`
/// query heads: as many as keep the scores under [`SCORE_BYTES`], 16 to 512.
pub fn prefill_block(heads: usize, ctx: usize) -> usize {
    (SCORE_BYTES / (heads.max(1) * ctx.max(1) * 4)).clamp(16, 512)
}

/// Runs `ids` after `cache` in blocks of [`prefill_block`] tokens; the last position's
/// logits.
pub fn prefill(m: &LoadedModel, ids: &[u32], cache: &mut KvCache) -> Result<Tensor, MethodError> {
    let block = prefill_block(m.decoder.config().heads, cache.len() + ids.len());
    let mut last = None;
    for block in ids.chunks(block) {
        last = Some(m.decoder.forward(block, cache, Logits::Last)?);
    }
    last.ok_or_else(|| MethodError::failed("nothing to prefill"))
}
