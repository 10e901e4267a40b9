//! The modelled CPU meter: utilization from `/proc/stat` times published per-vCPU power
//! coefficients. Always `estimated`.
//!
//! Model (Cloud Carbon Footprint's, after SPECpower): `P = n_vcpu × (W_min + u × (W_max − W_min))`
//! where `u` is the busy fraction of CPU time over the interval. Busy is the sum of user,
//! nice, system, irq and softirq; idle is idle plus iowait; **steal is excluded** from both (time the
//! hypervisor gave to other guests is not ours to pay for). Energy over an interval is the
//! model's power times its length, so readings are exact integrals of the model.
//!
//! Coefficients (W per vCPU, min at idle / max at 100%) are Cloud Carbon Footprint's
//! SPECpower-derived micro-architecture averages (cloud-carbon-coefficients, Apache-2.0).
//! When the micro-architecture cannot be told from the CPU model name, the mean of the
//! table is used and the provenance says so.
//!
//! **TDP curve** (when the suite gives `[energy] cpu_tdp_w`): `P = TDP × f(u)` with `f`
//! piecewise linear through (0 %, 0.12), (10 %, 0.32), (50 %, 0.75), (100 %, 1.02) — the
//! SPECpower-derived load curve of Teads' EC2 carbon dataset (Davy, 2021), also used by
//! Boavizta. The TDP is that of the CPU share the run is charged for (on a VM: socket TDP ×
//! vCPUs / host threads).
//!
//! **Uncertainty band** (always reported, an assumption rather than a published error): a
//! recognised micro-architecture or a user TDP gets ±30 % (the coefficients are averages over
//! many servers' SPECpower results); an unrecognised one gets the envelope of the table (lowest
//! and highest rows), which is what not knowing the CPU means.
//!
//! **Overhead model:** one read of `/proc/stat` (a few KB) and a parse per reading.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{EnergyKind, Meter, MeterError, MeterReading, MeterSpec, ReadErrorKind};

pub(super) const SPEC: MeterSpec = MeterSpec {
    name: "cpu-model",
    about: "CPU power modelled from /proc/stat utilization × per-vCPU coefficients (estimated)",
    open,
    check: |config| super::check_by_opening("cpu-model", open, config),
};

/// Per-vCPU power coefficients and where they come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coefficients {
    /// Micro-architecture the coefficients describe.
    pub microarch: &'static str,
    /// Watts per vCPU at idle.
    pub w_min: f64,
    /// Watts per vCPU at full load.
    pub w_max: f64,
    /// Whether the micro-architecture was recognised (otherwise the table mean is used).
    pub matched: bool,
}

/// Relative half-width of the band around recognised coefficients or a user TDP.
const BAND: f64 = 0.30;

/// TDP load curve: (utilization, fraction of TDP), linearly interpolated.
const TDP_CURVE: [(f64, f64); 4] = [(0.0, 0.12), (0.10, 0.32), (0.50, 0.75), (1.0, 1.02)];

/// Fraction of TDP drawn at utilization `u` ∈ [0, 1].
pub fn tdp_fraction(u: f64) -> f64 {
    let u = u.clamp(0.0, 1.0);
    let i = TDP_CURVE
        .windows(2)
        .position(|w| u <= w[1].0)
        .unwrap_or(TDP_CURVE.len() - 2);
    let ((u0, f0), (u1, f1)) = (TDP_CURVE[i], TDP_CURVE[i + 1]);
    f0 + (f1 - f0) * (u - u0) / (u1 - u0)
}

/// How power follows utilization.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PowerModel {
    /// Per-vCPU linear model with its coefficients.
    PerVcpu(Coefficients),
    /// TDP load curve for the given TDP, W.
    Tdp(f64),
}

impl PowerModel {
    /// (power, low end of band, high end of band) at utilization `u` on `n` vCPUs.
    fn power(&self, u: f64, n: usize) -> (f64, f64, f64) {
        let n = n as f64;
        match *self {
            PowerModel::PerVcpu(c) => {
                let p = n * (c.w_min + u * (c.w_max - c.w_min));
                if c.matched {
                    (p, p * (1.0 - BAND), p * (1.0 + BAND))
                } else {
                    let row = |r: &(&str, f64, f64)| n * (r.1 + u * (r.2 - r.1));
                    let lo = TABLE.iter().map(row).fold(f64::INFINITY, f64::min);
                    let hi = TABLE.iter().map(row).fold(0.0, f64::max);
                    (p, lo, hi)
                }
            }
            PowerModel::Tdp(tdp) => {
                let p = tdp * tdp_fraction(u);
                (p, p * (1.0 - BAND), p * (1.0 + BAND))
            }
        }
    }
}

const SOURCE: &str = "Cloud Carbon Footprint per-vCPU coefficients (SPECpower-derived), github.com/cloud-carbon-footprint/cloud-carbon-coefficients";

/// (micro-architecture, W_min, W_max) per vCPU.
const TABLE: &[(&str, f64, f64)] = &[
    ("haswell", 1.90, 5.99),
    ("broadwell", 0.71, 3.54),
    ("skylake", 0.64, 4.05),
    ("cascade-lake", 0.64, 3.80),
    ("epyc-naples", 0.82, 2.55),
    ("epyc-rome", 0.47, 1.64),
    ("epyc-milan", 0.45, 1.87),
];

impl Coefficients {
    /// Coefficients for a CPU model name such as `AMD EPYC 7B13` or `Intel Xeon Gold 6248`.
    pub fn for_cpu(model_name: &str) -> Coefficients {
        match microarch(model_name) {
            Some(arch) => {
                let &(microarch, w_min, w_max) = TABLE.iter().find(|(a, ..)| *a == arch).expect("arch is from TABLE");
                Coefficients {
                    microarch,
                    w_min,
                    w_max,
                    matched: true,
                }
            }
            None => {
                let n = TABLE.len() as f64;
                Coefficients {
                    microarch: "unknown (table mean)",
                    w_min: TABLE.iter().map(|r| r.1).sum::<f64>() / n,
                    w_max: TABLE.iter().map(|r| r.2).sum::<f64>() / n,
                    matched: false,
                }
            }
        }
    }
}

/// Best-effort micro-architecture from a CPU model name.
fn microarch(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|w| !w.is_empty())
        .collect();
    if let Some(i) = words.iter().position(|w| *w == "epyc") {
        // EPYC model numbers end in the generation: 7xx1 Naples, 7xx2 Rome, 7xx3 Milan;
        // 9xx4 (Genoa) has no table row, so it stays unknown.
        let model = words.get(i + 1)?;
        return match model.chars().last()? {
            '1' => Some("epyc-naples"),
            '2' => Some("epyc-rome"),
            '3' => Some("epyc-milan"),
            _ => None,
        };
    }
    if lower.contains("xeon") {
        if words.contains(&"v3") {
            return Some("haswell");
        }
        if words.contains(&"v4") {
            return Some("broadwell");
        }
        // Xeon Scalable: Platinum/Gold/Silver/Bronze NNNN, second digit 1 = Skylake, 2 = Cascade Lake.
        let tiers = ["platinum", "gold", "silver", "bronze"];
        if let Some(i) = words.iter().position(|w| tiers.contains(w)) {
            let digits: Vec<char> = words.get(i + 1)?.chars().collect();
            if digits.len() >= 4 && digits[..4].iter().all(char::is_ascii_digit) {
                return match digits[1] {
                    '1' => Some("skylake"),
                    '2' => Some("cascade-lake"),
                    _ => None,
                };
            }
        }
    }
    None
}

/// CPU time counters from the aggregate `cpu` line of `/proc/stat`, in jiffies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    busy: u64,
    idle: u64,
    steal: u64,
}

/// Parses `/proc/stat`: the aggregate line and the number of `cpuN` lines (vCPUs).
pub(crate) fn parse_proc_stat(text: &str) -> Result<(CpuTimes, usize), String> {
    let mut agg = None;
    let mut n = 0;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let v: Vec<u64> = f
                    .map(|x| x.parse::<u64>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("/proc/stat: bad cpu line `{line}`: {e}"))?;
                if v.len() < 4 {
                    return Err(format!("/proc/stat: cpu line has {} fields, need at least 4", v.len()));
                }
                let g = |i: usize| v.get(i).copied().unwrap_or(0);
                // user nice system idle iowait irq softirq steal (guest is already in user)
                agg = Some(CpuTimes {
                    busy: g(0) + g(1) + g(2) + g(5) + g(6),
                    idle: g(3) + g(4),
                    steal: g(7),
                });
            }
            Some(w) if w.starts_with("cpu") && w[3..].chars().all(|c| c.is_ascii_digit()) => n += 1,
            _ => {}
        }
    }
    let agg = agg.ok_or("/proc/stat: no aggregate `cpu` line")?;
    Ok((agg, n.max(1)))
}

type StatSource = Box<dyn FnMut() -> std::io::Result<String> + Send>;
type Clock = Box<dyn FnMut() -> Duration + Send>;

/// The modelled CPU meter. See the module docs for the model.
pub struct CpuModelMeter {
    read_stat: StatSource,
    now: Clock,
    model: PowerModel,
    cpu_model: String,
    n_vcpu: usize,
    prev: (CpuTimes, Duration),
    energy_j: f64,
    band_j: (f64, f64),
    steal_jiffies: u64,
}

impl CpuModelMeter {
    /// A meter over an arbitrary `/proc/stat` source and clock (tests feed fixtures); with
    /// `tdp_w`, the TDP curve replaces the per-vCPU coefficients.
    pub fn with_source(
        cpu_model: &str,
        tdp_w: Option<f64>,
        mut read_stat: StatSource,
        mut now: Clock,
    ) -> Result<Self, String> {
        let text = read_stat().map_err(|e| format!("cannot read /proc/stat: {e}"))?;
        let (times, n_vcpu) = parse_proc_stat(&text)?;
        let t = now();
        let model = match tdp_w {
            Some(w) if w.is_finite() && w > 0.0 => PowerModel::Tdp(w),
            Some(w) => return Err(format!("cpu_tdp_w must be a power in W > 0, got {w}")),
            None => PowerModel::PerVcpu(Coefficients::for_cpu(cpu_model)),
        };
        Ok(Self {
            read_stat,
            now,
            model,
            cpu_model: cpu_model.to_string(),
            n_vcpu,
            prev: (times, t),
            energy_j: 0.0,
            band_j: (0.0, 0.0),
            steal_jiffies: 0,
        })
    }
}

fn open(config: &super::MeterConfig) -> super::Opened {
    let model = crate::host::cpu_model_name();
    let start = Instant::now();
    let m = CpuModelMeter::with_source(
        &model,
        config.cpu_tdp_w,
        Box::new(|| std::fs::read_to_string("/proc/stat")),
        Box::new(move || start.elapsed()),
    )
    .map_err(MeterError::Unavailable)?;
    Ok(vec![Box::new(m)])
}

impl Meter for CpuModelMeter {
    fn name(&self) -> &str {
        "cpu-model"
    }
    fn domain(&self) -> &str {
        "cpu"
    }
    fn kind(&self) -> EnergyKind {
        EnergyKind::Estimated
    }
    fn resolution(&self) -> Duration {
        Duration::from_millis(10) // one jiffy at USER_HZ = 100
    }
    fn read(&mut self) -> Result<MeterReading, MeterError> {
        let text = (self.read_stat)()
            .map_err(|e| MeterError::Read(ReadErrorKind::Io, format!("cannot read /proc/stat: {e}")))?;
        let (times, _) = parse_proc_stat(&text).map_err(|e| MeterError::Read(ReadErrorKind::Io, e))?;
        let t = (self.now)();
        let (prev, t_prev) = self.prev;
        let dt = t.saturating_sub(t_prev).as_secs_f64();
        let busy = times.busy.saturating_sub(prev.busy) as f64;
        let idle = times.idle.saturating_sub(prev.idle) as f64;
        self.steal_jiffies += times.steal.saturating_sub(prev.steal);
        // No tick elapsed yet (reads closer together than a jiffy): calling this interval
        // idle would be wrong, so keep the baseline and let the next reading integrate it.
        if busy + idle == 0.0 && dt < 0.02 {
            return Ok(MeterReading {
                band_j: Some(self.band_j),
                ..MeterReading::new(self.energy_j, None)
            });
        }
        let u = if busy + idle > 0.0 { busy / (busy + idle) } else { 0.0 };
        let (power, lo, hi) = self.model.power(u, self.n_vcpu);
        self.energy_j += power * dt;
        self.band_j.0 += lo * dt;
        self.band_j.1 += hi * dt;
        self.prev = (times, t);
        Ok(MeterReading {
            band_j: Some(self.band_j),
            ..MeterReading::new(self.energy_j, Some(power))
        })
    }
    fn provenance(&self) -> serde_json::Value {
        let common = json!({
            "cpu_model": self.cpu_model,
            "n_vcpu": self.n_vcpu,
            "utilization": "busy / (busy + idle) from /proc/stat deltas; steal excluded",
            "estimated": true,
        });
        let specific = match self.model {
            PowerModel::PerVcpu(c) => json!({
                "model": "P = n_vcpu * (w_min + u * (w_max - w_min))",
                "microarch": c.microarch,
                "microarch_matched": c.matched,
                "w_min_per_vcpu": c.w_min,
                "w_max_per_vcpu": c.w_max,
                "source": SOURCE,
                "uncertainty_band": if c.matched { "±30% (assumed spread of servers around the micro-architecture average)" } else { "envelope of the coefficient table (micro-architecture unknown)" },
            }),
            PowerModel::Tdp(tdp) => json!({
                "model": "P = tdp_w * f(u), f piecewise linear through (0, 0.12), (0.1, 0.32), (0.5, 0.75), (1, 1.02)",
                "tdp_w": tdp,
                "source": "TDP load curve of Teads' EC2 carbon dataset (B. Davy, 2021), SPECpower-derived; used by Boavizta",
                "uncertainty_band": "±30% (assumed)",
            }),
        };
        let mut v = common;
        if let (Some(a), Some(b)) = (v.as_object_mut(), specific.as_object()) {
            a.extend(b.clone());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn microarch_detection() {
        assert_eq!(
            Coefficients::for_cpu("AMD EPYC 7B13 64-Core Processor").microarch,
            "epyc-milan"
        );
        assert_eq!(
            Coefficients::for_cpu("AMD EPYC 7742 64-Core Processor").microarch,
            "epyc-rome"
        );
        assert_eq!(
            Coefficients::for_cpu("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz").microarch,
            "cascade-lake"
        );
        assert_eq!(
            Coefficients::for_cpu("Intel(R) Xeon(R) Platinum 8175M CPU").microarch,
            "skylake"
        );
        assert_eq!(
            Coefficients::for_cpu("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz").microarch,
            "broadwell"
        );
        let unknown = Coefficients::for_cpu("Intel(R) Xeon(R) Processor");
        assert!(!unknown.matched && unknown.w_min > 0.4 && unknown.w_max > unknown.w_min);
    }

    #[test]
    fn parses_proc_stat_and_counts_vcpus() {
        let text =
            "cpu  100 0 50 800 10 0 5 40 0 0\ncpu0 50 0 25 400 5 0 2 20 0 0\ncpu1 50 0 25 400 5 0 3 20 0 0\nintr 1\n";
        let (t, n) = parse_proc_stat(text).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            t,
            CpuTimes {
                busy: 155,
                idle: 810,
                steal: 40
            }
        );
        assert!(parse_proc_stat("intr 1\n").is_err());
        assert!(parse_proc_stat("cpu 1 x 3 4\n").is_err());
    }

    /// Two fixtures one second apart: 50% busy on 2 vCPUs of EPYC Milan, with steal ignored.
    #[test]
    fn energy_is_the_model_integral_and_excludes_steal() {
        let stats = Arc::new(Mutex::new(vec![
            "cpu  0 0 0 0 0 0 0 0\ncpu0 0\ncpu1 0\n".to_string(),
            // +100 busy, +100 idle, +300 steal jiffies
            "cpu  80 0 20 90 10 0 0 300\ncpu0 0\ncpu1 0\n".to_string(),
        ]));
        let clock = Arc::new(Mutex::new(vec![Duration::ZERO, Duration::from_secs(1)]));
        let (s, c) = (stats.clone(), clock.clone());
        let mut m = CpuModelMeter::with_source(
            "AMD EPYC 7763",
            None,
            Box::new(move || Ok(s.lock().unwrap().remove(0))),
            Box::new(move || c.lock().unwrap().remove(0)),
        )
        .unwrap();
        let r = m.read().unwrap();
        let expect = 2.0 * (0.45 + 0.5 * (1.87 - 0.45));
        assert!((r.power_w.unwrap() - expect).abs() < 1e-12);
        assert!((r.energy_j - expect).abs() < 1e-12);
        let (lo, hi) = r.band_j.unwrap();
        assert!((lo - 0.7 * expect).abs() < 1e-12 && (hi - 1.3 * expect).abs() < 1e-12);
        assert_eq!(m.kind(), EnergyKind::Estimated);
    }

    fn fixture_meter(cpu: &str, tdp: Option<f64>, busy: u64, idle: u64) -> MeterReading {
        let stats = Arc::new(Mutex::new(vec![
            "cpu  0 0 0 0 0 0 0 0\ncpu0 0\n".to_string(),
            format!("cpu  {busy} 0 0 {idle} 0 0 0 0\ncpu0 0\n"),
        ]));
        let clock = Arc::new(Mutex::new(vec![Duration::ZERO, Duration::from_secs(2)]));
        let mut m = CpuModelMeter::with_source(
            cpu,
            tdp,
            Box::new(move || Ok(stats.lock().unwrap().remove(0))),
            Box::new(move || clock.lock().unwrap().remove(0)),
        )
        .unwrap();
        m.read().unwrap()
    }

    #[test]
    fn tdp_curve_replaces_coefficients() {
        assert!((tdp_fraction(0.0) - 0.12).abs() < 1e-12);
        assert!((tdp_fraction(0.3) - (0.32 + 0.5 * 0.43)).abs() < 1e-12);
        assert!((tdp_fraction(1.0) - 1.02).abs() < 1e-12);
        // 30% busy for 2 s at TDP 100 W: 100 * 0.535 * 2 = 107 J.
        let r = fixture_meter("anything", Some(100.0), 30, 70);
        assert!((r.energy_j - 107.0).abs() < 1e-9, "{r:?}");
        assert!(
            CpuModelMeter::with_source(
                "x",
                Some(-5.0),
                Box::new(|| Ok("cpu 0 0 0 0\n".into())),
                Box::new(|| Duration::ZERO)
            )
            .is_err()
        );
    }

    #[test]
    fn unknown_cpu_band_is_the_table_envelope() {
        // Idle for 2 s on one vCPU: band = lowest and highest w_min in the table.
        let r = fixture_meter("Mystery CPU", None, 0, 100);
        let (lo, hi) = r.band_j.unwrap();
        assert!(
            (lo - 2.0 * 0.45).abs() < 1e-9 && (hi - 2.0 * 1.90).abs() < 1e-9,
            "{lo} {hi}"
        );
        assert!(lo < r.energy_j && r.energy_j < hi);
    }
}
