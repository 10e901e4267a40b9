//! The fused decode steps (one token through the model without the op-by-op path's glue):
//! their registry, tried in order, and their switch — on unless the environment variable a
//! path names says `0` (A/B measurements); a test chooses for its own thread and counts the
//! fused steps it took.

use std::cell::Cell;
use std::sync::OnceLock;

use candle_core::Tensor;

use super::decoder::{Decoder, KvCache};
use crate::error::Result;

/// A fused step: token `token` through the first `depth` layers at RoPE position `pos`, its
/// keys and values written at `cache.len()` (the caller advances the cache), giving the
/// logits (1, vocab) in F32 — or `None` where the path does not apply, leaving the cache as
/// it was.
pub(super) type Step = fn(&Decoder, u32, usize, &mut KvCache, usize) -> Result<Option<Tensor>>;

/// The fused steps, tried in order: a new path is a module and a line here.
const STEPS: &[Step] = &[
    #[cfg(feature = "cuda")]
    super::cuda::decode_step,
    super::team_step::decode_step,
    super::cpu_step::decode_step,
];

/// The first registered step that applies (see [`Step`]).
pub(super) fn decode_step(
    d: &Decoder,
    token: u32,
    pos: usize,
    cache: &mut KvCache,
    depth: usize,
) -> Result<Option<Tensor>> {
    for step in STEPS {
        if let Some(logits) = step(d, token, pos, cache, depth)? {
            STEPS_TAKEN.with(|n| n.set(n.get() + 1));
            return Ok(Some(logits));
        }
    }
    Ok(None)
}

thread_local! {
    /// A test's choice for its own thread, over the environment's.
    static CHOSEN: Cell<Option<bool>> = const { Cell::new(None) };
    /// Fused steps this thread ran.
    static STEPS_TAKEN: Cell<u64> = const { Cell::new(0) };
}

/// Whether a fused path is on: this thread's choice, else `var` unless it is `0` (read once
/// into `seen`).
pub(super) fn enabled(var: &str, seen: &OnceLock<bool>) -> bool {
    CHOSEN
        .with(Cell::get)
        .unwrap_or_else(|| *seen.get_or_init(|| super::switch::on(var)))
}

/// This thread's choice, for a pass that may run on a pool's thread ([`within`]).
pub(super) fn chosen() -> Option<bool> {
    CHOSEN.with(Cell::get)
}

/// Runs `f` on this thread under `chosen` and returns the fused steps it took, to be
/// [`adopt`]ed by the thread that asked for the pass.
pub(super) fn within<R>(chosen: Option<bool>, f: impl FnOnce() -> R) -> (R, u64) {
    let old = CHOSEN.with(|c| c.replace(chosen));
    let before = STEPS_TAKEN.with(Cell::get);
    let r = f();
    let steps = STEPS_TAKEN.with(|n| n.replace(before)) - before;
    CHOSEN.with(|c| c.set(old));
    (r, steps)
}

/// Counts steps a pass took on another thread.
pub(super) fn adopt(steps: u64) {
    STEPS_TAKEN.with(|n| n.set(n.get() + steps));
}

/// Runs `f` with the fused paths on or off on this thread; returns its result and the fused
/// steps it took.
#[cfg(test)]
pub(super) fn with_path<R>(fused: bool, f: impl FnOnce() -> R) -> (R, u64) {
    CHOSEN.with(|c| c.set(Some(fused)));
    let before = STEPS_TAKEN.with(Cell::get);
    let r = f();
    CHOSEN.with(|c| c.set(None));
    (r, STEPS_TAKEN.with(Cell::get) - before)
}
