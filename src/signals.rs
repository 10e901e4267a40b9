//! Stopping on a signal: SIGINT (Ctrl-C), SIGTERM (what Slurm, Kubernetes and `kill` send at
//! a time limit or preemption) and SIGHUP (a closed terminal) all stop a run the same way —
//! the request in service finishes or is recorded, the run is written `aborted` with the
//! signal as its reason — and the process exits with 128 + the signal's number (130, 143,
//! 129). A second signal exits at once with that code; what was written stays written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::Context;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The stop flag the harness polls, and the signal that set it.
#[derive(Clone)]
pub struct Stop {
    /// Set by the first signal.
    pub flag: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
}

impl Stop {
    /// 128 + the signal's number, once one came.
    pub fn exit_code(&self) -> Option<u8> {
        let s = self.signal.load(Ordering::SeqCst);
        (s > 0).then(|| u8::try_from(128 + s).unwrap_or(128))
    }
}

fn name(signal: i32) -> Option<&'static str> {
    match signal {
        SIGINT => Some("SIGINT"),
        SIGTERM => Some("SIGTERM"),
        SIGHUP => Some("SIGHUP"),
        _ => None,
    }
}

/// Handles SIGINT, SIGTERM and SIGHUP from now on; `what` says what stopping does.
pub fn install(what: &'static str) -> anyhow::Result<Stop> {
    let stop = Stop {
        flag: Arc::new(AtomicBool::new(false)),
        signal: Arc::new(AtomicI32::new(0)),
    };
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing the signal handlers")?;
    let s = stop.clone();
    std::thread::Builder::new()
        .name("oae-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let n = name(sig).unwrap_or("a signal");
                if s.flag.load(Ordering::SeqCst) {
                    eprintln!("\n{n} again: exiting now; what was written stays written");
                    std::process::exit(128 + sig);
                }
                // The reason first: the harness reads it once it sees the flag.
                s.signal.store(sig, Ordering::SeqCst);
                oae_harness::session::set_stop_reason(&format!("interrupted by {n}"));
                s.flag.store(true, Ordering::SeqCst);
                eprintln!("\n{n}: stopping — {what} (send it again to quit now)");
            }
        })
        .context("starting the signal thread")?;
    Ok(stop)
}
