//! Splitting a meter's energy among the requests it was spent on.
//!
//! Within each sampler interval the meter's power is taken as constant. The replay window
//! is cut at every sample and every request start and end; each piece's energy goes in equal
//! shares to the requests in service during it (time-share attribution), or, when none is,
//! to the **gap bucket** — the idle cost of keeping the deployment up between requests.
//! Each request's `energy_active_j` is its share; `energy_amortized_j` adds an equal share
//! of the gap bucket, which is the honest per-request cost at low request rates. By
//! construction Σ active + gap = window energy; the residual is reported as a check.

/// The attribution of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// Per interval, its share while in service (`None` for requests never served).
    pub active_j: Vec<Option<f64>>,
    /// Energy of the window's pieces with no request in service.
    pub gap_j: f64,
    /// Energy of the whole window.
    pub window_j: f64,
    /// `window_j − (Σ active + gap)`: zero up to rounding.
    pub conservation_error_j: f64,
}

impl Attribution {
    /// Active energy plus an equal share of the gap bucket, per served request.
    pub fn amortized_j(&self) -> Vec<Option<f64>> {
        let served = self.active_j.iter().filter(|a| a.is_some()).count();
        let share = if served > 0 { self.gap_j / served as f64 } else { 0.0 };
        self.active_j.iter().map(|a| a.map(|x| x + share)).collect()
    }
}

/// Attributes the energy of `samples` — (time s, cumulative J), time-ordered — over the
/// window `[from_s, to_s]` to `intervals` — (start s, end s) of each request in service,
/// `None` for requests never served. Returns `None` when the samples do not cover the window.
pub fn attribute(
    samples: &[(f64, f64)],
    intervals: &[Option<(f64, f64)>],
    from_s: f64,
    to_s: f64,
) -> Option<Attribution> {
    let (first, last) = (samples.first()?, samples.last()?);
    if from_s < first.0 || to_s > last.0 || to_s < from_s {
        return None;
    }
    let power_at = |k: usize| -> f64 {
        let (a, b) = (samples[k], samples[k + 1]);
        if b.0 > a.0 { (b.1 - a.1) / (b.0 - a.0) } else { 0.0 }
    };
    // Breakpoints: sample times inside the window, request boundaries, and the window ends.
    let mut events: Vec<(f64, i8, usize)> = Vec::with_capacity(intervals.len() * 2);
    for (i, iv) in intervals.iter().enumerate() {
        if let Some((s, e)) = *iv {
            let (s, e) = (s.clamp(from_s, to_s), e.clamp(from_s, to_s));
            if e > s {
                events.push((s, 1, i));
                events.push((e, -1, i));
            }
        }
    }
    // Ends before starts at the same instant, so back-to-back requests never overlap.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut cuts: Vec<f64> = samples
        .iter()
        .map(|s| s.0)
        .filter(|&t| t > from_s && t < to_s)
        .collect();
    cuts.extend(events.iter().map(|e| e.0));
    cuts.push(from_s);
    cuts.push(to_s);
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();

    let mut active_j: Vec<Option<f64>> = intervals.iter().map(|iv| iv.map(|_| 0.0)).collect();
    let mut active: Vec<usize> = Vec::new();
    let (mut ev, mut k, mut gap_j, mut window_j) = (0, 0, 0.0, 0.0);
    for w in cuts.windows(2) {
        let (x, y) = (w[0], w[1]);
        while ev < events.len() && events[ev].0 <= x {
            let (_, kind, i) = events[ev];
            if kind > 0 {
                active.push(i);
            } else if let Some(p) = active.iter().position(|&a| a == i) {
                active.swap_remove(p);
            }
            ev += 1;
        }
        let mid = 0.5 * (x + y);
        while k + 2 < samples.len() && samples[k + 1].0 <= mid {
            k += 1;
        }
        let e = power_at(k) * (y - x);
        window_j += e;
        if active.is_empty() {
            gap_j += e;
        } else {
            let share = e / active.len() as f64;
            for &i in &active {
                if let Some(a) = active_j[i].as_mut() {
                    *a += share;
                }
            }
        }
    }
    let attributed: f64 = active_j.iter().flatten().sum::<f64>() + gap_j;
    Some(Attribution {
        active_j,
        gap_j,
        window_j,
        conservation_error_j: window_j - attributed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_request_in_constant_power() {
        // 10 W for 10 s; one request in service from 2 s to 5 s.
        let s = [(0.0, 0.0), (5.0, 50.0), (10.0, 100.0)];
        let a = attribute(&s, &[Some((2.0, 5.0)), None], 0.0, 10.0).unwrap();
        assert!((a.active_j[0].unwrap() - 30.0).abs() < 1e-9);
        assert_eq!(a.active_j[1], None);
        assert!((a.gap_j - 70.0).abs() < 1e-9);
        assert!((a.amortized_j()[0].unwrap() - 100.0).abs() < 1e-9);
        assert!(a.conservation_error_j.abs() < 1e-9);
    }

    #[test]
    fn overlapping_requests_share_and_power_changes_are_followed() {
        // 0-2 s at 10 W, 2-4 s at 30 W. Requests A: 1-3, B: 1-2.
        let s = [(0.0, 0.0), (2.0, 20.0), (4.0, 80.0)];
        let a = attribute(&s, &[Some((1.0, 3.0)), Some((1.0, 2.0))], 0.0, 4.0).unwrap();
        // A: 1-2 half of 10 J = 5, 2-3 all of 30 J = 30 → 35. B: 5. Gap: 0-1 (10) + 3-4 (30).
        assert!((a.active_j[0].unwrap() - 35.0).abs() < 1e-9);
        assert!((a.active_j[1].unwrap() - 5.0).abs() < 1e-9);
        assert!((a.gap_j - 40.0).abs() < 1e-9);
        assert!((a.window_j - 80.0).abs() < 1e-9);
    }

    #[test]
    fn conserves_energy_for_many_random_requests() {
        use oae_workloads::rng::{open01, seeded};
        let mut r = seeded(5, &["attr"]);
        let mut e = 0.0;
        let samples: Vec<(f64, f64)> = (0..=100)
            .map(|i| {
                if i > 0 {
                    e += 5.0 + 20.0 * open01(&mut r);
                }
                (i as f64 * 0.1, e)
            })
            .collect();
        let ivs: Vec<Option<(f64, f64)>> = (0..300)
            .map(|_| {
                let s = open01(&mut r) * 10.0;
                (open01(&mut r) > 0.1).then(|| (s, s + open01(&mut r)))
            })
            .collect();
        let a = attribute(&samples, &ivs, 0.5, 9.5).unwrap();
        let total = a.active_j.iter().flatten().sum::<f64>() + a.gap_j;
        assert!((total - a.window_j).abs() < 1e-6 * a.window_j);
        assert!(a.active_j.iter().flatten().all(|&x| x >= 0.0));
    }

    #[test]
    fn window_outside_samples_is_refused() {
        assert!(attribute(&[(1.0, 0.0), (2.0, 1.0)], &[], 0.5, 2.0).is_none());
        assert!(attribute(&[], &[], 0.0, 1.0).is_none());
    }
}
