//! The process view of CPU energy: the machine's CPU energy times oae's own share of the
//! machine's busy CPU time, interval by interval (Scaphandre's attribution).
//!
//! The CPU meters read the whole machine: a co-tenant (another job, a compile) raises the
//! loaded-idle baseline as much as the replay, and the method's dynamic energy vanishes into
//! it. `cpu-process` wraps the machine's CPU meter (RAPL's package domain where it is
//! readable, else the model) and scales each interval's energy by
//! `s = Δ(oae's CPU time, its process tree) / Δ(machine busy time)`, clamped to [0, 1]; an
//! interval in which nothing was busy counts as oae's (s = 1: with no tenant at all the two
//! views agree). Idle baselines and attribution then run on it like on any meter, so its
//! idle power is oae's share of the machine's and its dynamic energy survives a co-tenant.
//!
//! It never serves a domain's figures: it is reported beside the machine view (summary.json
//! `energy.process_view`), and a cell whose process energy is under half the machine's is
//! flagged — the machine was busy with something else.
//!
//! **Overhead model:** the wrapped meter's read plus `/proc/stat` and this process tree's
//! `/proc/PID/stat` files per reading (tens of µs).

use std::time::Duration;

use serde_json::json;

use super::{EnergyKind, Meter, MeterError, MeterReading, MeterSpec, ReadErrorKind};

/// The source's name.
pub const NAME: &str = "cpu-process";

pub(super) const SPEC: MeterSpec = MeterSpec {
    name: NAME,
    about: "oae's own share of the CPU energy (process-tree CPU time / machine busy time × the CPU meter), beside the machine view",
    open,
    check: |config| super::check_by_opening(NAME, open, config),
};

/// (oae's process-tree CPU time, machine busy time), s.
pub type CpuMarks = Box<dyn FnMut() -> Option<(f64, f64)> + Send>;

/// The process view of one CPU meter.
pub struct ProcessView {
    inner: Box<dyn Meter>,
    marks: CpuMarks,
    last: Option<(f64, f64, f64)>, // (inner energy, own s, machine s)
    energy_j: f64,
    band_j: Option<(f64, f64)>,
}

impl ProcessView {
    /// Wraps `inner` (a CPU meter) with CPU-time readings from `marks`.
    pub fn new(inner: Box<dyn Meter>, marks: CpuMarks) -> Self {
        Self {
            inner,
            marks,
            last: None,
            energy_j: 0.0,
            band_j: None,
        }
    }
}

fn open(config: &super::MeterConfig) -> super::Opened {
    // The machine's best CPU meter: RAPL's package domain where readable, else the model.
    let inner = match (super::rapl::SPEC.open)(config) {
        Ok(ms) if ms.iter().any(|m| m.domain() == "cpu") => ms.into_iter().find(|m| m.domain() == "cpu"),
        _ => (super::cpu_model::SPEC.open)(config)?.into_iter().next(),
    }
    .ok_or_else(|| MeterError::Unavailable("no CPU meter to take a share of".into()))?;
    let marks: CpuMarks = Box::new(|| Some((crate::host::own_tree_cpu_s()?, crate::host::machine_busy_s()?)));
    let mut probe = marks;
    if probe().is_none() {
        return Err(MeterError::Unavailable(
            "no /proc: this process's CPU time cannot be read".into(),
        ));
    }
    Ok(vec![Box::new(ProcessView::new(inner, probe))])
}

impl Meter for ProcessView {
    fn name(&self) -> &str {
        NAME
    }
    fn domain(&self) -> &str {
        self.inner.domain()
    }
    fn kind(&self) -> EnergyKind {
        // The share is an attribution on top of the wrapped reading: never better than
        // integrated, estimated when the reading is.
        self.inner.kind().max(EnergyKind::Integrated)
    }
    fn resolution(&self) -> Duration {
        self.inner.resolution().max(Duration::from_millis(10)) // CPU time ticks at USER_HZ
    }
    fn process_view(&self) -> bool {
        true
    }
    fn read(&mut self) -> Result<MeterReading, MeterError> {
        let r = self.inner.read()?;
        let (own, machine) = (self.marks)().ok_or_else(|| {
            MeterError::Read(
                ReadErrorKind::Io,
                "cannot read this process's or the machine's CPU time".into(),
            )
        })?;
        if let Some((e0, own0, machine0)) = self.last {
            let (d_own, d_machine) = ((own - own0).max(0.0), (machine - machine0).max(0.0));
            let share = if d_machine > 0.0 {
                (d_own / d_machine).min(1.0)
            } else {
                1.0
            };
            self.energy_j += (r.energy_j - e0).max(0.0) * share;
        }
        self.last = Some((r.energy_j, own, machine));
        // The band scales with the share: the same relative uncertainty as the machine view.
        self.band_j = r.band_j.map(|(lo, hi)| {
            let f = if r.energy_j > 0.0 {
                self.energy_j / r.energy_j
            } else {
                1.0
            };
            (lo * f, hi * f)
        });
        Ok(MeterReading {
            band_j: self.band_j,
            invalid: r.invalid,
            ..MeterReading::new(self.energy_j, None)
        })
    }
    fn provenance(&self) -> serde_json::Value {
        json!({
            "view": "process",
            "share": "Δ(oae process-tree CPU time) / Δ(machine busy time) per interval, clamped to [0, 1]; 1 when nothing was busy",
            "of": self.inner.name(),
            "inner": self.inner.provenance(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A CPU meter at a constant power, read each second.
    struct Constant {
        w: f64,
        t: f64,
    }

    impl Meter for Constant {
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
            Duration::from_millis(10)
        }
        fn read(&mut self) -> Result<MeterReading, MeterError> {
            self.t += 1.0;
            Ok(MeterReading::new(self.w * self.t, None))
        }
        fn provenance(&self) -> serde_json::Value {
            json!({})
        }
    }

    #[test]
    fn each_interval_is_scaled_by_the_own_share_of_busy_time() {
        // Per second: (own CPU s, machine busy s).
        let steps = Arc::new(Mutex::new(vec![
            (0.0, 0.0),
            (0.5, 2.0),
            (1.0, 2.0),
            (0.0, 0.0),
            (2.0, 1.0),
        ]));
        let (mut own, mut machine) = (0.0, 0.0);
        let s = steps.clone();
        let marks: CpuMarks = Box::new(move || {
            let (o, m) = s.lock().unwrap().remove(0);
            own += o;
            machine += m;
            Some((own, machine))
        });
        let mut v = ProcessView::new(Box::new(Constant { w: 10.0, t: 0.0 }), marks);
        let got: Vec<f64> = (0..5).map(|_| v.read().unwrap().energy_j).collect();
        // 10 J per second × share: ¼, ½, nothing busy (all ours), own > machine (clamped to 1).
        assert_eq!(got, [0.0, 2.5, 7.5, 17.5, 27.5]);
        assert!(v.process_view() && v.domain() == "cpu" && v.kind() == EnergyKind::Estimated);
    }
}
