//! Precise waiting on the monotonic clock.
//!
//! The dispatcher must release each request at its intended time with sub-millisecond
//! accuracy. OS sleeps overshoot by 50 µs to several ms, so we sleep until a short margin
//! before the deadline and spin the rest. **Overhead model:** at most [`SPIN_MARGIN`] of
//! busy-waiting per released request on the dispatcher thread (≈ 0.15% of one core at 1 req/s).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long before a deadline we stop sleeping and start spinning.
pub const SPIN_MARGIN: Duration = Duration::from_micros(1500);
/// Longest single sleep, so an abort is noticed promptly.
const MAX_NAP: Duration = Duration::from_millis(50);

/// Waits until `deadline`: sleeps until [`SPIN_MARGIN`] before it, then spins. Returns
/// `false` (early) if `stop` becomes true while sleeping.
pub fn wait_until(deadline: Instant, stop: &AtomicBool) -> bool {
    if !sleep_until(deadline.checked_sub(SPIN_MARGIN).unwrap_or(deadline), stop) {
        return false;
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
    true
}

/// Sleeps until `deadline` without spinning (the OS may overshoot by its timer slack);
/// for periodic work that timestamps what it does, like the energy sampler. Returns `false`
/// (early) if `stop` becomes true while waiting.
pub fn sleep_until(deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(MAX_NAP));
    }
}

/// Raises the calling thread's scheduling priority so a release is not delayed behind the
/// method's threads or the harness's own when the dispatcher wakes: real-time `SCHED_FIFO`
/// (priority 10) where permitted — the dispatcher sleeps between releases and spins at most
/// [`SPIN_MARGIN`] per release, and the kernel's real-time throttling bounds it regardless —
/// else nice −10. Best effort: returns what was done, or why not, for run.json.
pub fn raise_thread_priority() -> String {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain calls on the calling thread's own handle / id; no memory is shared
        // beyond the parameter struct, which outlives the call.
        let fifo = unsafe {
            let param = libc::sched_param { sched_priority: 10 };
            libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param)
        };
        if fifo == 0 {
            return "SCHED_FIFO priority 10 (real-time)".to_string();
        }
        let fifo_err = std::io::Error::from_raw_os_error(fifo);
        // SAFETY: as above.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, -10)
        };
        if rc == 0 {
            format!("nice -10 (raised; SCHED_FIFO refused: {fifo_err})")
        } else {
            format!(
                "unchanged (SCHED_FIFO refused: {fifo_err}; nice: {})",
                std::io::Error::last_os_error()
            )
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        "unchanged (not supported on this OS)".to_string()
    }
}

/// Seconds from `epoch` to `t` (negative if `t` is earlier).
pub fn secs_since(epoch: Instant, t: Instant) -> f64 {
    match t.checked_duration_since(epoch) {
        Some(d) => d.as_secs_f64(),
        None => -(epoch - t).as_secs_f64(),
    }
}

/// Wall-clock time now as an RFC 3339 UTC string (provenance only; never for durations).
pub fn utc_now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    utc_rfc3339(now.as_secs_f64())
}

/// A Unix time (s) as an RFC 3339 UTC string, to the second.
pub fn utc_rfc3339(unix_s: f64) -> String {
    let secs = unix_s.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The same instant in a form safe for directory names: `20261123T101500Z`.
pub fn utc_stamp(rfc3339: &str) -> String {
    rfc3339.chars().filter(|c| !matches!(c, '-' | ':')).collect()
}

/// Gregorian date from days since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn wait_never_returns_early_and_honours_stop() {
        let stop = AtomicBool::new(false);
        let deadline = Instant::now() + Duration::from_millis(3);
        assert!(wait_until(deadline, &stop));
        assert!(Instant::now() >= deadline);
        stop.store(true, Ordering::Relaxed);
        assert!(!wait_until(Instant::now() + Duration::from_secs(10), &stop));
    }

    #[test]
    fn stamp_is_path_safe() {
        assert_eq!(utc_stamp("2026-11-23T10:15:00Z"), "20261123T101500Z");
    }
}
