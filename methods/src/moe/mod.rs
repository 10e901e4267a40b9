//! `moe` — a sparse mixture-of-experts model served like `dense`.
//!
//! The model is one of three kinds:
//! - **synthetic**: `model = { kind = "synthetic", experts = 8, top_k = 2, ffn = … }`;
//! - **loaded**: a Mixtral-layout Hugging Face directory (`model = { kind = "hf", … }`);
//! - **upcycled** from any dense model with an `upcycle` table: every FFN becomes `experts`
//!   copies of itself, each perturbed by Gaussian noise of `noise` × the matrix's RMS, with a
//!   `random` (N(0, 1/hidden)) or `uniform` (zero: ties go to the lowest experts) router.
//!   With `noise = 0` each token's output is the dense model's (the top-k weights sum to 1),
//!   so the measured difference is pure structural overhead: routing, gathering rows and
//!   resident memory for all experts.
//!
//! **Overhead model:** setup = loading the base model (and copying experts when upcycling).
//! Per token and layer: a router matmul (hidden × experts), a softmax and top-k choice on
//! the CPU, then top-k expert MLPs over the rows routed to each. Resident memory holds
//! every expert (`weight_bytes` in run.json) while a token reads only `active_params`.
//! Counters per request: `expert_<i>_tokens` (tokens routed to expert i, summed over
//! layers), `router_ms`, `load_cv` (mean over layers of the coefficient of variation of
//! tokens per expert: 0 = balanced).

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde::Deserialize;
use serde_json::json;

use oae_core::config::ConfigTable;
use oae_core::rng::{seeded, standard_normal};
use oae_harness::{BuildContext, Completion, ConfigKey, Method, MethodError, MethodSpec, Probe, TokenSink};
use oae_workloads::Request;

use crate::generate::{Generator, serve_autoregressive};
use crate::model::{Decoder, Ffn, LoadedModel, Mlp, Moe};

/// The registry entry.
pub struct Spec;
/// The registry entry, for [`crate::registry`].
pub static SPEC: Spec = Spec;

/// How to turn a dense model into a mixture of experts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upcycle {
    /// Experts per layer.
    pub experts: usize,
    /// Experts per token.
    #[serde(default = "two")]
    pub top_k: usize,
    /// Expert perturbation: Gaussian noise of this many × each matrix's RMS.
    #[serde(default)]
    pub noise: f64,
    /// Router initialisation.
    #[serde(default)]
    pub router: RouterInit,
    /// Seed of the noise and router weights.
    #[serde(default)]
    pub seed: u64,
}

fn two() -> usize {
    2
}

/// Router initialisation of an upcycled model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouterInit {
    /// N(0, 1/hidden) weights.
    #[default]
    Random,
    /// All zero: every expert equally likely, ties to the lowest indices.
    Uniform,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoeConfig {
    #[serde(default)]
    upcycle: Option<Upcycle>,
}

impl Upcycle {
    /// Checks the values; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.experts == 0 {
            return Err("upcycle.experts must be at least 1".into());
        }
        if self.top_k == 0 || self.top_k > self.experts {
            return Err(format!(
                "upcycle.top_k ({}) must be between 1 and upcycle.experts ({})",
                self.top_k, self.experts
            ));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(format!("upcycle.noise must be >= 0, got {}", self.noise));
        }
        Ok(())
    }

    /// The upcycled decoder: each dense FFN copied into `experts` experts.
    pub fn apply(&self, d: &Decoder) -> crate::error::Result<Decoder> {
        if d.config().experts > 0 {
            return Err(crate::Error::Model(
                "upcycle needs a dense model, but this one already has experts; drop the `upcycle` table".into(),
            ));
        }
        let hidden = d.config().hidden;
        let device = d.device().clone();
        let mut rng = seeded(self.seed, &["moe-upcycle"]);
        let mut noisy = |w: &Tensor| -> crate::error::Result<Tensor> {
            if self.noise == 0.0 {
                return Ok(w.clone());
            }
            let rms = w
                .to_dtype(candle_core::DType::F32)?
                .sqr()?
                .mean_all()?
                .to_scalar::<f32>()?
                .sqrt() as f64;
            let n: Vec<f32> = (0..w.elem_count())
                .map(|_| (standard_normal(&mut rng) * self.noise * rms) as f32)
                .collect();
            Ok((w + Tensor::from_vec(n, w.shape(), &device)?.to_dtype(w.dtype())?)?)
        };
        let mut layers_routers = Vec::new();
        {
            let mut rr = seeded(self.seed, &["moe-router"]);
            for _ in 0..d.config().layers {
                let v: Vec<f32> = match self.router {
                    RouterInit::Random => (0..hidden * self.experts)
                        .map(|_| (standard_normal(&mut rr) / (hidden as f64).sqrt()) as f32)
                        .collect(),
                    RouterInit::Uniform => vec![0.0; hidden * self.experts],
                };
                layers_routers.push(Tensor::from_vec(v, (hidden, self.experts), &device)?.to_dtype(d.dtype())?);
            }
        }
        d.map_ffn(self.experts, self.top_k, |li, ffn| {
            let Ffn::Dense(mlp) = ffn else {
                return Err(crate::Error::Model("upcycle needs dense FFN layers".into()));
            };
            // Without noise every expert is a copy of the base block as held (its own memory:
            // an MoE's experts are resident each); with noise a perturbed copy held in the
            // base's format (a quantized model's experts are quantized alike, so MoE and dense
            // compare like with like).
            let (gate_up, down) = mlp.weights();
            let experts = (0..self.experts)
                .map(|_| {
                    if self.noise == 0.0 {
                        return mlp.deep_copy();
                    }
                    Mlp::new(
                        gate_up.held_like(noisy(&mlp.gate()?)?)?,
                        gate_up.held_like(noisy(&mlp.up()?)?)?,
                        down.held_like(noisy(&mlp.down()?)?)?,
                    )
                })
                .collect::<crate::error::Result<Vec<_>>>()?;
            Ok(Ffn::Moe(Moe {
                router: layers_routers[li].clone(),
                experts,
                top_k: self.top_k,
            }))
        })
    }
}

impl MethodSpec for Spec {
    fn id(&self) -> &'static str {
        "moe"
    }
    fn manifest(&self) -> Option<&'static str> {
        Some(include_str!("manifest.toml"))
    }
    fn about(&self) -> &'static str {
        "sparse mixture of experts (synthetic, Mixtral directory, or upcycled from a dense model); all experts resident"
    }
    fn keys(&self) -> &'static [ConfigKey] {
        crate::generation_keys!(ConfigKey {
            name: "upcycle",
            default: "(none)",
            help: "turn a dense model into experts: { experts, top_k = 2, noise = 0.0, router = \"random\" | \"uniform\", seed = 0 }",
        })
    }
    fn build(&self, config: &ConfigTable, ctx: &BuildContext) -> Result<Box<dyn Method>, MethodError> {
        let (generator, rest) = Generator::from_config(config, ctx)?;
        let own: MoeConfig = rest.decode()?;
        if let Some(u) = &own.upcycle {
            u.validate().map_err(|m| config.error("upcycle", m))?;
        } else if let crate::model::ModelSpec::Synthetic(s) = &generator.cfg.model
            && s.experts == 0
        {
            return Err(config
                .error(
                    "model",
                    "moe needs experts: set `experts` (and `top_k`) in the synthetic model, load a Mixtral directory, or add an `upcycle` table",
                )
                .into());
        }
        Ok(Box::new(MoeMethod {
            generator,
            upcycle: own.upcycle,
            model: None,
        }))
    }
}

/// A moe instance.
pub struct MoeMethod {
    generator: Generator,
    upcycle: Option<Upcycle>,
    model: Option<LoadedModel>,
}

impl Method for MoeMethod {
    fn prepare(&mut self) -> Result<(), MethodError> {
        let upcycle = self.upcycle.clone();
        let m = self.generator.load_then(|mut m| {
            if let Some(u) = &upcycle {
                m.decoder = u.apply(&m.decoder)?;
                m.name = format!("{} upcycled to {}x top-{}", m.name, u.experts, u.top_k);
            }
            if m.decoder.config().experts == 0 {
                return Err(MethodError::failed(format!(
                    "moe: {} is a dense model; add an `upcycle` table to the method",
                    m.name
                )));
            }
            Ok(m)
        })?;
        self.model = Some(m);
        Ok(())
    }

    fn serve(
        &mut self,
        request: &Request,
        sink: &mut dyn TokenSink,
        probe: &mut Probe,
    ) -> Result<Completion, MethodError> {
        let m = crate::generate::prepared(&self.model, "moe")?;
        m.decoder.take_moe_counters();
        let result = serve_autoregressive(&self.generator, m, "dense-sampling", request, sink, probe);
        let c = m.decoder.take_moe_counters();
        for (i, n) in c.per_expert().iter().enumerate() {
            probe.set(format!("expert_{i}_tokens"), *n as f64);
        }
        probe.set("router_ms", c.router_s * 1e3);
        probe.set("load_cv", c.load_cv());
        result
    }

    fn detokenize(&self, ids: &[u32]) -> Option<String> {
        self.model.as_ref().map(|m| m.tokenizer.decode(ids))
    }

    fn weight_bytes(&self) -> Option<u64> {
        self.model.as_ref().map(|m| m.decoder.weight_bytes() as u64)
    }

    fn cold_start_s(&self) -> Option<f64> {
        self.generator.cold_start().map(|c| c.total_s())
    }

    fn facts(&self) -> BTreeMap<String, serde_json::Value> {
        let mut f = self.generator.facts(self.model.as_ref());
        let source = match (&self.upcycle, &self.generator.cfg.model) {
            (Some(_), _) => "upcycled",
            (None, crate::model::ModelSpec::Synthetic(_)) => "synthetic",
            (None, _) => "loaded",
        };
        f.insert("moe_source".into(), json!(source));
        if let Some(u) = &self.upcycle {
            f.insert(
                "upcycle".into(),
                json!({"experts": u.experts, "top_k": u.top_k, "noise": u.noise, "router": format!("{:?}", u.router).to_lowercase(), "seed": u.seed}),
            );
        }
        f
    }
}
