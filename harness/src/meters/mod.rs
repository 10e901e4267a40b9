//! The meter socket, the registry of energy sources, and the sampler thread.
//!
//! A [`Meter`] reports cumulative energy for one domain (`cpu`, `gpu:0`, `dram`) and says
//! how much to trust it ([`EnergyKind`]). The [`Sampler`] reads every meter on a fixed grid
//! on its own thread and on demand at span boundaries (setup, replay start and end), and
//! keeps the whole timeline for attribution and `timeline.csv`.
//!
//! Adding a meter = a file here with a `SPEC` and a line in [`registry`].

mod cpu_model;
pub mod nvml;
pub mod process;
pub mod rapl;
pub mod replay;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use oae_core::rundir::{EnergyKind, MeterInfo, SourceStatus};

pub use cpu_model::{Coefficients, CpuModelMeter};

use crate::clock::secs_since;

/// One reading of a meter.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MeterReading {
    /// Energy since the meter was opened, joules (non-decreasing).
    pub energy_j: f64,
    /// Mean power over the last reading interval, watts, when the meter knows it.
    pub power_w: Option<f64>,
    /// The interval ending at this reading is unknown (e.g. the hardware counter went
    /// backwards: a driver reload or reset). `energy_j` then carries the previous total, and
    /// any window containing the interval is invalid.
    pub invalid: bool,
    /// Cumulative energy at the low and high ends of the source's uncertainty band, J
    /// (estimated sources only).
    pub band_j: Option<(f64, f64)>,
    /// How long before the read the value was current, s, when the source timestamps its
    /// values (NVML field reads); the sample is placed at that earlier time.
    pub age_s: Option<f64>,
}

impl MeterReading {
    /// A plain reading: energy and, when known, power.
    pub fn new(energy_j: f64, power_w: Option<f64>) -> MeterReading {
        MeterReading {
            energy_j,
            power_w,
            ..MeterReading::default()
        }
    }
}

/// Suite settings that choose or shape the energy sources (`[energy]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeterConfig {
    /// Thermal design power of the CPU share this run is charged for, W: the modelled CPU
    /// meter then follows a TDP load curve instead of per-vCPU coefficients.
    pub cpu_tdp_w: Option<f64>,
    /// Feed this recorded `timeline.csv` instead of the machine's live sources.
    pub replay_timeline: Option<PathBuf>,
}

/// A source of energy readings for one domain.
pub trait Meter: Send {
    /// Source name, e.g. `cpu-model`.
    fn name(&self) -> &str;
    /// Domain, e.g. `cpu`, `gpu:0`.
    fn domain(&self) -> &str;
    /// Measured, integrated or estimated.
    fn kind(&self) -> EnergyKind;
    /// Smallest interval the source resolves.
    fn resolution(&self) -> Duration;
    /// Takes a reading now.
    fn read(&mut self) -> Result<MeterReading, MeterError>;
    /// What run.json should record about the source (model, coefficients, device, ...).
    fn provenance(&self) -> serde_json::Value;
    /// A process view ([`process`]): reported beside its domain's figures, never serving
    /// them or cross-checked against them.
    fn process_view(&self) -> bool {
        false
    }
}

/// What opening a source gives: its meters (one per domain), or why it is unavailable.
pub type Opened = Result<Vec<Box<dyn Meter>>, MeterError>;

/// Why a meter could not be opened or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeterError {
    /// The source cannot be used on this machine (absent, no permission, no driver), with
    /// the fix where there is one.
    #[error("{0}")]
    Unavailable(String),
    /// A reading failed; three in a row and the meter is given up on for the run.
    #[error("{1}")]
    Read(ReadErrorKind, String),
}

impl MeterError {
    /// A failed reading of no particular kind.
    pub fn read(message: impl Into<String>) -> Self {
        MeterError::Read(ReadErrorKind::Other, message.into())
    }
}

/// What kind of failure a read error was, for run.json's `read_errors_by_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadErrorKind {
    /// The query is not offered by this device or driver (now; it was at open).
    NotSupported,
    /// The device fell off the bus or the driver lost it.
    DeviceLost,
    /// Permission denied.
    Permission,
    /// The driver or file did not answer in time.
    Timeout,
    /// A file or parse error (/proc, sysfs, a replayed timeline).
    Io,
    /// Anything else, with the message in `errors`.
    Other,
}

impl ReadErrorKind {
    /// The name run.json gives the kind.
    pub fn name(self) -> &'static str {
        match self {
            ReadErrorKind::NotSupported => "not_supported",
            ReadErrorKind::DeviceLost => "device_lost",
            ReadErrorKind::Permission => "permission",
            ReadErrorKind::Timeout => "timeout",
            ReadErrorKind::Io => "io",
            ReadErrorKind::Other => "other",
        }
    }
}

/// A registry entry: how to open a meter on this machine, or why it cannot be.
pub struct MeterSpec {
    /// Source name.
    pub name: &'static str,
    /// One line for `oae list meters`.
    pub about: &'static str,
    /// Opens the source's meters (one per domain it covers), or says why it is unavailable
    /// here.
    pub open: fn(&MeterConfig) -> Opened,
    /// Whether the source works on this machine, with details or the reason and the fix —
    /// what `oae doctor` prints and run.json records (`energy.sources_checked`).
    pub check: fn(&MeterConfig) -> SourceStatus,
}

/// Every registered source's check, in registry order.
pub fn check_all(config: &MeterConfig) -> Vec<SourceStatus> {
    registry().iter().map(|s| (s.check)(config)).collect()
}

/// A check by opening the source: available with one line per meter, or the reason.
pub fn check_by_opening(name: &str, open: fn(&MeterConfig) -> Opened, config: &MeterConfig) -> SourceStatus {
    match open(config) {
        Ok(meters) => SourceStatus {
            source: name.to_string(),
            available: true,
            detail: format!("{} meter(s)", meters.len()),
            items: meters
                .iter()
                .map(|m| {
                    format!(
                        "{} ({}, {})",
                        m.domain(),
                        m.kind().as_str(),
                        provenance_line(&m.provenance())
                    )
                })
                .collect(),
        },
        Err(reason) => SourceStatus {
            source: name.to_string(),
            available: false,
            detail: reason.to_string(),
            items: Vec::new(),
        },
    }
}

/// A meter's provenance in one line: `key value; key value`.
fn provenance_line(p: &serde_json::Value) -> String {
    match p {
        serde_json::Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k} {}",
                    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Every live energy source oae knows, one line each, in priority order. (The replay meter,
/// [`replay`], stands in for all of them when `[energy] replay_timeline` is set.)
pub fn registry() -> &'static [MeterSpec] {
    &[
        nvml::COUNTER_SPEC,
        nvml::POWER_SPEC,
        rapl::SPEC,
        cpu_model::SPEC,
        process::SPEC,
    ]
}

/// The meters that opened, and why the others did not.
pub struct OpenMeters {
    /// Usable meters.
    pub meters: Vec<Box<dyn Meter>>,
    /// (source, reason) for each unavailable source.
    pub unavailable: Vec<(String, String)>,
}

/// Opens every registered meter that works here, or only the replay meters when the config
/// names a recorded timeline.
pub fn open_all(config: &MeterConfig) -> OpenMeters {
    let mut meters = Vec::new();
    let mut unavailable = Vec::new();
    if let Some(path) = &config.replay_timeline {
        match replay::open_file(path) {
            Ok(m) => meters = m,
            Err(reason) => unavailable.push(("replay".to_string(), reason.to_string())),
        }
        return OpenMeters { meters, unavailable };
    }
    for spec in registry() {
        match (spec.open)(config) {
            Ok(m) => meters.extend(m),
            Err(reason) => unavailable.push((spec.name.to_string(), reason.to_string())),
        }
    }
    OpenMeters { meters, unavailable }
}

/// For each meter, whether it is its domain's primary (see [`MeterInfo::primary`]).
pub fn primaries(domains_kinds: &[(&str, EnergyKind)]) -> Vec<bool> {
    domains_kinds
        .iter()
        .enumerate()
        .map(|(i, (d, k))| {
            !domains_kinds
                .iter()
                .enumerate()
                .any(|(j, (d2, k2))| d2 == d && (k2 < k || (k2 == k && j < i)))
        })
        .collect()
}

/// One timeline point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the run epoch.
    pub t_s: f64,
    /// Index into [`Timeline::meters`].
    pub meter: usize,
    /// Cumulative energy, joules.
    pub energy_j: f64,
    /// Power over the preceding interval, watts, if known.
    pub power_w: Option<f64>,
    /// The interval ending here is unknown (see [`MeterReading::invalid`]).
    pub invalid: bool,
    /// Cumulative energy at the ends of the uncertainty band, J (estimated sources).
    pub band_j: Option<(f64, f64)>,
}

/// A meter that stopped working during the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeterFailure {
    /// Index into [`Timeline::meters`].
    pub meter: usize,
    /// When it was given up on, s since the run epoch.
    pub t_s: f64,
    /// The last error.
    pub reason: String,
}

/// Consecutive failed reads after which a meter is given up on for the rest of the run.
pub const FAILED_AFTER: usize = 3;

/// All samples of a run.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// The meters sampled.
    pub meters: Vec<MeterInfo>,
    /// Samples in time order (per meter).
    pub samples: Vec<Sample>,
    /// Read errors, (t_s, meter, kind, message).
    pub errors: Vec<(f64, usize, ReadErrorKind, String)>,
    /// Largest gap between consecutive grid samples of any meter, milliseconds.
    pub max_gap_ms: f64,
    /// Meters given up on after [`FAILED_AFTER`] consecutive failed reads.
    pub failures: Vec<MeterFailure>,
    /// CPU time the sampler thread used, s (the harness's own metering overhead).
    pub sampler_cpu_s: Option<f64>,
}

#[cfg(test)]
impl Timeline {
    /// A test timeline: one measured, primary `cpu` meter sampled each second from 0 to
    /// `secs` at cumulative energies `energy_j(t)`.
    pub(crate) fn one_meter(secs: u32, energy_j: impl Fn(f64) -> f64) -> Timeline {
        Timeline {
            meters: vec![MeterInfo {
                name: "m".into(),
                domain: "cpu".into(),
                kind: EnergyKind::Measured,
                resolution_ms: 1.0,
                provenance: serde_json::Value::Null,
                primary: true,
                process_view: false,
            }],
            samples: (0..=secs)
                .map(|i| Sample {
                    t_s: f64::from(i),
                    meter: 0,
                    energy_j: energy_j(f64::from(i)),
                    power_w: None,
                    invalid: false,
                    band_j: None,
                })
                .collect(),
            ..Timeline::default()
        }
    }
}

impl Timeline {
    /// Cumulative energy of `meter` at `t_s`, linearly interpolated; `None` outside the
    /// sampled window.
    pub fn energy_at(&self, meter: usize, t_s: f64) -> Option<f64> {
        let pts = self.of(meter);
        let (first, last) = (pts.first()?, pts.last()?);
        if t_s < first.t_s || t_s > last.t_s {
            return None;
        }
        let i = pts.partition_point(|s| s.t_s <= t_s); // >= 1 because t_s >= first.t_s
        let a = pts[i - 1];
        match pts.get(i) {
            Some(b) if b.t_s > a.t_s => Some(a.energy_j + (b.energy_j - a.energy_j) * (t_s - a.t_s) / (b.t_s - a.t_s)),
            _ => Some(a.energy_j),
        }
    }

    /// Energy of the primary meters (one per domain) between two times, summed; `None`
    /// without meters, or when any of them is unknown there.
    pub fn primary_energy_between(&self, from_s: f64, to_s: f64) -> Option<f64> {
        let primary: Vec<usize> = (0..self.meters.len()).filter(|&m| self.meters[m].primary).collect();
        if primary.is_empty() {
            return None;
        }
        primary.into_iter().map(|m| self.energy_between(m, from_s, to_s)).sum()
    }

    /// Energy of each domain's primary meter between two times; `None` for a domain whose
    /// meter is unknown there.
    pub fn primary_energy_by_domain(&self, from_s: f64, to_s: f64) -> BTreeMap<String, Option<f64>> {
        (0..self.meters.len())
            .filter(|&m| self.meters[m].primary)
            .map(|m| (self.meters[m].domain.clone(), self.energy_between(m, from_s, to_s)))
            .collect()
    }

    /// Energy of `meter` between two instants, when both are inside the sampled window.
    pub fn energy_between(&self, meter: usize, from_s: f64, to_s: f64) -> Option<f64> {
        Some(self.energy_at(meter, to_s)? - self.energy_at(meter, from_s)?)
    }

    /// The samples of one meter, in time order.
    pub fn of(&self, meter: usize) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.meter == meter).collect()
    }

    /// Whether `meter`'s samples cover `[from_s, to_s]` with every interval inside it valid
    /// and no failure before `to_s`.
    pub fn covers(&self, meter: usize, from_s: f64, to_s: f64) -> bool {
        let pts = self.of(meter);
        let (Some(first), Some(last)) = (pts.first(), pts.last()) else {
            return false;
        };
        let failed = self.failures.iter().any(|f| f.meter == meter && f.t_s < to_s);
        first.t_s <= from_s
            && last.t_s >= to_s
            && !failed
            && !pts
                .windows(2)
                .any(|w| w[1].invalid && w[1].t_s > from_s && w[0].t_s < to_s)
    }

    /// For each domain, the meter that serves `[from_s, to_s]`: the primary one when it covers
    /// the window, else the best-kind meter of the domain that does (a fallback, flagged by the
    /// caller). Domains no meter covers are returned with `None`.
    pub fn serving(&self, from_s: f64, to_s: f64) -> Vec<(String, Option<usize>)> {
        let mut domains: Vec<String> = Vec::new();
        for m in &self.meters {
            if !domains.contains(&m.domain) {
                domains.push(m.domain.clone());
            }
        }
        domains
            .into_iter()
            .map(|d| {
                let mut cands: Vec<usize> = (0..self.meters.len())
                    .filter(|&m| self.meters[m].domain == d && !self.meters[m].process_view)
                    .collect();
                cands.sort_by_key(|&m| (!self.meters[m].primary, self.meters[m].kind, m));
                let pick = cands.into_iter().find(|&m| self.covers(m, from_s, to_s));
                (d, pick)
            })
            .collect()
    }
}

struct Shared {
    meters: Vec<Box<dyn Meter>>,
    timeline: Timeline,
    last_grid: Vec<Option<f64>>,
    consecutive_errors: Vec<usize>,
    last_t: Vec<f64>,
}

/// Reads every meter on a fixed grid on its own thread.
///
/// **Overhead model:** one `/proc/stat` read and parse per meter per tick (tens of µs) and a
/// park between ticks (no spinning); measured by `cargo bench -p oae-harness --bench
/// sampler_overhead`. Request boundaries add one reading each (two per request), taken on
/// this thread, never on the worker's.
pub struct Sampler {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    nudged: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    epoch: Instant,
}

/// Asks the sampler thread for an extra reading without waiting for it (request boundaries).
#[derive(Clone)]
pub struct Nudge {
    nudged: Arc<AtomicBool>,
    thread: Option<std::thread::Thread>,
}

impl Nudge {
    /// Requests a reading as soon as the sampler thread wakes (microseconds); never blocks.
    pub fn nudge(&self) {
        if let Some(t) = &self.thread {
            self.nudged.store(true, Ordering::Release);
            t.unpark();
        }
    }
}

impl Sampler {
    /// Starts sampling `meters` every `interval`; times are measured from `epoch`.
    pub fn start(meters: Vec<Box<dyn Meter>>, interval: Duration, epoch: Instant) -> Sampler {
        // Process views take no part in choosing a domain's primary meter.
        let dk: Vec<(&str, EnergyKind)> = meters
            .iter()
            .map(|m| (if m.process_view() { "" } else { m.domain() }, m.kind()))
            .collect();
        let primary: Vec<bool> = primaries(&dk)
            .into_iter()
            .zip(&meters)
            .map(|(p, m)| p && !m.process_view())
            .collect();
        let infos = meters
            .iter()
            .zip(primary)
            .map(|(m, primary)| MeterInfo {
                name: m.name().to_string(),
                domain: m.domain().to_string(),
                kind: m.kind(),
                resolution_ms: m.resolution().as_secs_f64() * 1e3,
                provenance: m.provenance(),
                primary,
                process_view: m.process_view(),
            })
            .collect();
        let n = meters.len();
        let shared = Arc::new(Mutex::new(Shared {
            meters,
            timeline: Timeline {
                meters: infos,
                ..Timeline::default()
            },
            last_grid: vec![None; n],
            consecutive_errors: vec![0; n],
            last_t: vec![f64::NEG_INFINITY; n],
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = Sampler {
            shared: shared.clone(),
            stop: stop.clone(),
            nudged: Arc::new(AtomicBool::new(false)),
            handle: None,
            epoch,
        };
        sampler.read_now();
        let nudged = sampler.nudged.clone();
        let handle = (n > 0).then(|| {
            std::thread::Builder::new()
                .name("oae-sampler".into())
                .spawn(move || {
                    let cpu_start = thread_cpu_s();
                    let mut next = Instant::now() + interval;
                    // Park, never spin: each reading carries its own timestamp, so timer
                    // slack moves a sample, it does not falsify it (spinning the last 1.5 ms
                    // of every 50 ms tick cost 3% of a core). A nudge (request boundary)
                    // wakes the thread for an extra, off-grid reading.
                    while !stop.load(Ordering::Relaxed) {
                        if nudged.swap(false, Ordering::AcqRel) {
                            read_into(&shared, epoch, false);
                            continue;
                        }
                        let now = Instant::now();
                        if now >= next {
                            read_into(&shared, epoch, true);
                            next += interval;
                            let now = Instant::now();
                            if next < now {
                                next = now + interval; // fell behind: skip, the gap is recorded
                            }
                            continue;
                        }
                        std::thread::park_timeout(next - now);
                    }
                    if let (Some(a), Some(b), Ok(mut s)) = (cpu_start, thread_cpu_s(), shared.lock()) {
                        s.timeline.sampler_cpu_s = Some(b - a);
                    }
                })
                .expect("spawning the sampler thread")
        });
        Sampler { handle, ..sampler }
    }

    /// A handle that asks the sampler thread for an off-grid reading (see [`Nudge`]).
    pub fn nudger(&self) -> Nudge {
        Nudge {
            nudged: self.nudged.clone(),
            thread: self.handle.as_ref().map(|h| h.thread().clone()),
        }
    }

    /// Reads every meter now (span boundaries); returns the time of the reading.
    pub fn read_now(&self) -> f64 {
        read_into(&self.shared, self.epoch, false)
    }

    /// Number of meters being sampled.
    pub fn meter_count(&self) -> usize {
        self.shared.lock().map(|s| s.meters.len()).unwrap_or(0)
    }

    /// A copy of the timeline so far.
    pub fn snapshot(&self) -> Timeline {
        self.shared.lock().map(|s| s.timeline.clone()).unwrap_or_default()
    }

    /// Stops the thread, takes a final reading and returns the timeline.
    pub fn stop(mut self) -> Timeline {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        self.read_now();
        self.snapshot()
    }
}

fn read_into(shared: &Mutex<Shared>, epoch: Instant, grid: bool) -> f64 {
    let Ok(mut s) = shared.lock() else { return 0.0 };
    let t_s = secs_since(epoch, Instant::now());
    let Shared {
        meters,
        timeline,
        last_grid,
        consecutive_errors,
        last_t,
    } = &mut *s;
    for (i, m) in meters.iter_mut().enumerate() {
        if consecutive_errors[i] >= FAILED_AFTER {
            continue; // given up on; recorded in `failures`
        }
        match m.read() {
            Ok(r) => {
                consecutive_errors[i] = 0;
                // A timestamped value is placed when it was current (never before the
                // meter's previous sample, so each meter's samples stay time-ordered).
                let at = (t_s - r.age_s.unwrap_or(0.0).max(0.0)).max(last_t[i]);
                last_t[i] = at;
                timeline.samples.push(Sample {
                    t_s: at,
                    meter: i,
                    energy_j: r.energy_j,
                    power_w: r.power_w,
                    invalid: r.invalid,
                    band_j: r.band_j,
                })
            }
            Err(e) => {
                let kind = match &e {
                    MeterError::Read(kind, _) => *kind,
                    MeterError::Unavailable(_) => ReadErrorKind::NotSupported,
                };
                let e = e.to_string();
                consecutive_errors[i] += 1;
                if consecutive_errors[i] == FAILED_AFTER {
                    timeline.failures.push(MeterFailure {
                        meter: i,
                        t_s,
                        reason: e.clone(),
                    });
                }
                timeline.errors.push((t_s, i, kind, e));
            }
        }
        if grid {
            if let Some(prev) = last_grid[i] {
                timeline.max_gap_ms = timeline.max_gap_ms.max((t_s - prev) * 1e3);
            }
            last_grid[i] = Some(t_s);
        }
    }
    t_s
}

/// CPU time of the calling thread, s.
fn thread_cpu_s() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tl(points: &[(f64, f64)]) -> Timeline {
        Timeline {
            samples: points
                .iter()
                .map(|&(t_s, energy_j)| Sample {
                    t_s,
                    meter: 0,
                    energy_j,
                    power_w: None,
                    invalid: false,
                    band_j: None,
                })
                .collect(),
            ..Timeline::default()
        }
    }

    #[test]
    fn interpolates_inside_window_only() {
        let t = tl(&[(0.0, 0.0), (1.0, 10.0), (2.0, 30.0)]);
        assert_eq!(t.energy_at(0, 0.5), Some(5.0));
        assert_eq!(t.energy_at(0, 1.5), Some(20.0));
        assert_eq!(t.energy_at(0, 2.0), Some(30.0));
        assert_eq!(t.energy_at(0, 0.0), Some(0.0));
        assert_eq!(t.energy_at(0, -0.1), None);
        assert_eq!(t.energy_at(0, 2.1), None);
        assert_eq!(t.energy_between(0, 0.5, 1.5), Some(15.0));
    }
}

#[cfg(test)]
mod nudge_tests {
    use super::*;

    #[test]
    fn a_nudge_takes_an_off_grid_reading_and_stop_wakes_the_thread() {
        let start = Instant::now();
        let meter = replay::ReplayMeter::new(
            "x",
            "cpu",
            EnergyKind::Measured,
            vec![(0.0, 0.0), (1000.0, 1000.0)],
            Box::new(move || start.elapsed()),
        );
        // A 1-hour grid: only the initial reading, nudges and the final reading can appear.
        let s = Sampler::start(vec![Box::new(meter)], Duration::from_secs(3600), Instant::now());
        let n = s.nudger();
        for _ in 0..3 {
            n.nudge();
            std::thread::sleep(Duration::from_millis(30));
        }
        let t0 = Instant::now();
        let t = s.stop();
        assert!(t0.elapsed() < Duration::from_secs(1), "stop must not wait for the grid");
        assert_eq!(t.samples.len(), 5, "initial + 3 nudges + final: {:?}", t.samples);
        assert!(t.samples.windows(2).all(|w| w[1].t_s >= w[0].t_s));
    }
}

#[cfg(test)]
mod age_tests {
    use super::*;

    struct Aged;
    impl Meter for Aged {
        fn name(&self) -> &str {
            "aged"
        }
        fn domain(&self) -> &str {
            "gpu:0"
        }
        fn kind(&self) -> EnergyKind {
            EnergyKind::Measured
        }
        fn resolution(&self) -> Duration {
            Duration::from_millis(1)
        }
        fn read(&mut self) -> Result<MeterReading, MeterError> {
            Ok(MeterReading {
                age_s: Some(0.25),
                ..MeterReading::new(1.0, None)
            })
        }
        fn provenance(&self) -> serde_json::Value {
            serde_json::Value::Null
        }
    }

    #[test]
    fn timestamped_values_are_placed_when_current_and_stay_ordered() {
        let epoch = Instant::now();
        let s = Sampler::start(vec![Box::new(Aged)], Duration::from_secs(3600), epoch);
        let t = s.stop();
        // The first reading (at ~0 s) was current 0.25 s earlier; the final one, taken
        // moments later, cannot be placed before it.
        assert!(t.samples[0].t_s < -0.2, "{:?}", t.samples);
        assert!(t.samples[1].t_s >= t.samples[0].t_s);
    }
}

#[cfg(test)]
mod role_tests {
    use super::*;

    #[test]
    fn a_process_view_is_never_primary_nor_serving() {
        use super::process::{CpuMarks, ProcessView};
        let model = || -> Box<dyn Meter> {
            let stat = "cpu  100 0 50 1000 0 0 0 0 0 0\ncpu0 1 0 0 0 0 0 0 0 0 0\n".to_string();
            let mut t = Duration::ZERO;
            Box::new(
                CpuModelMeter::with_source(
                    "AMD EPYC 7B13",
                    None,
                    Box::new(move || Ok(stat.clone())),
                    Box::new(move || {
                        t += Duration::from_millis(100);
                        t
                    }),
                )
                .unwrap(),
            )
        };
        let marks: CpuMarks = Box::new(|| Some((1.0, 2.0)));
        // The view first: it would win a tie on kind and order if it took part.
        let meters: Vec<Box<dyn Meter>> = vec![Box::new(ProcessView::new(model(), marks)), model()];
        let sampler = Sampler::start(meters, Duration::from_millis(5), Instant::now());
        std::thread::sleep(Duration::from_millis(30));
        let t = sampler.stop();
        assert!(!t.meters[0].primary && t.meters[0].process_view, "{:?}", t.meters[0]);
        assert!(t.meters[1].primary && !t.meters[1].process_view);
        let last = t.samples.last().unwrap().t_s;
        assert_eq!(t.serving(0.01, last), vec![("cpu".to_string(), Some(1))]);
    }

    #[test]
    fn one_primary_per_domain_best_kind_first() {
        use EnergyKind::*;
        let p = primaries(&[
            ("cpu", Measured),
            ("dram", Measured),
            ("cpu", Estimated),
            ("gpu:0", Integrated),
            ("gpu:0", Measured),
        ]);
        assert_eq!(p, [true, true, false, false, true]);
        assert_eq!(primaries(&[("cpu", Estimated), ("cpu", Estimated)]), [true, false]);
    }
}
