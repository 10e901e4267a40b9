//! run.json `energy.validity`: whether a run's energy figures can be trusted — every cell's
//! conservation and coverage, counter resets, meter failures, cross-checks between meters of
//! one domain, and idle drift.

use oae_core::rundir::CellSummary;
use oae_core::rundir::energy::{
    CrossCheck, EnergyValidity, IdleDrift, InvalidCell, MeterFailureInfo, ReadErrorCount, SourceResolution,
};

use super::idle::IDLE_DRIFT_FLAG_PCT;
use crate::EnergyKind;
use crate::meters::Timeline;

/// Whether any primary meter is an estimate.
pub fn estimated(t: &Timeline) -> bool {
    t.meters.iter().any(|m| m.primary && m.kind == EnergyKind::Estimated)
}

/// Every secondary meter against its domain's primary over their common span; and the
/// first counter-vs-integrated-power ratio (NVML's counter against its power samples).
fn cross_checks(t: &Timeline) -> (Vec<CrossCheck>, Option<f64>) {
    let mut cross = Vec::new();
    let mut counter_vs_power = None;
    for (m, info) in t.meters.iter().enumerate() {
        if info.primary || info.process_view {
            continue;
        }
        let Some(p) = t.meters.iter().position(|x| x.primary && x.domain == info.domain) else {
            continue;
        };
        let (a, b) = (t.of(p), t.of(m));
        let (Some(lo), Some(hi)) = (
            a.first().zip(b.first()).map(|(x, y)| x.t_s.max(y.t_s)),
            a.last().zip(b.last()).map(|(x, y)| x.t_s.min(y.t_s)),
        ) else {
            continue;
        };
        let ratio = t
            .energy_between(p, lo, hi)
            .zip(t.energy_between(m, lo, hi))
            .and_then(|(x, y)| (y > 0.0).then(|| x / y));
        let counter_power = t.meters[p].kind == EnergyKind::Measured && info.kind == EnergyKind::Integrated;
        if counter_power && counter_vs_power.is_none() {
            counter_vs_power = ratio;
        }
        cross.push(CrossCheck {
            domain: info.domain.clone(),
            primary: t.meters[p].name.clone(),
            other: info.name.clone(),
            ratio,
            span_s: hi - lo,
            flagged: counter_power && ratio.is_some_and(|r| (r - 1.0).abs() > 0.10),
        });
    }
    (cross, counter_vs_power)
}

/// The validity flags of a run so far: `cells` summarised, `drifts` of each method's idle
/// baselines in each primary domain.
pub fn validity(t: &Timeline, cells: &[CellSummary], drifts: &[IdleDrift]) -> EnergyValidity {
    let counter_monotonic = !t
        .samples
        .iter()
        .any(|s| s.invalid && t.meters[s.meter].kind == EnergyKind::Measured);
    let (cross, counter_vs_power) = cross_checks(t);
    let drift = drifts.iter().map(|d| d.drift_pct).fold(None::<f64>, |acc, d| {
        Some(acc.map_or(d, |a: f64| if d.abs() > a.abs() { d } else { a }))
    });
    let invalid_cells: Vec<InvalidCell> = cells
        .iter()
        .filter_map(|c| {
            let e = c.energy.as_ref()?;
            (!e.valid).then(|| InvalidCell {
                method: c.method.clone(),
                workload: c.workload.clone(),
                reasons: e.invalid_reasons.clone(),
            })
        })
        .collect();
    let drift_flagged = drift.is_some_and(|d| d.abs() > IDLE_DRIFT_FLAG_PCT);
    let co_tenant = cells.iter().any(|c| {
        c.energy
            .as_ref()
            .and_then(|e| e.process_view.as_ref())
            .is_some_and(|p| p.co_tenant_flagged)
    });
    EnergyValidity {
        valid: invalid_cells.is_empty(),
        invalid_cells,
        flagged: cross.iter().any(|c| c.flagged)
            || drift_flagged
            || co_tenant
            || !t.failures.is_empty()
            || !counter_monotonic,
        estimated: estimated(t),
        sampler_max_gap_ms: t.max_gap_ms,
        sampler_cpu_s: t.sampler_cpu_s,
        read_errors: t.errors.len(),
        read_errors_by_kind: errors_by_kind(t),
        meter_failures: t
            .failures
            .iter()
            .map(|f| MeterFailureInfo {
                source: t.meters[f.meter].name.clone(),
                domain: t.meters[f.meter].domain.clone(),
                t_s: f.t_s,
                reason: f.reason.clone(),
            })
            .collect(),
        counter_monotonic,
        counter_vs_power_ratio: counter_vs_power,
        cross_checks: cross,
        idle_drift_pct: drift,
        idle_drift_flagged: drift_flagged,
        idle_drift_by_method: drifts.to_vec(),
        source_resolution_ms: t
            .meters
            .iter()
            .enumerate()
            .map(|(i, m)| SourceResolution {
                source: m.name.clone(),
                domain: m.domain.clone(),
                resolution_ms: m.resolution_ms,
                observed_update_ms: observed_update_ms(t, i),
            })
            .collect(),
    }
}

/// Read errors grouped by meter and kind, in meter order.
fn errors_by_kind(t: &Timeline) -> Vec<ReadErrorCount> {
    let mut out: Vec<(usize, ReadErrorCount)> = Vec::new();
    for (_, meter, kind, message) in &t.errors {
        match out.iter_mut().find(|(m, c)| m == meter && c.kind == kind.name()) {
            Some((_, c)) => c.count += 1,
            None => out.push((
                *meter,
                ReadErrorCount {
                    source: t.meters[*meter].name.clone(),
                    domain: t.meters[*meter].domain.clone(),
                    kind: kind.name().into(),
                    count: 1,
                    first_message: message.clone(),
                },
            )),
        }
    }
    out.sort_by_key(|(m, _)| *m);
    out.into_iter().map(|(_, c)| c).collect()
}

/// The median interval between the times `meter`'s cumulative energy changed, ms.
pub fn observed_update_ms(t: &Timeline, meter: usize) -> Option<f64> {
    let mut changes = Vec::new();
    let mut prev: Option<f64> = None;
    for s in t.samples.iter().filter(|s| s.meter == meter) {
        if prev.is_some_and(|p| s.energy_j != p) {
            changes.push(s.t_s);
        }
        prev = Some(s.energy_j);
    }
    let mut gaps: Vec<f64> = changes.windows(2).map(|w| (w[1] - w[0]) * 1e3).collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_by(f64::total_cmp);
    Some(gaps[gaps.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meters::{MeterFailure, MeterInfo, Sample};

    fn meter(name: &str, kind: EnergyKind, primary: bool) -> MeterInfo {
        MeterInfo {
            name: name.into(),
            domain: "gpu:0".into(),
            kind,
            resolution_ms: 100.0,
            provenance: serde_json::Value::Null,
            primary,
            process_view: false,
        }
    }

    /// A counter at 100 W and an integrated power meter at `power_w`, 0–10 s.
    fn timeline(power_w: f64) -> Timeline {
        let mut samples = Vec::new();
        for i in 0..=10 {
            for (m, w) in [(0, 100.0), (1, power_w)] {
                samples.push(Sample {
                    t_s: i as f64,
                    meter: m,
                    energy_j: w * i as f64,
                    power_w: Some(w),
                    invalid: false,
                    band_j: None,
                });
            }
        }
        Timeline {
            meters: vec![
                meter("nvml-counter", EnergyKind::Measured, true),
                meter("nvml-power", EnergyKind::Integrated, false),
            ],
            samples,
            ..Timeline::default()
        }
    }

    #[test]
    fn counter_and_power_that_agree_pass_and_that_disagree_are_flagged() {
        let v = validity(&timeline(99.0), &[], &[]);
        assert!(v.valid && !v.flagged && !v.estimated, "{v:?}");
        assert!((v.counter_vs_power_ratio.unwrap() - 100.0 / 99.0).abs() < 1e-9);
        assert_eq!(v.cross_checks.len(), 1);
        let v = validity(&timeline(80.0), &[], &[]);
        assert!(v.flagged && v.cross_checks[0].flagged, "25 % apart: {v:?}");
    }

    #[test]
    fn a_counter_reset_a_failure_and_idle_drift_are_flagged() {
        let mut t = timeline(100.0);
        t.samples[4].invalid = true;
        let v = validity(&t, &[], &[]);
        assert!(!v.counter_monotonic && v.flagged);
        let mut t = timeline(100.0);
        t.failures.push(MeterFailure {
            meter: 1,
            t_s: 3.0,
            reason: "gone".into(),
        });
        let v = validity(&t, &[], &[]);
        assert!(v.flagged && v.meter_failures[0].source == "nvml-power");
        let drifts = [
            IdleDrift {
                method: "a".into(),
                domain: "gpu:0".into(),
                drift_pct: 4.0,
            },
            IdleDrift {
                method: "b".into(),
                domain: "gpu:0".into(),
                drift_pct: -12.0,
            },
        ];
        let v = validity(&timeline(100.0), &[], &drifts);
        assert_eq!(v.idle_drift_pct, Some(-12.0), "the largest drift by size");
        assert!(v.idle_drift_flagged && v.flagged);
    }

    #[test]
    fn observed_update_period_is_the_median_time_between_changes() {
        // Sampled every 5 ms, the counter changes every 100 ms: the run says 100, not 5.
        let mut t = timeline(100.0);
        t.samples.clear();
        for i in 0..=200 {
            let t_s = i as f64 * 0.005;
            let steps = (t_s / 0.1 + 1e-9).floor();
            t.samples.push(Sample {
                t_s,
                meter: 0,
                energy_j: steps * 10.0,
                power_w: None,
                invalid: false,
                band_j: None,
            });
        }
        let got = observed_update_ms(&t, 0).unwrap();
        assert!((got - 100.0).abs() < 1e-6, "{got}");
        assert_eq!(observed_update_ms(&t, 1), None, "no samples: no figure");
        let v = validity(&t, &[], &[]);
        assert!((v.source_resolution_ms[0].observed_update_ms.unwrap() - 100.0).abs() < 1e-6);
    }

    #[test]
    fn read_errors_are_counted_by_meter_and_kind() {
        use crate::meters::ReadErrorKind;
        let mut t = timeline(100.0);
        t.errors = vec![
            (
                1.0,
                1,
                ReadErrorKind::Timeout,
                "gpu:0: power: the driver timed out".into(),
            ),
            (2.0, 0, ReadErrorKind::DeviceLost, "gpu:0: energy counter: lost".into()),
            (3.0, 1, ReadErrorKind::Timeout, "again".into()),
        ];
        let v = validity(&t, &[], &[]);
        assert_eq!(v.read_errors, 3);
        let got: Vec<(&str, &str, usize)> = v
            .read_errors_by_kind
            .iter()
            .map(|c| (c.source.as_str(), c.kind.as_str(), c.count))
            .collect();
        assert_eq!(got, [("nvml-counter", "device_lost", 1), ("nvml-power", "timeout", 2)]);
        assert_eq!(
            v.read_errors_by_kind[1].first_message,
            "gpu:0: power: the driver timed out"
        );
    }
}
