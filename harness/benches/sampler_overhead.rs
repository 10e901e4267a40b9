//! Sampler overhead. Target (issue: energy and carbon): ≤ 1% of one core at 20 Hz, measured
//! as CPU time over an idle minute.
//!
//! Starts the sampler on every meter that opens here (`oae list meters`) at a 50 ms grid, lets
//! the process sit idle for OAE_BENCH_SECONDS (default 60), and divides the process's CPU time
//! (user + system, getrusage) by the wall time. The main thread only sleeps, so the figure is
//! the sampler's cost, plus a negligible constant.
//!
//! `cargo bench -p oae-harness --bench sampler_overhead`

use std::time::{Duration, Instant};

fn cpu_s() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: f64 = std::env::var("OAE_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60.0);
    let opened = oae_harness::meters::open_all(&oae_harness::meters::MeterConfig::default());
    let names: Vec<String> = opened
        .meters
        .iter()
        .map(|m| format!("{}:{}", m.name(), m.domain()))
        .collect();
    let (c0, t0) = (cpu_s(), Instant::now());
    let sampler = oae_harness::meters::Sampler::start(opened.meters, Duration::from_millis(50), t0);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let timeline = sampler.stop();
    let (cpu, wall) = (cpu_s() - c0, t0.elapsed().as_secs_f64());
    println!(
        "sampler at 20 Hz on [{}]: {} samples in {wall:.1} s, CPU {cpu:.3} s = {:.3}% of one core (target ≤ 1%), max grid gap {:.1} ms",
        names.join(", "),
        timeline.samples.len(),
        100.0 * cpu / wall,
        timeline.max_gap_ms
    );
}
