//! `speculative` — speculative decoding: a cheap draft proposes γ tokens, the target checks
//! them all in one forward pass, and the longest acceptable prefix is kept.
//!
//! Drafts: a separate model (`draft = { model = { … } }`; its vocabulary must match the
//! target's), or the target's own first k layers (`draft = { layers = k }`, self-speculative:
//! early exit through the shared weights, then the shared final norm and head).
//!
//! Verification: greedy decoding accepts a drafted token when it equals the target's argmax
//! at that position, so the output equals greedy `dense` token for token. Under sampling it
//! applies the rejection rule of Leviathan et al. (2023) and Chen et al. (2023): accept d
//! with probability min(1, p(d)/q(d)); on the first rejection draw from norm(max(0, p − q));
//! when all γ are accepted draw a bonus token from the target's next distribution. p and q
//! are the distributions after temperature / top-k / top-p, so the output is distributed
//! exactly as the target's. Rollback truncates both KV caches.
//!
//! γ is fixed (`gamma`) or adaptive (`adaptive = true`: +2 after a fully accepted block,
//! −1 otherwise, within [1, `gamma_max`] — the "heuristic" schedule of Hugging Face
//! transformers' assisted generation).
//!
//! **Overhead model:** per block, γ draft forwards (each through k layers or the draft
//! model) plus one target forward over γ + 1 positions, which costs little more than one
//! decode step while decode is memory-bound; rejected tokens are wasted draft work and
//! wasted verify positions. Phases: `prefill` (both prompts), `draft`, `verify`. Counters:
//! `drafted`, `accepted`, `acceptance_rate`, `mean_acceptance_length` (tokens per verify
//! pass = 1 + accepted / verify steps), `verify_steps`, and per position i (1-based)
//! `drafted_pos_i` / `accepted_pos_i`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use oae_core::config::ConfigTable;
use oae_core::rng::{SeededRng, open01};
use oae_harness::{BuildContext, Completion, ConfigKey, Method, MethodError, MethodSpec, Probe, TokenSink};
use oae_workloads::Request;

use crate::generate::Generator;
use crate::model::{
    KvCache, LoadedModel, Logits, ModelSpec, Sampling, all_rows, argmax, last_row, probabilities, sample_from,
};

/// The registry entry.
pub struct Spec;
/// The registry entry, for [`crate::registry`].
pub static SPEC: Spec = Spec;

/// Where drafts come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftConfig {
    /// Self-speculative: the target's first `layers` layers.
    #[serde(default)]
    pub layers: Option<usize>,
    /// A separate draft model.
    #[serde(default)]
    pub model: Option<ModelSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecConfig {
    draft: DraftConfig,
    #[serde(default = "four")]
    gamma: usize,
    #[serde(default)]
    adaptive: bool,
    #[serde(default = "eight")]
    gamma_max: usize,
}

fn four() -> usize {
    4
}
fn eight() -> usize {
    8
}

/// The outcome of verifying one drafted block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Drafted tokens accepted (a prefix of the block).
    pub accepted: usize,
    /// The token the target adds after them (a correction or the bonus token).
    pub next: u32,
}

/// Verifies `drafts` (drawn from the draft distributions `q`, one per draft) against the
/// target distributions `p` (one per draft, plus one for the position after the block).
/// `greedy` accepts by exact match with the target's argmax; otherwise the rejection rule
/// keeps the output distributed as the target's.
pub fn verify(drafts: &[u32], q: &[Vec<f64>], p: &[Vec<f64>], greedy: bool, rng: &mut SeededRng) -> Verdict {
    debug_assert_eq!(p.len(), drafts.len() + 1);
    for (i, &d) in drafts.iter().enumerate() {
        let d = d as usize;
        if greedy {
            let best = argmax_f64(&p[i]);
            if best != d {
                return Verdict {
                    accepted: i,
                    next: best as u32,
                };
            }
            continue;
        }
        let (pd, qd) = (p[i][d], q[i][d]);
        let u = open01(rng);
        if qd > 0.0 && u < (pd / qd).min(1.0) {
            continue;
        }
        let residual: Vec<f64> = p[i].iter().zip(&q[i]).map(|(a, b)| (a - b).max(0.0)).collect();
        // p == q everywhere cannot reject; guard against rounding by falling back to p.
        let next = if residual.iter().sum::<f64>() > 0.0 {
            sample_from(&residual, rng)
        } else {
            sample_from(&p[i], rng)
        };
        return Verdict { accepted: i, next };
    }
    let last = &p[drafts.len()];
    let next = if greedy {
        argmax_f64(last) as u32
    } else {
        sample_from(last, rng)
    };
    Verdict {
        accepted: drafts.len(),
        next,
    }
}

fn argmax_f64(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

impl MethodSpec for Spec {
    fn id(&self) -> &'static str {
        "speculative"
    }
    fn manifest(&self) -> Option<&'static str> {
        Some(include_str!("manifest.toml"))
    }
    fn about(&self) -> &'static str {
        "speculative decoding: draft (separate model or the target's first k layers) proposes γ tokens, target verifies in one pass"
    }
    fn keys(&self) -> &'static [ConfigKey] {
        crate::generation_keys!(
            ConfigKey {
                name: "draft",
                default: "(required)",
                help: "{ layers = k } (self-speculative: the target's first k layers) or { model = { … } } (a separate model with the same vocabulary)",
            },
            ConfigKey {
                name: "gamma",
                default: "4",
                help: "tokens drafted per verify pass (the starting value when adaptive)",
            },
            ConfigKey {
                name: "adaptive",
                default: "false",
                help: "adapt gamma: +2 after a fully accepted block, -1 otherwise",
            },
            ConfigKey {
                name: "gamma_max",
                default: "8",
                help: "upper bound of adaptive gamma",
            },
        )
    }
    fn build(&self, config: &ConfigTable, ctx: &BuildContext) -> Result<Box<dyn Method>, MethodError> {
        let (generator, rest) = Generator::from_config(config, ctx)?;
        let mut own: SpecConfig = rest.decode()?;
        if own.gamma == 0 {
            return Err(config
                .error("gamma", "gamma must be at least 1 (tokens drafted per verify pass)")
                .into());
        }
        if own.adaptive && own.gamma_max < own.gamma {
            return Err(config
                .error(
                    "gamma_max",
                    format!("gamma_max ({}) must be >= gamma ({})", own.gamma_max, own.gamma),
                )
                .into());
        }
        match (&own.draft.layers, &mut own.draft.model) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(config
                    .error(
                        "draft",
                        "give exactly one of draft.layers (self-speculative) or draft.model",
                    )
                    .into());
            }
            (Some(0), None) => return Err(config.error("draft", "draft.layers must be at least 1").into()),
            (Some(k), None) => {
                if let ModelSpec::Synthetic(s) = &generator.cfg.model
                    && *k >= s.layers
                {
                    return Err(config
                        .error(
                            "draft",
                            format!("draft.layers ({k}) must be less than the target's {} layers", s.layers),
                        )
                        .into());
                }
            }
            (None, Some(m)) => {
                m.resolve_paths(config.source());
                m.check()
                    .map_err(|e| config.error("draft", format!("draft.model: {e}")))?;
            }
        }
        Ok(Box::new(Speculative {
            generator,
            cfg: own,
            target: None,
            draft: None,
        }))
    }
}

/// A speculative instance.
pub struct Speculative {
    generator: Generator,
    cfg: SpecConfig,
    target: Option<LoadedModel>,
    /// The separate draft model, when there is one.
    draft: Option<LoadedModel>,
}

/// Per-request acceptance bookkeeping.
#[derive(Default)]
struct Tally {
    drafted: u64,
    accepted: u64,
    verify_steps: u64,
    drafted_pos: Vec<u64>,
    accepted_pos: Vec<u64>,
}

impl Tally {
    fn record(&mut self, drafted: usize, accepted: usize) {
        self.verify_steps += 1;
        self.drafted += drafted as u64;
        self.accepted += accepted as u64;
        if self.drafted_pos.len() < drafted {
            self.drafted_pos.resize(drafted, 0);
            self.accepted_pos.resize(drafted, 0);
        }
        for i in 0..drafted {
            self.drafted_pos[i] += 1;
            if i < accepted {
                self.accepted_pos[i] += 1;
            }
        }
    }

    fn report(&self, probe: &mut Probe) {
        probe.set("drafted", self.drafted as f64);
        probe.set("accepted", self.accepted as f64);
        probe.set("verify_steps", self.verify_steps as f64);
        if self.drafted > 0 {
            probe.set("acceptance_rate", self.accepted as f64 / self.drafted as f64);
        }
        if self.verify_steps > 0 {
            probe.set(
                "mean_acceptance_length",
                1.0 + self.accepted as f64 / self.verify_steps as f64,
            );
        }
        for (i, (&d, &a)) in self.drafted_pos.iter().zip(&self.accepted_pos).enumerate() {
            probe.set(format!("drafted_pos_{}", i + 1), d as f64);
            probe.set(format!("accepted_pos_{}", i + 1), a as f64);
        }
    }
}

impl Speculative {
    fn draft_forward(&self, t: &LoadedModel, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, MethodError> {
        let logits = match (&self.draft, self.cfg.draft.layers) {
            (Some(d), _) => d.decoder.forward(tokens, cache, Logits::Last)?,
            (None, Some(k)) => t.decoder.forward_depth(tokens, cache, Logits::Last, k)?,
            (None, None) => return Err(MethodError::failed("speculative: no draft configured")),
        };
        Ok(last_row(&logits)?)
    }

    fn draft_layers(&self, t: &LoadedModel) -> usize {
        match &self.draft {
            Some(d) => d.decoder.config().layers,
            None => self.cfg.draft.layers.unwrap_or(t.decoder.config().layers),
        }
    }
}

impl Method for Speculative {
    fn prepare(&mut self) -> Result<(), MethodError> {
        let target = self.generator.load()?;
        let layers = target.decoder.config().layers;
        if let Some(k) = self.cfg.draft.layers
            && k >= layers
        {
            return Err(MethodError::failed(format!(
                "speculative: draft.layers ({k}) must be less than the target's {layers} layers"
            )));
        }
        if let Some(spec) = &self.cfg.draft.model {
            let draft = self.generator.load_extra(spec)?;
            let (tv, dv) = (target.decoder.config().vocab_size, draft.decoder.config().vocab_size);
            let (tt, dt) = (target.tokenizer.vocab_size(), draft.tokenizer.vocab_size());
            if tv != dv || tt != dt || target.tokenizer.name() != draft.tokenizer.name() {
                return Err(MethodError::failed(format!(
                    "speculative: draft.model's vocabulary ({} tokens, {dv} logits, tokenizer {}) differs from the target's ({} tokens, {tv} logits, tokenizer {}); draft and target must share a tokenizer",
                    dt,
                    draft.tokenizer.name(),
                    tt,
                    target.tokenizer.name()
                )));
            }
            self.draft = Some(draft);
        }
        self.target = Some(target);
        Ok(())
    }

    fn serve(
        &mut self,
        request: &Request,
        sink: &mut dyn TokenSink,
        probe: &mut Probe,
    ) -> Result<Completion, MethodError> {
        let t = crate::generate::prepared(&self.target, "speculative")?;
        let sampling: Sampling = self.generator.sampling;
        let greedy = sampling.is_greedy();
        probe.phase("prefill");
        let ids = self.generator.prompt(t, request)?;
        let mut rng = self.generator.rng("speculative-sampling", request);
        let mut tcache = KvCache::new(t.decoder.config().layers);
        let mut dcache = KvCache::new(self.draft_layers(t));
        let row = last_row(&t.decoder.forward(&ids, &mut tcache, Logits::Last)?)?;
        let first = if greedy {
            argmax(&row)
        } else {
            sample_from(&probabilities(&row, &sampling), &mut rng)
        };
        let mut out = self.generator.emitter(t, request);
        let mut tally = Tally::default();
        let mut gamma = self.cfg.gamma;
        let mut seq = ids.clone();
        let stop = 'generation: {
            if let Some(stop) = out.push(first, sink) {
                break 'generation stop;
            }
            seq.push(first);
            loop {
                // Invariant: the target cache holds every token of `seq` but the last.
                let g = gamma.min(out.remaining().saturating_sub(1) as usize);
                probe.phase("draft");
                let mut drafts = Vec::with_capacity(g);
                let mut qs = Vec::with_capacity(g);
                if g > 0 {
                    let mut feed = seq[dcache.len()..].to_vec();
                    for _ in 0..g {
                        let row = self.draft_forward(t, &feed, &mut dcache)?;
                        let q = probabilities(&row, &sampling);
                        let d = if greedy {
                            argmax(&row)
                        } else {
                            sample_from(&q, &mut rng)
                        };
                        drafts.push(d);
                        qs.push(q);
                        feed = vec![d];
                    }
                }
                probe.phase("verify");
                let base = tcache.len();
                let mut block = Vec::with_capacity(g + 1);
                block.push(seq[seq.len() - 1]);
                block.extend_from_slice(&drafts);
                let rows = all_rows(&t.decoder.forward(&block, &mut tcache, Logits::All)?)?;
                let ps: Vec<Vec<f64>> = rows.iter().map(|r| probabilities(r, &sampling)).collect();
                let v = verify(&drafts, &qs, &ps, greedy, &mut rng);
                tcache.truncate(base + 1 + v.accepted)?;
                dcache.truncate(dcache.len().min(seq.len() + v.accepted))?;
                if g > 0 {
                    tally.record(g, v.accepted);
                }
                if self.cfg.adaptive && g > 0 {
                    gamma = if v.accepted == g {
                        (gamma + 2).min(self.cfg.gamma_max)
                    } else {
                        gamma.saturating_sub(1).max(1)
                    };
                }
                for &d in &drafts[..v.accepted] {
                    if let Some(stop) = out.push(d, sink) {
                        break 'generation stop;
                    }
                    seq.push(d);
                }
                if let Some(stop) = out.push(v.next, sink) {
                    break 'generation stop;
                }
                seq.push(v.next);
            }
        };
        probe.end();
        tally.report(probe);
        probe.set("kv_tokens", tcache.len() as f64);
        probe.set("kv_bytes_peak", (tcache.bytes() + dcache.bytes()) as f64);
        Ok(Completion::new(ids.len() as u32, stop))
    }

    /// The target's weights plus a separate draft model's (a self-draft shares the target's).
    fn detokenize(&self, ids: &[u32]) -> Option<String> {
        self.target.as_ref().map(|m| m.tokenizer.decode(ids))
    }

    fn weight_bytes(&self) -> Option<u64> {
        let target = self.target.as_ref()?.decoder.weight_bytes() as u64;
        Some(target + self.draft.as_ref().map_or(0, |d| d.decoder.weight_bytes() as u64))
    }

    fn cold_start_s(&self) -> Option<f64> {
        self.generator.cold_start().map(|c| c.total_s())
    }

    fn facts(&self) -> BTreeMap<String, serde_json::Value> {
        let mut f = self.generator.facts(self.target.as_ref());
        let draft = match (&self.draft, self.cfg.draft.layers) {
            (Some(d), _) => json!({"kind": "model", "model": d.name, "params": d.decoder.config().params()}),
            (None, Some(k)) => json!({"kind": "self", "layers": k}),
            (None, None) => json!(null),
        };
        f.insert("draft".into(), draft);
        f.insert(
            "gamma".into(),
            json!({"start": self.cfg.gamma, "adaptive": self.cfg.adaptive, "max": self.cfg.gamma_max}),
        );
        if let ModelSpec::Synthetic(s) = &self.generator.cfg.model {
            f.insert("residual_scale".into(), json!(s.residual_scale));
        }
        f
    }
}
