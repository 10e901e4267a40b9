//! Loaded-idle power: measured in baseline windows before and after a method's replays (model
//! resident, nothing running), per meter, with the drift between the two windows — and the
//! run.json record of it.

use oae_core::rundir::MeterInfo;
use oae_core::rundir::energy::{IdleBaseline, IdleMeter, Span};

use crate::meters::Timeline;

/// Drift between the before and after idle baselines beyond which a run is flagged, %.
pub const IDLE_DRIFT_FLAG_PCT: f64 = 10.0;

/// Loaded-idle power from baseline windows: the median of the mean power over consecutive
/// `bin_s` bins of the cumulative samples (time s, J) in each window, with the interquartile
/// range. `None` when the windows hold fewer than three bins in all.
pub fn idle_power(samples: &[(f64, f64)], windows: &[(f64, f64)], bin_s: f64) -> Option<IdlePower> {
    let at = |t: f64| -> Option<f64> {
        let i = samples.partition_point(|s| s.0 <= t);
        let a = samples.get(i.checked_sub(1)?)?;
        match samples.get(i) {
            Some(b) if b.0 > a.0 => Some(a.1 + (b.1 - a.1) * (t - a.0) / (b.0 - a.0)),
            _ if (t - a.0).abs() < 1e-12 => Some(a.1),
            _ => None,
        }
    };
    let mut p: Vec<f64> = Vec::new();
    for &(from_s, to_s) in windows {
        let bins = ((to_s - from_s) / bin_s + 1e-9).floor() as usize;
        p.extend((0..bins).filter_map(|b| {
            let (x, y) = (from_s + b as f64 * bin_s, from_s + (b + 1) as f64 * bin_s);
            Some((at(y)? - at(x)?) / bin_s)
        }));
    }
    if p.len() < 3 {
        return None;
    }
    p.sort_by(f64::total_cmp);
    let q = |f: f64| crate::stats::quantile(&p, f);
    Some(IdlePower {
        median_w: q(0.5),
        iqr_w: (q(0.25), q(0.75)),
        bins: p.len(),
        bin_s,
    })
}

/// A loaded-idle power estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdlePower {
    /// Median of the per-bin mean power, W.
    pub median_w: f64,
    /// Interquartile range of the per-bin power, W.
    pub iqr_w: (f64, f64),
    /// Bins used.
    pub bins: usize,
    /// Bin length, s.
    pub bin_s: f64,
}

/// Bin length for idle power: 1 s, shorter for baselines under 3 s (noted in run.json).
fn idle_bin_s(windows: &[(f64, f64)]) -> f64 {
    let shortest = windows.iter().map(|w| w.1 - w.0).fold(f64::INFINITY, f64::min);
    if shortest.is_finite() {
        (shortest / 3.0).min(1.0)
    } else {
        1.0
    }
}

/// One meter's idle power from both baseline windows, and from each alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleFit {
    /// Both windows pooled: the figure attribution uses.
    pub both: IdlePower,
    /// The window before the replays.
    pub before: Option<IdlePower>,
    /// The window after.
    pub after: Option<IdlePower>,
}

impl IdleFit {
    /// (after − before) / before, %.
    pub fn drift_pct(&self) -> Option<f64> {
        let (b, a) = (self.before?.median_w, self.after?.median_w);
        (b > 0.0).then(|| (a - b) / b * 100.0)
    }
}

/// Per meter of `t`: idle power from the baseline windows (`None` for a meter without
/// enough samples in them, or for every meter when there were no windows).
pub fn idle_model(t: &Timeline, before: Option<(f64, f64)>, after: Option<(f64, f64)>) -> Vec<Option<IdleFit>> {
    let windows: Vec<(f64, f64)> = before.into_iter().chain(after).collect();
    if windows.is_empty() {
        return vec![None; t.meters.len()];
    }
    let bin = idle_bin_s(&windows);
    (0..t.meters.len())
        .map(|m| {
            let pts: Vec<(f64, f64)> = t.of(m).iter().map(|s| (s.t_s, s.energy_j)).collect();
            let both = idle_power(&pts, &windows, bin)?;
            let one = |w: Option<(f64, f64)>| w.and_then(|w| idle_power(&pts, &[w], bin));
            Some(IdleFit {
                both,
                before: one(before),
                after: one(after),
            })
        })
        .collect()
}

/// run.json's record of a method's idle baselines. `recommended_s` is the methodology's
/// baseline length: shorter windows get a note.
pub fn baseline_record(
    meters: &[MeterInfo],
    fits: &[Option<IdleFit>],
    before: Option<(f64, f64)>,
    after: Option<(f64, f64)>,
    recommended_s: f64,
) -> IdleBaseline {
    let records = fits
        .iter()
        .zip(meters)
        .filter_map(|(fit, info)| {
            let fit = fit.as_ref()?;
            let drift = fit.drift_pct();
            Some(IdleMeter {
                source: info.name.clone(),
                domain: info.domain.clone(),
                idle_w: fit.both.median_w,
                idle_iqr_w: fit.both.iqr_w,
                bins: fit.both.bins,
                bin_s: fit.both.bin_s,
                before_w: fit.before.map(|p| p.median_w),
                after_w: fit.after.map(|p| p.median_w),
                idle_drift_pct: drift,
                drift_flagged: drift.is_some_and(|d| d.abs() > IDLE_DRIFT_FLAG_PCT),
            })
        })
        .collect();
    let short = [before, after].iter().flatten().any(|w| w.1 - w.0 < recommended_s);
    let note = if before.is_none() && after.is_none() {
        Some("no idle baseline: energy_dyn_j is null and compressed idle time is not added back".to_string())
    } else if short {
        Some(format!(
            "baseline shorter than {recommended_s:.0} s: idle power is noisier than the methodology asks for"
        ))
    } else {
        None
    };
    IdleBaseline {
        before: before.map(|(a, b)| Span::new(a, b)),
        after: after.map(|(a, b)| Span::new(a, b)),
        meters: records,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One meter drawing `before_w` for 0–4 s and `after_w` for 4–8 s.
    fn timeline(before_w: f64, after_w: f64) -> Timeline {
        Timeline::one_meter(8, |t| {
            if t <= 4.0 {
                before_w * t
            } else {
                before_w * 4.0 + after_w * (t - 4.0)
            }
        })
    }

    #[test]
    fn idle_power_is_the_median_of_bins() {
        // 10 W for 5 s, then a 1 s spike at 100 W, then 10 W: median stays 10 W.
        let s = [(0.0, 0.0), (5.0, 50.0), (6.0, 150.0), (8.0, 170.0)];
        let p = idle_power(&s, &[(0.0, 8.0)], 1.0).unwrap();
        assert!((p.median_w - 10.0).abs() < 1e-9, "{p:?}");
        assert_eq!(p.bins, 8);
        assert!(idle_power(&s, &[(0.0, 2.0)], 1.0).is_none());
        // Two windows pool their bins.
        assert_eq!(idle_power(&s, &[(0.0, 2.0), (6.0, 8.0)], 1.0).unwrap().bins, 4);
    }

    #[test]
    fn drift_between_the_windows_is_measured_and_flagged() {
        let t = timeline(10.0, 12.0);
        let fits = idle_model(&t, Some((0.0, 4.0)), Some((4.0, 8.0)));
        let fit = fits[0].unwrap();
        assert!((fit.drift_pct().unwrap() - 20.0).abs() < 1e-9, "{fit:?}");
        let rec = baseline_record(&t.meters, &fits, Some((0.0, 4.0)), Some((4.0, 8.0)), 30.0);
        assert!(rec.meters[0].drift_flagged && rec.meters[0].idle_w >= 10.0);
        assert!(
            rec.note.as_deref().unwrap().contains("shorter than 30 s"),
            "{:?}",
            rec.note
        );
        assert_eq!(rec.before.unwrap().duration_s, 4.0);
        let steady = timeline(10.0, 10.5);
        let rec = baseline_record(
            &steady.meters,
            &idle_model(&steady, Some((0.0, 4.0)), Some((4.0, 8.0))),
            Some((0.0, 4.0)),
            Some((4.0, 8.0)),
            4.0,
        );
        assert!(!rec.meters[0].drift_flagged && rec.note.is_none(), "{rec:?}");
    }

    #[test]
    fn no_windows_no_idle_power_and_a_note_saying_so() {
        let t = timeline(10.0, 10.0);
        let fits = idle_model(&t, None, None);
        assert!(fits[0].is_none());
        let rec = baseline_record(&t.meters, &fits, None, None, 30.0);
        assert!(rec.meters.is_empty() && rec.note.unwrap().contains("no idle baseline"));
    }
}
