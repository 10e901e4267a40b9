//! `beam` — batch beam search, the baseline trie-based beam search is measured against: every
//! beam keeps its own KV cache (a branch copies its parent's), each step runs one forward per
//! live beam, and the `width` best continuations survive.
//!
//! Scoring: a hypothesis's score is its summed token log-probability divided by
//! `length ^ length_penalty` (generated tokens; 0 = no normalisation, 1 = mean log-prob).
//! Each step ranks every beam's `2 × width` best next tokens by summed log-probability — ties
//! to the lower beam, then the lower token id, so the search is deterministic. An
//! end-of-sequence candidate ranked within the first `width` finishes a hypothesis; the others
//! continue until `width` beams are live. With `early_stopping` (default) the search ends as
//! soon as `width` hypotheses have finished; at `max_new_tokens` the live beams finish as they
//! are. The best finished hypothesis is the answer. Width 1 is greedy decoding (tested).
//!
//! **Overhead model:** setup = the model, as `dense`. Per request: `prefill` (the prompt once,
//! shared by every beam), `decode` (one forward per live beam per step: latency grows with
//! the width; every branch copies a whole KV cache). The answer is known only when the search
//! ends, so every token reaches the harness then: TTFT ≈ E2E. Counters: `beams` (width),
//! `forwards`, `kv_bytes_peak` (all live beams' caches together, at their largest),
//! `finished_hypotheses`, `score` (the answer's normalised log-probability).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use oae_core::config::{ConfigTable, PositiveU32};
use oae_harness::{BuildContext, Completion, ConfigKey, Method, MethodError, MethodSpec, Probe, StopReason, TokenSink};
use oae_workloads::Request;

use crate::generate::Generator;
use crate::model::{KvCache, LoadedModel, Logits, last_row};

/// The registry entry.
pub struct Spec;
/// The registry entry, for [`crate::registry`].
pub static SPEC: Spec = Spec;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BeamConfig {
    #[serde(default = "default_width")]
    width: PositiveU32,
    #[serde(default = "default_penalty")]
    length_penalty: f64,
    #[serde(default = "default_true")]
    early_stopping: bool,
}

fn default_width() -> PositiveU32 {
    PositiveU32(4)
}
fn default_penalty() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}

impl MethodSpec for Spec {
    fn id(&self) -> &'static str {
        "beam"
    }
    fn about(&self) -> &'static str {
        "batch beam search: one KV cache per beam (copied on branch), one forward per beam per step, length penalty, early stopping, deterministic ties"
    }
    fn manifest(&self) -> Option<&'static str> {
        Some(include_str!("manifest.toml"))
    }
    fn keys(&self) -> &'static [ConfigKey] {
        crate::generation_keys!(
            ConfigKey {
                name: "width",
                default: "4",
                help: "beams kept per step (1 = greedy)"
            },
            ConfigKey {
                name: "length_penalty",
                default: "1.0",
                help: "score = summed log-prob / length^length_penalty (0 = none)"
            },
            ConfigKey {
                name: "early_stopping",
                default: "true",
                help: "stop once `width` hypotheses have finished"
            },
        )
    }
    fn build(&self, config: &ConfigTable, ctx: &BuildContext) -> Result<Box<dyn Method>, MethodError> {
        let (generator, rest) = Generator::from_config(config, ctx)?;
        let cfg: BeamConfig = rest.decode()?;
        if !generator.sampling.is_greedy() {
            return Err(config
                .error(
                    "temperature",
                    "beam search ranks continuations by log-probability and samples nothing; leave temperature/top_k/top_p out (compare sampling with `dense`)",
                )
                .into());
        }
        if !(cfg.length_penalty.is_finite() && (0.0..=10.0).contains(&cfg.length_penalty)) {
            return Err(config
                .error(
                    "length_penalty",
                    format!("must be between 0 and 10, got {}", cfg.length_penalty),
                )
                .into());
        }
        Ok(Box::new(Beam {
            generator,
            cfg,
            model: None,
        }))
    }
}

/// A beam instance.
pub struct Beam {
    generator: Generator,
    cfg: BeamConfig,
    model: Option<LoadedModel>,
}

/// A live beam.
struct Live {
    tokens: Vec<u32>,
    logp: f64,
    cache: KvCache,
    /// Log-probabilities of the next token.
    next: Vec<f64>,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Generated tokens (without the end-of-sequence token).
    pub tokens: Vec<u32>,
    /// Summed log-probability (the end-of-sequence token's included when it ended).
    pub logp: f64,
    /// `logp / len^length_penalty`.
    pub score: f64,
    /// Whether it ended at end-of-sequence.
    pub eos: bool,
}

/// log-softmax of a logit row, in f64.
pub fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    row.iter().map(|&x| x as f64 - lse).collect()
}

/// The `n` best token ids of `lp`, best first; ties to the lower id.
fn best(lp: &[f64], n: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..lp.len() as u32).collect();
    let cmp = |a: &u32, b: &u32| lp[*b as usize].total_cmp(&lp[*a as usize]).then(a.cmp(b));
    if n < idx.len() {
        idx.select_nth_unstable_by(n, cmp);
        idx.truncate(n);
    }
    idx.sort_by(cmp);
    idx
}

impl Beam {
    /// Runs the search over `prompt` for at most `max_new` tokens; counters on `probe`.
    pub fn search(&self, prompt: &[u32], max_new: usize, probe: &mut Probe) -> Result<Hypothesis, MethodError> {
        let m = crate::generate::prepared(&self.model, "beam")?;
        let width = self.cfg.width.get() as usize;
        let alpha = self.cfg.length_penalty;
        let stops: Vec<u32> = if self.generator.cfg.ignore_eos {
            Vec::new()
        } else {
            m.stops.clone()
        };
        let norm = |logp: f64, len: usize| logp / (len.max(1) as f64).powf(alpha);
        let mut cache = KvCache::new(m.decoder.config().layers);
        let logits = crate::knowledge::prefill(m, prompt, &mut cache)?;
        let mut live = vec![Live {
            tokens: Vec::new(),
            logp: 0.0,
            cache,
            next: log_softmax(&last_row(&logits)?),
        }];
        let mut finished: Vec<Hypothesis> = Vec::new();
        let (mut forwards, mut kv_peak) = (1u64, live[0].cache.bytes());
        probe.phase("decode");
        for step in 0..max_new {
            // Every live beam's best 2·width continuations, ranked together.
            let mut cands: Vec<(f64, usize, u32)> = Vec::new();
            for (bi, b) in live.iter().enumerate() {
                for t in best(&b.next, 2 * width) {
                    cands.push((b.logp + b.next[t as usize], bi, t));
                }
            }
            cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let mut chosen: Vec<(f64, usize, u32)> = Vec::new();
            for (rank, c) in cands.into_iter().enumerate() {
                if stops.contains(&c.2) {
                    if rank < width {
                        let tokens = live[c.1].tokens.clone();
                        let len = tokens.len() + 1;
                        finished.push(Hypothesis {
                            tokens,
                            logp: c.0,
                            score: norm(c.0, len),
                            eos: true,
                        });
                    }
                } else {
                    chosen.push(c);
                }
                if chosen.len() == width {
                    break;
                }
            }
            if (self.cfg.early_stopping && finished.len() >= width) || chosen.is_empty() {
                live.clear();
                break;
            }
            let last = step + 1 == max_new;
            let mut next_live = Vec::with_capacity(chosen.len());
            for (logp, bi, t) in chosen {
                let parent = &live[bi];
                let mut tokens = parent.tokens.clone();
                tokens.push(t);
                let mut cache = parent.cache.clone();
                let next = if last {
                    Vec::new()
                } else {
                    forwards += 1;
                    log_softmax(&last_row(&m.decoder.forward(&[t], &mut cache, Logits::Last)?)?)
                };
                next_live.push(Live {
                    tokens,
                    logp,
                    cache,
                    next,
                });
            }
            live = next_live;
            kv_peak = kv_peak.max(live.iter().map(|b| b.cache.bytes()).sum());
        }
        for b in live {
            let len = b.tokens.len();
            finished.push(Hypothesis {
                tokens: b.tokens,
                logp: b.logp,
                score: norm(b.logp, len),
                eos: false,
            });
        }
        probe.set("beams", width as f64);
        probe.set("forwards", forwards as f64);
        probe.set("kv_bytes_peak", kv_peak as f64);
        probe.set("finished_hypotheses", finished.len() as f64);
        let best = finished
            .into_iter()
            .reduce(|a, b| if b.score > a.score { b } else { a })
            .ok_or_else(|| MethodError::failed("beam search produced no hypothesis"))?;
        probe.set("score", best.score);
        Ok(best)
    }
}

impl Method for Beam {
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
        probe.phase("prefill");
        let m = crate::generate::prepared(&self.model, "beam")?;
        let ids = self.generator.prompt(m, request)?;
        let best = self.search(&ids, request.max_new_tokens as usize, probe)?;
        probe.end();
        // The answer exists only now: every token reaches the harness at once.
        let mut stop = if best.eos { StopReason::Eos } else { StopReason::Length };
        for &t in &best.tokens {
            if sink.token(t) == oae_harness::Flow::Stop {
                stop = StopReason::Stopped;
                break;
            }
        }
        Ok(Completion {
            input_tokens: ids.len() as u32,
            stop,
        })
    }

    fn facts(&self) -> BTreeMap<String, serde_json::Value> {
        let mut f = self.generator.facts(self.model.as_ref());
        f.insert(
            "beam".into(),
            json!({"width": self.cfg.width.get(), "length_penalty": self.cfg.length_penalty, "early_stopping": self.cfg.early_stopping}),
        );
        f
    }

    fn detokenize(&self, ids: &[u32]) -> Option<String> {
        self.model.as_ref().map(|m| m.tokenizer.decode(ids))
    }

    fn weight_bytes(&self) -> Option<u64> {
        self.model.as_ref().map(|m| m.decoder.weight_bytes() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalises_and_best_breaks_ties_by_id() {
        let lp = log_softmax(&[1.0, 2.0, 2.0, -1.0]);
        let total: f64 = lp.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert_eq!(best(&lp, 3), [1, 2, 0]);
    }
}
