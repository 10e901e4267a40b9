//! The switch of the fused decode steps (`cpu_step`, `cuda`): on unless the environment
//! variable a path names says `0` (A/B measurements); a test chooses for its own thread and
//! counts the fused steps it took.

use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    /// A test's choice for its own thread, over the environment's.
    static CHOSEN: Cell<Option<bool>> = const { Cell::new(None) };
    /// Fused steps this thread ran.
    static STEPS: Cell<u64> = const { Cell::new(0) };
}

/// Whether a fused path is on: this thread's choice, else `var` unless it is `0` (read once
/// into `seen`).
pub(super) fn enabled(var: &str, seen: &OnceLock<bool>) -> bool {
    CHOSEN
        .with(Cell::get)
        .unwrap_or_else(|| *seen.get_or_init(|| std::env::var(var).map(|v| v != "0").unwrap_or(true)))
}

/// This thread's choice, for a pass that may run on a pool's thread ([`within`]).
pub(super) fn chosen() -> Option<bool> {
    CHOSEN.with(Cell::get)
}

/// Runs `f` on this thread under `chosen` and returns the fused steps it took, to be
/// [`adopt`]ed by the thread that asked for the pass.
pub(super) fn within<R>(chosen: Option<bool>, f: impl FnOnce() -> R) -> (R, u64) {
    let old = CHOSEN.with(|c| c.replace(chosen));
    let before = STEPS.with(Cell::get);
    let r = f();
    let steps = STEPS.with(|n| n.replace(before)) - before;
    CHOSEN.with(|c| c.set(old));
    (r, steps)
}

/// Counts steps a pass took on another thread.
pub(super) fn adopt(steps: u64) {
    STEPS.with(|n| n.set(n.get() + steps));
}

/// Counts a fused step taken.
pub(super) fn taken() {
    STEPS.with(|n| n.set(n.get() + 1));
}

/// Runs `f` with the fused paths on or off on this thread; returns its result and the fused
/// steps it took.
#[cfg(test)]
pub(super) fn with_path<R>(fused: bool, f: impl FnOnce() -> R) -> (R, u64) {
    CHOSEN.with(|c| c.set(Some(fused)));
    let before = STEPS.with(Cell::get);
    let r = f();
    CHOSEN.with(|c| c.set(None));
    (r, STEPS.with(Cell::get) - before)
}
