//! The explicit per-layer key/value cache every method drives: snapshot by cloning,
//! truncated for rollback, re-indexed for beams.

use candle_core::Tensor;

use crate::error::{Error, Result};

/// Per-layer key/value cache for one sequence. Cloning it is a cheap, safe snapshot.
#[derive(Debug, Clone)]
pub struct KvCache {
    pub(super) kv: Vec<Option<(Tensor, Tensor)>>,
    pub(super) len: usize,
}

impl KvCache {
    /// An empty cache for `layers` layers (fewer than the model's for an early-exit draft).
    pub fn new(layers: usize) -> Self {
        Self {
            kv: vec![None; layers],
            len: 0,
        }
    }

    /// Tokens cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Layers it holds.
    pub fn layers(&self) -> usize {
        self.kv.len()
    }

    /// Drops every cached position from `len` on.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len >= self.len {
            return Ok(());
        }
        for slot in &mut self.kv {
            if let Some((k, v)) = slot.take()
                && len > 0
            {
                *slot = Some((k.narrow(1, 0, len)?, v.narrow(1, 0, len)?));
            }
        }
        self.len = len;
        Ok(())
    }

    /// Keeps only the cached positions `rows`, in that order (re-indexing for beams and
    /// tree-shaped sequences). Positions baked into the keys by RoPE are kept as they were.
    pub fn select(&mut self, rows: &[usize]) -> Result<()> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.len) {
            return Err(Error::Request(format!(
                "cache row {bad} selected, but the cache holds {} positions",
                self.len
            )));
        }
        if rows.is_empty() {
            self.kv.iter_mut().for_each(|s| *s = None);
            self.len = 0;
            return Ok(());
        }
        let device = self.kv.iter().flatten().next().map(|(k, _)| k.device().clone());
        if let Some(device) = device {
            let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
            let idx = Tensor::new(idx.as_slice(), &device)?;
            for (k, v) in self.kv.iter_mut().flatten() {
                *k = k.index_select(&idx, 1)?;
                *v = v.index_select(&idx, 1)?;
            }
        }
        self.len = rows.len();
        Ok(())
    }

    /// Bytes held by the cache.
    pub fn bytes(&self) -> usize {
        self.kv
            .iter()
            .flatten()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
            .sum()
    }
}
