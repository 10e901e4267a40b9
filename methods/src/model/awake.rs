//! Keeps a thread pool's other workers polling for work during one forward pass, so that each
//! of the pass's parallel products starts on all threads at once.
//!
//! A rayon worker with nothing to do goes to sleep after a few rounds of looking, and waking
//! it costs about 16 µs on this project's 2-vCPU VM (a join of two 10 µs halves took 26 µs
//! after a 20 µs gap, 11 µs with none). A decode step runs about 120 products separated by
//! serial work of that order, so on two threads the wake-ups cost a fifth of the step. For
//! the span of the pass the other workers instead run a loop that takes pending work from the
//! pool (`rayon::yield_now`) and spins when there is none, as llama.cpp's threads do; the
//! loop ends with the pass. The busy-waiting is the method's own CPU time and is measured as
//! such. Only short passes on the CPU (decode steps, speculative verification) ask for it —
//! a GPU pass has no parallel products on the pool to start, and a prompt's
//! products are long enough to pay for a wake-up, and its prefill measured 15 % slower with
//! a worker polling beside its serial steps.

use std::sync::atomic::{AtomicBool, Ordering};

/// The most tokens a pass may have to run with the workers awake.
pub const SHORT_PASS: usize = 16;

/// Runs `f` with the current pool's other workers awake until it returns.
pub fn with_workers_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_num_threads() < 2 {
        return f();
    }
    let done = &AtomicBool::new(false);
    rayon::scope(|s| {
        let me = rayon::current_thread_index();
        for _ in 1..rayon::current_num_threads() {
            s.spawn(move |_| {
                // Taken by the thread running `f` (while it waits on a product of its own):
                // spinning there would wait on itself.
                if rayon::current_thread_index() == me {
                    return;
                }
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        // Between looks, a pause: looking is stealing, and a steal touches
                        // the other workers' queues.
                        for _ in 0..32 {
                            std::hint::spin_loop();
                        }
                    }
                }
            });
        }
        let r = f();
        done.store(true, Ordering::Release);
        r
    })
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    /// Parallel work inside runs on every thread and the pass returns its result, on pools
    /// of one to three threads (no thread waits on itself).
    #[test]
    fn parallel_work_inside_completes_on_any_pool() {
        for threads in 1..=3 {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let sum = pool.install(|| {
                super::with_workers_awake(|| {
                    (0..50)
                        .map(|k| (0..1000u64).into_par_iter().map(|i| i * k).sum::<u64>())
                        .sum::<u64>()
                })
            });
            assert_eq!(sum, 499_500 * 1225, "{threads} threads");
        }
        // Outside any pool too (the global one).
        assert_eq!(super::with_workers_awake(|| 7), 7);
    }
}
