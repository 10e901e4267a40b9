//! `trie-beam` — beam search whose beams share one KV sequence organised as a prefix trie
//! (Chan et al., EMNLP '25): the prompt is cached once, every generated token once however
//! many beams descend from it, and each step decodes all live leaves in **one** forward pass
//! with a tree attention mask — a token attends to the prompt, its ancestors and itself, and
//! sits at position prompt + depth − 1. Branches the search drops are garbage-collected by
//! compacting the cache (`KvCache::select`) once they are at least half of the trie.
//!
//! The search (ranking, finishing, early stopping, ties) is `beam`'s own
//! ([`crate::beam::search`]): only where the beams' keys and values live differs, so it
//! returns the same beams and scores (tested at several widths and lengths).
//!
//! **Overhead model:** setup = the model. Per request: `prefill` (the prompt, once),
//! `decode` (one forward per step over all live leaves: weights read once per step instead of
//! once per beam; attention over the whole trie, masked). Counters as `beam`, plus
//! `trie_nodes_peak`, `gc_runs`, `gc_ms` and `tokens_per_forward`.

use std::time::Instant;

use candle_core::Tensor;
use oae_core::config::ConfigTable;
use oae_harness::{BuildContext, ConfigKey, Method, MethodError, MethodSpec};

use crate::beam::{Beam, EARLY_KEY, Frontier, PENALTY_KEY, WIDTH_KEY, log_softmax};
use crate::model::{KvCache, LoadedModel, Logits, all_rows, last_row};

/// The registry entry.
pub struct Spec;
/// The registry entry, for [`crate::registry`].
pub static SPEC: Spec = Spec;

impl MethodSpec for Spec {
    fn id(&self) -> &'static str {
        "trie-beam"
    }
    fn about(&self) -> &'static str {
        "beam search over one shared prefix-trie KV cache: all live beams in one forward with a tree attention mask, pruned branches garbage-collected"
    }
    fn manifest(&self) -> Option<&'static str> {
        Some(include_str!("manifest.toml"))
    }
    fn keys(&self) -> &'static [ConfigKey] {
        crate::generation_keys!(WIDTH_KEY, PENALTY_KEY, EARLY_KEY)
    }
    fn build(&self, config: &ConfigTable, ctx: &BuildContext) -> Result<Box<dyn Method>, MethodError> {
        Ok(Box::new(Beam::new(config, ctx, "trie-beam", trie)?))
    }
}

fn trie<'a>(m: &'a LoadedModel, prompt: &[u32]) -> Result<Box<dyn Frontier + 'a>, MethodError> {
    Ok(Box::new(TrieFrontier::new(m, prompt)?))
}

/// One trie node: a generated token cached at row `prompt + index`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    parent: Option<usize>,
    depth: usize,
}

/// The live beams as leaves of a prefix trie over one KV cache.
pub struct TrieFrontier<'a> {
    m: &'a LoadedModel,
    cache: KvCache,
    prompt: usize,
    /// Node `i` is cache row `prompt + i`.
    nodes: Vec<Node>,
    /// Live leaves: their node (`None`: the prompt itself) and next-token log-probabilities.
    leaves: Vec<(Option<usize>, Vec<f64>)>,
    forwards: u64,
    tokens_forwarded: u64,
    nodes_peak: usize,
    gc_runs: u64,
    gc_s: f64,
}

impl<'a> TrieFrontier<'a> {
    /// Prefills `prompt`: the root, one live leaf.
    pub fn new(m: &'a LoadedModel, prompt: &[u32]) -> Result<Self, MethodError> {
        let mut cache = KvCache::new(m.decoder.config().layers);
        let logits = crate::generate::prefill(m, prompt, &mut cache)?;
        Ok(Self {
            m,
            cache,
            prompt: prompt.len(),
            nodes: Vec::new(),
            leaves: vec![(None, log_softmax(&last_row(&logits)?))],
            forwards: 1,
            tokens_forwarded: 0,
            nodes_peak: 0,
            gc_runs: 0,
            gc_s: 0.0,
        })
    }

    /// Nodes in the trie now (reachable or not).
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Nodes some live leaf descends through (itself included).
    pub fn reachable(&self) -> usize {
        self.marks().iter().filter(|&&m| m).count()
    }

    fn marks(&self) -> Vec<bool> {
        let mut keep = vec![false; self.nodes.len()];
        for &(leaf, _) in &self.leaves {
            let mut n = leaf;
            while let Some(i) = n {
                if keep[i] {
                    break;
                }
                keep[i] = true;
                n = self.nodes[i].parent;
            }
        }
        keep
    }

    /// Drops the nodes no live leaf descends through, compacting the cache — when they are
    /// at least half of the trie, or always with `force`.
    pub fn collect(&mut self, force: bool) -> Result<(), MethodError> {
        let keep = self.marks();
        let kept = keep.iter().filter(|&&k| k).count();
        let garbage = self.nodes.len() - kept;
        if garbage == 0 || (!force && garbage < kept) {
            return Ok(());
        }
        let t = Instant::now();
        let mut remap = vec![usize::MAX; self.nodes.len()];
        let mut rows: Vec<usize> = (0..self.prompt).collect();
        let mut nodes = Vec::with_capacity(kept);
        for (i, n) in self.nodes.iter().enumerate() {
            if keep[i] {
                remap[i] = nodes.len();
                rows.push(self.prompt + i);
                nodes.push(Node {
                    parent: n.parent.map(|p| remap[p]),
                    depth: n.depth,
                });
            }
        }
        self.cache.select(&rows)?;
        self.nodes = nodes;
        for leaf in &mut self.leaves {
            leaf.0 = leaf.0.map(|i| remap[i]);
        }
        self.gc_runs += 1;
        self.gc_s += t.elapsed().as_secs_f64();
        Ok(())
    }
}

impl Frontier for TrieFrontier<'_> {
    fn next(&self, i: usize) -> &[f64] {
        &self.leaves[i].1
    }

    fn advance(&mut self, children: &[(usize, u32)], score: bool) -> Result<(), MethodError> {
        if !score {
            // The search ends with these tokens: nothing more to run.
            self.leaves = children.iter().map(|_| (None, Vec::new())).collect();
            return Ok(());
        }
        let (old, base, n) = (self.nodes.len(), self.cache.len(), children.len());
        let mut tokens = Vec::with_capacity(n);
        let mut positions = Vec::with_capacity(n);
        for &(p, t) in children {
            let parent = self.leaves[p].0;
            let depth = parent.map_or(0, |i| self.nodes[i].depth) + 1;
            self.nodes.push(Node { parent, depth });
            tokens.push(t);
            positions.push((self.prompt + depth - 1) as u32);
        }
        // Row j: the prompt, the ancestors of child j, and child j itself.
        let total = base + n;
        let mut mask = vec![f32::NEG_INFINITY; n * total];
        for j in 0..n {
            let row = &mut mask[j * total..(j + 1) * total];
            row[..self.prompt].fill(0.0);
            let mut a = self.nodes[old + j].parent;
            while let Some(i) = a {
                row[self.prompt + i] = 0.0;
                a = self.nodes[i].parent;
            }
            row[base + j] = 0.0;
        }
        let mask = Tensor::from_vec(mask, (n, total), self.m.decoder.device()).map_err(crate::Error::from)?;
        let logits = self
            .m
            .decoder
            .forward_at(&tokens, &positions, Some(&mask), &mut self.cache, Logits::All)?;
        let rows = all_rows(&logits)?;
        self.leaves = rows
            .iter()
            .enumerate()
            .map(|(j, r)| (Some(old + j), log_softmax(r)))
            .collect();
        self.forwards += 1;
        self.tokens_forwarded += n as u64;
        self.nodes_peak = self.nodes_peak.max(self.nodes.len());
        self.collect(false)
    }

    fn kv_bytes(&self) -> usize {
        self.cache.bytes()
    }

    fn forwards(&self) -> u64 {
        self.forwards
    }

    fn counters(&self) -> Vec<(&'static str, f64)> {
        let steps = self.forwards.saturating_sub(1).max(1);
        vec![
            ("trie_nodes_peak", self.nodes_peak as f64),
            ("gc_runs", self.gc_runs as f64),
            ("gc_ms", self.gc_s * 1e3),
            ("tokens_per_forward", self.tokens_forwarded as f64 / steps as f64),
        ]
    }
}
