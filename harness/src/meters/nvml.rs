//! NVIDIA GPU energy through NVML, loaded at run time (no driver needed to build or run).
//!
//! Two meters per GPU, both on domain `gpu:N`:
//! - **`nvml-counter`** (`measured`): the total-energy counter (mJ since driver load, Volta
//!   and newer). A reading below the previous one is a counter reset: the interval is marked
//!   invalid and the total carried over, never a negative energy.
//! - **`nvml-power`** (`integrated`): power integrated by the trapezoid rule — from the
//!   driver's power sample buffer when it has one (de-duplicated by timestamp), else instant
//!   power polled at each reading, else the 1-second average (`power_usage`, last resort,
//!   flagged). It runs beside the counter as a cross-check (`counter_vs_power_ratio` in
//!   run.json); it is the GPU's primary meter only where the counter is not supported.
//!
//! The hardware sits behind [`GpuDevice`] so tests drive a fake NVML (reset, `NotSupported`,
//! missing library). One NVML handle is opened per process and kept for the whole run.
//!
//! **Overhead model:** one or two NVML calls per meter per reading (a few µs each on a local
//! GPU; the sample-buffer read copies at most the samples since the previous reading).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::Sampling;
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::FieldValueSample;
use nvml_wrapper::structs::device::FieldId;
use serde_json::{Value, json};

use super::{EnergyKind, Meter, MeterConfig, MeterError, MeterReading, MeterSpec, Opened, ReadErrorKind, SourceStatus};

pub(super) const COUNTER_SPEC: MeterSpec = MeterSpec {
    name: "nvml-counter",
    about: "GPU total-energy counter via NVML, per GPU (measured)",
    open: open_counters,
    check: check_counters,
};

pub(super) const POWER_SPEC: MeterSpec = MeterSpec {
    name: "nvml-power",
    about: "GPU power integrated from NVML samples, per GPU; cross-check of the counter (integrated)",
    open: open_power,
    check: |config| super::check_by_opening("nvml-power", open_power, config),
};

/// Why a GPU query failed.
#[derive(Debug, Clone, PartialEq)]
pub enum GpuError {
    /// The GPU or driver does not offer this query.
    NotSupported,
    /// NVML_ERROR_NOT_FOUND: from the power sample buffer, "no sample newer than the one
    /// asked for" — polled faster than the driver samples, not a failure.
    NotFound,
    /// NVML_ERROR_GPU_IS_LOST: the GPU fell off the bus.
    Lost,
    /// NVML_ERROR_NO_PERMISSION.
    Permission,
    /// NVML_ERROR_TIMEOUT.
    Timeout,
    /// Any other failure, with NVML's message.
    Failed(String),
}

impl GpuError {
    /// The read-error kind run.json counts it under.
    pub fn kind(&self) -> ReadErrorKind {
        match self {
            GpuError::NotSupported => ReadErrorKind::NotSupported,
            GpuError::Lost => ReadErrorKind::DeviceLost,
            GpuError::Permission => ReadErrorKind::Permission,
            GpuError::Timeout => ReadErrorKind::Timeout,
            GpuError::NotFound | GpuError::Failed(_) => ReadErrorKind::Other,
        }
    }
}

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuError::NotSupported => write!(f, "not supported on this GPU or driver"),
            GpuError::NotFound => write!(f, "not found (no data newer than asked for)"),
            GpuError::Lost => write!(f, "the GPU is lost (fell off the bus or the driver lost it)"),
            GpuError::Permission => write!(f, "no permission"),
            GpuError::Timeout => write!(f, "the driver timed out"),
            GpuError::Failed(m) => write!(f, "{m}"),
        }
    }
}

impl From<NvmlError> for GpuError {
    fn from(e: NvmlError) -> Self {
        match e {
            NvmlError::NotSupported => GpuError::NotSupported,
            NvmlError::NotFound => GpuError::NotFound,
            NvmlError::GpuLost => GpuError::Lost,
            NvmlError::NoPermission => GpuError::Permission,
            NvmlError::Timeout => GpuError::Timeout,
            other => GpuError::Failed(other.to_string()),
        }
    }
}

/// The NVML calls the meters use, for one GPU.
pub trait GpuDevice: Send {
    /// Index, as in `gpu:N`.
    fn index(&self) -> u32;
    /// Total energy since driver load, mJ.
    fn energy_mj(&mut self) -> Result<u64, GpuError>;
    /// Total energy since driver load, mJ, with the CPU time (Unix µs) at which the driver
    /// sampled it, where the driver supports timestamped field reads.
    fn energy_timestamped(&mut self) -> Result<(u64, Option<i64>), GpuError> {
        self.energy_mj().map(|e| (e, None))
    }
    /// Power samples from the driver's buffer newer than `since_us` (CPU µs), as (µs, W).
    fn power_samples(&mut self, since_us: u64) -> Result<Vec<(u64, f64)>, GpuError>;
    /// Instant power, W.
    fn instant_power_w(&mut self) -> Result<f64, GpuError>;
    /// Power averaged over the last second, W (last resort).
    fn average_power_w(&mut self) -> Result<f64, GpuError>;
    /// Name, driver, power limit, persistence and MIG mode, for run.json.
    fn facts(&self) -> Value;
}

type Shared = Arc<Mutex<Box<dyn GpuDevice>>>;

/// The process's NVML handle: loaded once, kept for the whole run.
pub(crate) fn library() -> Result<&'static Nvml, String> {
    static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();
    NVML.get_or_init(|| {
        Nvml::init().map_err(|e| {
            format!("NVML did not load: {e} (no NVIDIA driver or libnvidia-ml.so on this machine, or no permission)")
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The real GPUs, each shared by its counter and power meters.
fn devices() -> Result<Vec<Shared>, String> {
    static DEVICES: OnceLock<Result<Vec<Shared>, String>> = OnceLock::new();
    DEVICES
        .get_or_init(|| {
            let nvml = library()?;
            let n = nvml.device_count().map_err(|e| format!("NVML device count: {e}"))?;
            if n == 0 {
                return Err("NVML loaded but reports no GPU".into());
            }
            (0..n)
                .map(|i| {
                    let device = nvml
                        .device_by_index(i)
                        .map_err(|e| format!("gpu:{i}: cannot open: {e}"))?;
                    Ok(Arc::new(Mutex::new(
                        Box::new(NvmlGpu { index: i, device }) as Box<dyn GpuDevice>
                    )))
                })
                .collect()
        })
        .clone()
}

/// Driver and NVML versions, when NVML loads.
pub fn versions() -> Result<(String, String), String> {
    let nvml = library()?;
    let driver = nvml.sys_driver_version().unwrap_or_else(|e| format!("? ({e})"));
    let version = nvml.sys_nvml_version().unwrap_or_else(|e| format!("? ({e})"));
    Ok((driver, version))
}

struct NvmlGpu {
    index: u32,
    device: nvml_wrapper::Device<'static>,
}

fn field_f64(v: Result<Vec<Result<FieldValueSample, NvmlError>>, NvmlError>) -> Result<f64, GpuError> {
    let sample = v?.into_iter().next().ok_or(GpuError::NotSupported)??;
    match sample.value? {
        SampleValue::F64(x) => Ok(x),
        SampleValue::U32(x) => Ok(f64::from(x)),
        SampleValue::U64(x) => Ok(x as f64),
        SampleValue::I64(x) => Ok(x as f64),
    }
}

impl GpuDevice for NvmlGpu {
    fn index(&self) -> u32 {
        self.index
    }
    fn energy_mj(&mut self) -> Result<u64, GpuError> {
        Ok(self.device.total_energy_consumption()?)
    }
    fn energy_timestamped(&mut self) -> Result<(u64, Option<i64>), GpuError> {
        let id = FieldId(nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION);
        let field = self
            .device
            .field_values_for(&[id])
            .ok()
            .and_then(|v| v.into_iter().next())
            .and_then(Result::ok);
        match field {
            Some(f) => match f.value {
                Ok(SampleValue::U64(mj)) => Ok((mj, Some(f.timestamp))),
                _ => self.energy_mj().map(|e| (e, None)),
            },
            None => self.energy_mj().map(|e| (e, None)),
        }
    }
    fn power_samples(&mut self, since_us: u64) -> Result<Vec<(u64, f64)>, GpuError> {
        let samples = self.device.samples(Sampling::Power, since_us)?;
        Ok(samples
            .into_iter()
            .filter_map(|s| {
                let mw = match s.value {
                    SampleValue::U32(x) => f64::from(x),
                    SampleValue::U64(x) => x as f64,
                    SampleValue::F64(x) => x,
                    SampleValue::I64(x) => x as f64,
                };
                (s.timestamp > since_us).then_some((s.timestamp, mw / 1e3))
            })
            .collect())
    }
    fn instant_power_w(&mut self) -> Result<f64, GpuError> {
        let id = FieldId(nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_POWER_INSTANT);
        Ok(field_f64(self.device.field_values_for(&[id]))? / 1e3)
    }
    fn average_power_w(&mut self) -> Result<f64, GpuError> {
        Ok(f64::from(self.device.power_usage()?) / 1e3)
    }
    fn facts(&self) -> Value {
        let d = &self.device;
        let s = |r: Result<String, NvmlError>| r.unwrap_or_else(|e| format!("? ({e})"));
        let (driver, nvml) = versions().unwrap_or_default();
        json!({
            "gpu": format!("gpu:{}", self.index),
            "name": s(d.name()),
            "uuid": s(d.uuid()),
            "driver_version": driver,
            "nvml_version": nvml,
            "power_limit_w": d.enforced_power_limit().ok().map(|mw| f64::from(mw) / 1e3),
            "persistence_mode": d.is_in_persistent_mode().ok(),
            "mig_mode_current": d.mig_mode().ok().map(|m| m.current),
        })
    }
}

/// Loads NVML at run time (no driver needed to build or run oae) and checks each GPU's
/// energy counter.
fn check_counters(_: &MeterConfig) -> SourceStatus {
    let mut st = SourceStatus {
        source: "nvml-counter".into(),
        available: false,
        detail: String::new(),
        items: vec![],
    };
    match library() {
        Err(e) => {
            st.detail = format!("{e}; GPU energy cannot be measured");
        }
        Ok(nvml) => {
            st.available = true;
            let driver = nvml.sys_driver_version().unwrap_or_else(|e| format!("? ({e})"));
            let version = nvml.sys_nvml_version().unwrap_or_else(|e| format!("? ({e})"));
            let count = nvml.device_count().unwrap_or(0);
            st.detail = format!("NVML {version}, driver {driver}, {count} GPU(s)");
            for i in 0..count {
                let line = match nvml.device_by_index(i) {
                    Ok(d) => {
                        let name = d.name().unwrap_or_else(|e| format!("? ({e})"));
                        let counter = match d.total_energy_consumption() {
                            Ok(mj) => format!("energy counter readable ({mj} mJ)"),
                            Err(e) => format!("energy counter unavailable: {e}"),
                        };
                        format!("gpu:{i} {name}: {counter}")
                    }
                    Err(e) => format!("gpu:{i}: cannot open: {e}"),
                };
                st.items.push(line);
            }
        }
    }
    st
}

fn open_counters(_: &MeterConfig) -> Opened {
    counters_for(devices().map_err(MeterError::Unavailable)?)
}

fn open_power(_: &MeterConfig) -> Opened {
    power_for(devices().map_err(MeterError::Unavailable)?)
}

/// Counter meters for the GPUs whose counter works; an error when none does.
pub fn counters_for(devices: Vec<Shared>) -> Opened {
    open_each(devices, |d| {
        CounterMeter::open(d).map(|m| Box::new(m) as Box<dyn Meter>)
    })
}

/// Power-integration meters for the GPUs that report power in any way.
pub fn power_for(devices: Vec<Shared>) -> Opened {
    open_each(devices, |d| PowerMeter::open(d).map(|m| Box::new(m) as Box<dyn Meter>))
}

/// One meter per device that opens; every device's reason when none does.
fn open_each(devices: Vec<Shared>, open: impl Fn(Shared) -> Result<Box<dyn Meter>, String>) -> Opened {
    let (mut meters, mut why) = (Vec::new(), Vec::new());
    for d in devices {
        match open(d) {
            Ok(m) => meters.push(m),
            Err(e) => why.push(e),
        }
    }
    if meters.is_empty() {
        return Err(MeterError::Unavailable(why.join("; ")));
    }
    Ok(meters)
}

/// The total-energy counter of one GPU.
pub struct CounterMeter {
    device: Shared,
    domain: String,
    facts: Value,
    last_mj: u64,
    total_mj: u64,
    resets: u32,
}

impl CounterMeter {
    /// Opens the counter, or says why it cannot be used.
    pub fn open(device: Shared) -> Result<CounterMeter, String> {
        let mut d = device.lock().map_err(|_| "GPU handle poisoned".to_string())?;
        let i = d.index();
        let first = d.energy_mj().map_err(|e| match e {
            GpuError::NotSupported => format!(
                "gpu:{i}: total-energy counter not supported (it needs a Volta or newer GPU); power integration is used instead"
            ),
            other => format!("gpu:{i}: total-energy counter: {other}"),
        })?;
        let facts = d.facts();
        drop(d);
        Ok(CounterMeter {
            device,
            domain: format!("gpu:{i}"),
            facts,
            last_mj: first,
            total_mj: 0,
            resets: 0,
        })
    }
}

impl Meter for CounterMeter {
    fn name(&self) -> &str {
        "nvml-counter"
    }
    fn domain(&self) -> &str {
        &self.domain
    }
    fn kind(&self) -> EnergyKind {
        EnergyKind::Measured
    }
    fn resolution(&self) -> Duration {
        // The driver refreshes the counter every few tens of ms on recent GPUs;
        // docs/energy-validation.md records the measured period where a GPU was available.
        Duration::from_millis(100)
    }
    fn read(&mut self) -> Result<MeterReading, MeterError> {
        let (raw, stamp_us) = self
            .device
            .lock()
            .map_err(|_| MeterError::read("GPU handle poisoned"))?
            .energy_timestamped()
            .map_err(|e| MeterError::Read(e.kind(), format!("{}: energy counter: {e}", self.domain)))?;
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        // Age of the driver's value; ignored when implausible (clock steps).
        let age_s = stamp_us
            .map(|ts| (now_us - ts) as f64 / 1e6)
            .filter(|a| (0.0..1.0).contains(a));
        let invalid = raw < self.last_mj;
        if invalid {
            self.resets += 1; // the interval is unknown; keep the total
        } else {
            self.total_mj += raw - self.last_mj;
        }
        self.last_mj = raw;
        Ok(MeterReading {
            invalid,
            age_s,
            ..MeterReading::new(self.total_mj as f64 / 1e3, None)
        })
    }
    fn provenance(&self) -> Value {
        json!({
            "interface": "NVML field NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION with its driver timestamp (sample placed when current), else nvmlDeviceGetTotalEnergyConsumption (mJ)",
            "device": self.facts,
        })
    }
}

/// Which power reading a [`PowerMeter`] integrates.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PowerSource {
    Buffer,
    Instant,
    Average,
}

/// Power integrated by the trapezoid rule, for one GPU.
pub struct PowerMeter {
    device: Shared,
    domain: String,
    facts: Value,
    source: PowerSource,
    last: Option<(f64, f64)>, // (time s, W)
    last_us: u64,
    energy_j: f64,
    epoch: Instant,
}

impl PowerMeter {
    /// Opens the best power reading the GPU offers, or says why there is none.
    pub fn open(device: Shared) -> Result<PowerMeter, String> {
        let mut d = device.lock().map_err(|_| "GPU handle poisoned".to_string())?;
        let i = d.index();
        let (source, last, last_us) = match d.power_samples(0) {
            Ok(s) if !s.is_empty() => {
                let &(us, w) = s.last().expect("non-empty");
                (PowerSource::Buffer, Some((us as f64 / 1e6, w)), us)
            }
            // The buffer exists but holds nothing yet.
            Err(GpuError::NotFound) => (PowerSource::Buffer, None, 0),
            _ => match d.instant_power_w() {
                Ok(_) => (PowerSource::Instant, None, 0),
                Err(_) => match d.average_power_w() {
                    Ok(_) => (PowerSource::Average, None, 0),
                    Err(e) => return Err(format!("gpu:{i}: no power reading: {e}")),
                },
            },
        };
        let facts = d.facts();
        drop(d);
        Ok(PowerMeter {
            device,
            domain: format!("gpu:{i}"),
            facts,
            source,
            last,
            last_us,
            energy_j: 0.0,
            epoch: Instant::now(),
        })
    }

    fn add(&mut self, t_s: f64, w: f64) {
        if let Some((t0, w0)) = self.last
            && t_s > t0
        {
            self.energy_j += 0.5 * (w0 + w) * (t_s - t0);
        }
        if self.last.is_none_or(|(t0, _)| t_s > t0) {
            self.last = Some((t_s, w));
        }
    }
}

impl Meter for PowerMeter {
    fn name(&self) -> &str {
        "nvml-power"
    }
    fn domain(&self) -> &str {
        &self.domain
    }
    fn kind(&self) -> EnergyKind {
        EnergyKind::Integrated
    }
    fn resolution(&self) -> Duration {
        match self.source {
            PowerSource::Buffer | PowerSource::Instant => Duration::from_millis(20),
            PowerSource::Average => Duration::from_secs(1),
        }
    }
    fn read(&mut self) -> Result<MeterReading, MeterError> {
        let dev = self.device.clone();
        let mut d = dev.lock().map_err(|_| MeterError::read("GPU handle poisoned"))?;
        let now_s = self.epoch.elapsed().as_secs_f64();
        let latest = match self.source {
            PowerSource::Buffer => {
                let samples = match d.power_samples(self.last_us) {
                    Ok(s) => s,
                    // Nothing newer than the last sample: polled faster than the driver
                    // samples (every ~20 ms on recent GPUs). The energy so far stands.
                    Err(GpuError::NotFound) => Vec::new(),
                    Err(e) => {
                        return Err(MeterError::Read(
                            e.kind(),
                            format!("{}: power samples: {e}", self.domain),
                        ));
                    }
                };
                drop(d);
                for &(us, w) in &samples {
                    self.add(us as f64 / 1e6, w);
                    self.last_us = self.last_us.max(us);
                }
                samples.last().map(|s| s.1)
            }
            PowerSource::Instant | PowerSource::Average => {
                let w = if self.source == PowerSource::Instant {
                    d.instant_power_w()
                } else {
                    d.average_power_w()
                }
                .map_err(|e| MeterError::Read(e.kind(), format!("{}: power: {e}", self.domain)))?;
                drop(d);
                self.add(now_s, w);
                Some(w)
            }
        };
        Ok(MeterReading::new(self.energy_j, latest))
    }
    fn provenance(&self) -> Value {
        let source = match self.source {
            PowerSource::Buffer => "driver power sample buffer (nvmlDeviceGetSamples), trapezoid rule",
            PowerSource::Instant => {
                "instant power field (NVML_FI_DEV_POWER_INSTANT) polled at each reading, trapezoid rule"
            }
            PowerSource::Average => {
                "1-second average power (nvmlDeviceGetPowerUsage), last resort: lags and smooths short requests"
            }
        };
        json!({ "interface": source, "device": self.facts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted GPU: energy counter values and power samples, read in order.
    struct FakeGpu {
        energy: Vec<Result<u64, GpuError>>,
        samples: Arc<Mutex<Vec<(u64, f64)>>>,
        instant: Result<f64, GpuError>,
    }

    fn buf(s: &[(u64, f64)]) -> Arc<Mutex<Vec<(u64, f64)>>> {
        Arc::new(Mutex::new(s.to_vec()))
    }

    impl GpuDevice for FakeGpu {
        fn index(&self) -> u32 {
            0
        }
        fn energy_mj(&mut self) -> Result<u64, GpuError> {
            if self.energy.is_empty() {
                return Err(GpuError::Failed("GPU is lost".into()));
            }
            self.energy.remove(0)
        }
        fn power_samples(&mut self, since_us: u64) -> Result<Vec<(u64, f64)>, GpuError> {
            let s = self.samples.lock().unwrap();
            if s.is_empty() {
                return Err(GpuError::NotSupported);
            }
            let newer: Vec<(u64, f64)> = s.iter().copied().filter(|s| s.0 > since_us).collect();
            // As the driver does: nothing newer than asked for is NVML_ERROR_NOT_FOUND.
            if newer.is_empty() {
                return Err(GpuError::NotFound);
            }
            Ok(newer)
        }
        fn instant_power_w(&mut self) -> Result<f64, GpuError> {
            self.instant.clone()
        }
        fn average_power_w(&mut self) -> Result<f64, GpuError> {
            Err(GpuError::NotSupported)
        }
        fn facts(&self) -> Value {
            json!({ "name": "fake" })
        }
    }

    fn shared(g: FakeGpu) -> Shared {
        Arc::new(Mutex::new(Box::new(g)))
    }

    #[test]
    fn counter_accumulates_and_a_reset_invalidates_the_interval() {
        let g = FakeGpu {
            energy: vec![Ok(1_000), Ok(3_000), Ok(500), Ok(1_500)],
            samples: buf(&[]),
            instant: Err(GpuError::NotSupported),
        };
        let mut m = CounterMeter::open(shared(g)).unwrap();
        let r = m.read().unwrap();
        assert_eq!((r.energy_j, r.invalid), (2.0, false));
        let r = m.read().unwrap(); // 3000 -> 500: reset
        assert_eq!((r.energy_j, r.invalid), (2.0, true));
        let r = m.read().unwrap();
        assert_eq!((r.energy_j, r.invalid), (3.0, false));
        let e = m.read().unwrap_err();
        assert!(matches!(&e, MeterError::Read(_, m) if m.contains("GPU is lost")), "{e}");
        assert_eq!(m.kind(), EnergyKind::Measured);
    }

    #[test]
    fn unsupported_counter_says_why_and_power_integration_takes_over() {
        let samples = buf(&[(1_000_000, 100.0), (1_500_000, 200.0), (1_500_000, 200.0)]);
        let g = shared(FakeGpu {
            energy: vec![Err(GpuError::NotSupported)],
            samples: samples.clone(),
            instant: Err(GpuError::NotSupported),
        });
        let e = counters_for(vec![g.clone()]).err().unwrap();
        assert!(matches!(e, MeterError::Unavailable(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("not supported") && e.contains("Volta"), "{e}");
        let mut p = power_for(vec![g.clone()]).unwrap().remove(0);
        assert_eq!(p.kind(), EnergyKind::Integrated);
        // Opened at the last sample (1.5 s, 200 W); new samples arrive.
        samples
            .lock()
            .unwrap()
            .extend([(2_000_000, 200.0), (2_000_000, 200.0), (3_000_000, 100.0)]);
        // Trapezoid over 1.5–2.0 s at 200 W (100 J) and 2.0–3.0 s from 200 to 100 W (150 J);
        // the duplicate timestamp adds nothing.
        let r = p.read().unwrap();
        assert!((r.energy_j - 250.0).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn no_new_power_sample_is_not_a_read_error() {
        let samples = buf(&[(1_000_000, 100.0)]);
        let g = shared(FakeGpu {
            energy: vec![],
            samples: samples.clone(),
            instant: Err(GpuError::NotSupported),
        });
        let mut p = PowerMeter::open(g).unwrap();
        assert_eq!(p.source, PowerSource::Buffer);
        // Polled faster than the driver samples: NOT_FOUND, several times in a row (three
        // failures would give the meter up).
        for _ in 0..5 {
            let r = p.read().expect("no new sample is not a failure");
            assert_eq!(r.energy_j, 0.0);
        }
        samples.lock().unwrap().push((2_000_000, 300.0));
        let r = p.read().unwrap();
        assert!((r.energy_j - 200.0).abs() < 1e-9, "{r:?}"); // 1 s from 100 to 300 W
        let r = p.read().unwrap();
        assert!((r.energy_j - 200.0).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn read_errors_are_classified() {
        let g = FakeGpu {
            energy: vec![
                Ok(1_000),
                Err(GpuError::Lost),
                Err(GpuError::Permission),
                Err(GpuError::Timeout),
            ],
            samples: buf(&[]),
            instant: Err(GpuError::NotSupported),
        };
        let mut m = CounterMeter::open(shared(g)).unwrap();
        for kind in [
            ReadErrorKind::DeviceLost,
            ReadErrorKind::Permission,
            ReadErrorKind::Timeout,
        ] {
            match m.read() {
                Err(MeterError::Read(k, msg)) => {
                    assert_eq!(k, kind, "{msg}");
                    assert!(msg.starts_with("gpu:0: energy counter"), "{msg}");
                }
                other => panic!("expected a read error, got {other:?}"),
            }
        }
        assert_eq!(GpuError::from(NvmlError::NotFound), GpuError::NotFound);
        assert_eq!(GpuError::from(NvmlError::GpuLost), GpuError::Lost);
        assert_eq!(
            GpuError::from(NvmlError::NotSupported).kind(),
            ReadErrorKind::NotSupported
        );
    }

    #[test]
    fn instant_power_is_polled_when_there_is_no_buffer() {
        let g = shared(FakeGpu {
            energy: vec![],
            samples: buf(&[]),
            instant: Ok(50.0),
        });
        let mut p = PowerMeter::open(g).unwrap();
        assert_eq!(p.source, PowerSource::Instant);
        p.read().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let r = p.read().unwrap();
        assert!(r.energy_j > 0.9 && r.energy_j < 5.0, "{r:?}"); // 50 W × ≥ 20 ms
    }

    #[test]
    fn no_power_reading_at_all_is_unavailable() {
        let g = shared(FakeGpu {
            energy: vec![],
            samples: buf(&[]),
            instant: Err(GpuError::Failed("boom".into())),
        });
        let e = power_for(vec![g]).err().unwrap().to_string();
        assert!(e.contains("no power reading"), "{e}");
    }

    #[test]
    fn missing_library_is_a_reason_not_a_panic() {
        // On machines without a driver (CI), opening says why; with one, it opens meters.
        match open_counters(&MeterConfig::default()) {
            Ok(m) => assert!(!m.is_empty()),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        match library() {
            Ok(_) => eprintln!("NVML present: the missing-library path is not exercised here"),
            Err(e) => assert!(e.contains("NVML did not load"), "{e}"),
        }
    }
}
