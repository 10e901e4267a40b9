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
        crate::generation_keys!(WIDTH_KEY, PENALTY_KEY, EARLY_KEY)
    }
    fn build(&self, config: &ConfigTable, ctx: &BuildContext) -> Result<Box<dyn Method>, MethodError> {
        Ok(Box::new(Beam::new(config, ctx, "beam", batch)?))
    }
}

/// `width` in `oae list methods`.
pub(crate) const WIDTH_KEY: ConfigKey = ConfigKey {
    name: "width",
    default: "4",
    help: "beams kept per step (1 = greedy)",
};
/// `length_penalty` in `oae list methods`.
pub(crate) const PENALTY_KEY: ConfigKey = ConfigKey {
    name: "length_penalty",
    default: "1.0",
    help: "score = summed log-prob / length^length_penalty (0 = none)",
};
/// `early_stopping` in `oae list methods`.
pub(crate) const EARLY_KEY: ConfigKey = ConfigKey {
    name: "early_stopping",
    default: "true",
    help: "stop once `width` hypotheses have finished",
};

/// Builds a [`BatchFrontier`] over a prompt.
fn batch<'a>(m: &'a LoadedModel, prompt: &[u32]) -> Result<Box<dyn Frontier + 'a>, MethodError> {
    Ok(Box::new(BatchFrontier::new(m, prompt)?))
}

/// How a beam method keeps its beams: a frontier over a prompt.
pub(crate) type MakeFrontier = for<'a> fn(&'a LoadedModel, &[u32]) -> Result<Box<dyn Frontier + 'a>, MethodError>;

/// A beam-search instance (`beam`, and `trie-beam` with its own frontier).
pub struct Beam {
    generator: Generator,
    cfg: BeamConfig,
    model: Option<LoadedModel>,
    label: &'static str,
    make: MakeFrontier,
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

/// How the live beams' key/value state is kept and extended: one cache per beam
/// ([`BatchFrontier`]) or one shared prefix trie (`trie-beam`). The search itself
/// ([`search`]) is the same for both, so they return the same beams.
pub trait Frontier {
    /// Next-token log-probabilities of live beam `i`.
    fn next(&self, i: usize) -> &[f64];
    /// Replaces the live beams by `children` — (parent beam, token) — in order; with
    /// `score`, runs the model so that [`next`](Self::next) is defined for each child.
    fn advance(&mut self, children: &[(usize, u32)], score: bool) -> Result<(), MethodError>;
    /// Bytes of key/value cache held now.
    fn kv_bytes(&self) -> usize;
    /// Forward passes run so far (the prompt's included).
    fn forwards(&self) -> u64;
    /// Counters of its own, set on the request's probe when the search ends.
    fn counters(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
}

/// The search settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Beams kept per step.
    pub width: usize,
    /// Length-normalisation exponent.
    pub length_penalty: f64,
    /// Stop once `width` hypotheses have finished.
    pub early_stopping: bool,
    /// Tokens that end a hypothesis.
    pub stops: Vec<u32>,
}

/// Runs the search for at most `max_new` tokens over a frontier whose single live beam is
/// the prompt; counters `beams`, `forwards`, `kv_bytes_peak`, `finished_hypotheses` and
/// `score` on `probe`.
pub fn search(
    f: &mut dyn Frontier,
    s: &Settings,
    max_new: usize,
    probe: &mut Probe,
) -> Result<Hypothesis, MethodError> {
    let width = s.width;
    let norm = |logp: f64, len: usize| logp / (len.max(1) as f64).powf(s.length_penalty);
    // (tokens, summed log-probability) of each live beam, in the frontier's order.
    let mut live: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 0.0)];
    let mut finished: Vec<Hypothesis> = Vec::new();
    let mut kv_peak = f.kv_bytes();
    for step in 0..max_new {
        // Every live beam's best 2·width continuations, ranked together.
        let mut cands: Vec<(f64, usize, u32)> = Vec::new();
        for (bi, b) in live.iter().enumerate() {
            let next = f.next(bi);
            for t in best(next, 2 * width) {
                cands.push((b.1 + next[t as usize], bi, t));
            }
        }
        cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut chosen: Vec<(f64, usize, u32)> = Vec::new();
        for (rank, c) in cands.into_iter().enumerate() {
            if s.stops.contains(&c.2) {
                if rank < width {
                    let tokens = live[c.1].0.clone();
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
        if (s.early_stopping && finished.len() >= width) || chosen.is_empty() {
            live.clear();
            break;
        }
        let children: Vec<(usize, u32)> = chosen.iter().map(|c| (c.1, c.2)).collect();
        f.advance(&children, step + 1 < max_new)?;
        live = chosen
            .into_iter()
            .map(|(logp, bi, t)| {
                let mut tokens = live[bi].0.clone();
                tokens.push(t);
                (tokens, logp)
            })
            .collect();
        kv_peak = kv_peak.max(f.kv_bytes());
    }
    for (tokens, logp) in live {
        let len = tokens.len();
        finished.push(Hypothesis {
            tokens,
            logp,
            score: norm(logp, len),
            eos: false,
        });
    }
    probe.set("beams", width as f64);
    probe.set("forwards", f.forwards() as f64);
    probe.set("kv_bytes_peak", kv_peak as f64);
    probe.set("finished_hypotheses", finished.len() as f64);
    for (name, v) in f.counters() {
        probe.set(name, v);
    }
    let best = finished
        .into_iter()
        .reduce(|a, b| if b.score > a.score { b } else { a })
        .ok_or_else(|| MethodError::failed("beam search produced no hypothesis"))?;
    probe.set("score", best.score);
    Ok(best)
}

/// One KV cache per live beam; a child copies its parent's and runs its token alone.
pub struct BatchFrontier<'a> {
    m: &'a LoadedModel,
    beams: Vec<(KvCache, Vec<f64>)>,
    forwards: u64,
}

impl<'a> BatchFrontier<'a> {
    /// Prefills `prompt`: one live beam.
    pub fn new(m: &'a LoadedModel, prompt: &[u32]) -> Result<Self, MethodError> {
        let mut cache = KvCache::new(m.decoder.config().layers);
        let logits = crate::generate::prefill(m, prompt, &mut cache)?;
        Ok(Self {
            m,
            beams: vec![(cache, log_softmax(&last_row(&logits)?))],
            forwards: 1,
        })
    }
}

impl Frontier for BatchFrontier<'_> {
    fn next(&self, i: usize) -> &[f64] {
        &self.beams[i].1
    }
    fn advance(&mut self, children: &[(usize, u32)], score: bool) -> Result<(), MethodError> {
        let mut out = Vec::with_capacity(children.len());
        for &(p, t) in children {
            let mut cache = self.beams[p].0.clone();
            let next = if score {
                self.forwards += 1;
                log_softmax(&last_row(&self.m.decoder.forward(&[t], &mut cache, Logits::Last)?)?)
            } else {
                Vec::new()
            };
            out.push((cache, next));
        }
        self.beams = out;
        Ok(())
    }
    fn kv_bytes(&self) -> usize {
        self.beams.iter().map(|b| b.0.bytes()).sum()
    }
    fn forwards(&self) -> u64 {
        self.forwards
    }
}

impl Beam {
    /// Builds an instance whose beams live in `make`'s frontier; `label` names it in facts
    /// and errors.
    pub(crate) fn new(
        config: &ConfigTable,
        ctx: &BuildContext,
        label: &'static str,
        make: MakeFrontier,
    ) -> Result<Self, MethodError> {
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
        Ok(Self {
            generator,
            cfg,
            model: None,
            label,
            make,
        })
    }

    /// The search settings of this instance.
    fn settings(&self, m: &LoadedModel) -> Settings {
        Settings {
            width: self.cfg.width.get() as usize,
            length_penalty: self.cfg.length_penalty,
            early_stopping: self.cfg.early_stopping,
            stops: if self.generator.cfg.ignore_eos {
                Vec::new()
            } else {
                m.stops.clone()
            },
        }
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
        let m = crate::generate::prepared(&self.model, self.label)?;
        let ids = self.generator.prompt(m, request)?;
        let mut frontier = (self.make)(m, &ids)?;
        probe.phase("decode");
        let best = search(
            frontier.as_mut(),
            &self.settings(m),
            request.max_new_tokens as usize,
            probe,
        )?;
        probe.end();
        // The answer exists only now: every token reaches the harness at once.
        let mut stop = if best.eos { StopReason::Eos } else { StopReason::Length };
        for &t in &best.tokens {
            if sink.token(t) == oae_harness::Flow::Stop {
                stop = StopReason::Stopped;
                break;
            }
        }
        Ok(Completion::new(ids.len() as u32, stop))
    }

    fn cold_start_s(&self) -> Option<f64> {
        self.generator.cold_start().map(|c| c.total_s())
    }

    fn facts(&self) -> BTreeMap<String, serde_json::Value> {
        let mut f = self.generator.facts(self.model.as_ref());
        f.insert(
            self.label.into(),
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
