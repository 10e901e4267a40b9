//! Splitting a meter's energy among the requests it was spent on.
//!
//! Within each sampler interval the meter's power is taken as constant. The window is cut at
//! every sample and at every request's start, first token and end; each piece's energy `E`
//! is split into idle (`P_idle × Δt`, when an idle baseline was measured) and dynamic
//! (`E − idle`, negative residuals kept and totalled). When requests are in service during
//! the piece, both parts go to them **by token work**: a request in prefill does
//! `input_tokens × c_p / prefill time` work per second, one in decode `(output_tokens − 1) /
//! decode time` (decode tokens taken as evenly spread — records carry the first-token and end
//! times, not every token's). When no request is in service the piece goes to the **gap
//! bucket**, the idle cost of keeping the deployment up between requests.
//!
//! Per request: `dyn_j` (its dynamic share), `active_j` (dynamic + idle shares while in
//! service), the same energy split by phase (prefill / decode), and two sensitivities:
//! time-share (each piece split equally among the requests in it) and equal-share (all busy
//! energy split equally among served requests). `amortized_j` adds an equal share of the gap
//! bucket. Σ active + gap = window energy by construction; the residual is the conservation
//! check.
//!
//! [`idle`] measures the loaded-idle power this needs, [`cell`] applies the split to one
//! replay across every metered domain, [`validity`] says whether the run's energy holds up.

pub mod cell;
pub mod idle;
pub mod validity;

/// What attribution needs to know about one served request (times in the timeline's seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Work {
    /// Service start.
    pub start: f64,
    /// First token, when one was produced; before it the request is in prefill.
    pub first_token: Option<f64>,
    /// Service end.
    pub end: f64,
    /// Prefill work: input tokens × the prefill weight `c_p`.
    pub prefill: f64,
    /// Decode work: output tokens after the first.
    pub decode: f64,
}

impl Work {
    /// A request with no token counts (work split by time only).
    pub fn span(start: f64, end: f64) -> Work {
        Work {
            start,
            first_token: None,
            end,
            prefill: 0.0,
            decode: 0.0,
        }
    }

    /// Work per second at time `t`, and whether `t` is in prefill.
    fn rate(&self, t: f64) -> (f64, bool) {
        match self.first_token {
            Some(ft) if t >= ft => {
                let d = self.end - ft;
                (if d > 0.0 { self.decode / d } else { 0.0 }, false)
            }
            Some(ft) => {
                let d = ft - self.start;
                (if d > 0.0 { self.prefill / d } else { 0.0 }, true)
            }
            None => {
                let d = self.end - self.start;
                (if d > 0.0 { self.prefill / d } else { 0.0 }, true)
            }
        }
    }
}

/// The attribution of one window on one meter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attribution {
    /// Per request, its token-work share of dynamic + idle energy while in service (`None`
    /// for requests never served).
    pub active_j: Vec<Option<f64>>,
    /// Per request, its share of dynamic energy (`None` without an idle baseline).
    pub dyn_j: Vec<Option<f64>>,
    /// Per request, the part of `active_j` spent while it was in prefill.
    pub prefill_j: Vec<Option<f64>>,
    /// Per request, the part of `active_j` spent while it was decoding.
    pub decode_j: Vec<Option<f64>>,
    /// Sensitivity: per request, its time-share of the pieces it was in service during.
    pub time_share_j: Vec<Option<f64>>,
    /// Sensitivity: busy energy / served requests, the same for every served request.
    pub equal_share_j: Option<f64>,
    /// Energy of the window's pieces with no request in service.
    pub gap_j: f64,
    /// Energy of pieces with at least one request in service.
    pub busy_j: f64,
    /// Idle-baseline energy over the whole window (`P_idle × span`), when a baseline exists.
    pub idle_j: Option<f64>,
    /// Sum of pieces whose energy fell below the idle baseline (≤ 0): noise or drift.
    pub negative_dyn_j: f64,
    /// Energy of the whole window.
    pub window_j: f64,
    /// `window_j − (Σ active + gap)`: zero up to rounding.
    pub conservation_error_j: f64,
}

impl Attribution {
    /// Active energy plus an equal share of the gap bucket (and of `extra_gap_j`, e.g. idle
    /// energy skipped by time compression), per served request.
    pub fn amortized_j(&self, extra_gap_j: f64) -> Vec<Option<f64>> {
        let served = self.active_j.iter().filter(|a| a.is_some()).count();
        let share = if served > 0 {
            (self.gap_j + extra_gap_j) / served as f64
        } else {
            0.0
        };
        self.active_j.iter().map(|a| a.map(|x| x + share)).collect()
    }

    /// Whether Σ active + gap equals the window energy to rounding.
    pub fn conserves(&self) -> bool {
        self.conservation_error_j.abs() <= 1e-6 * self.window_j.abs().max(1.0)
    }
}

/// Attributes the energy of `samples` — (time s, cumulative J), time-ordered — over the
/// window `[from_s, to_s]` to `requests` (`None` for requests never served). `idle_w` is the
/// idle baseline power of this meter, when measured. Returns `None` when the samples do not
/// cover the window.
pub fn attribute(
    samples: &[(f64, f64)],
    requests: &[Option<Work>],
    from_s: f64,
    to_s: f64,
    idle_w: Option<f64>,
) -> Option<Attribution> {
    let (first, last) = (samples.first()?, samples.last()?);
    if from_s < first.0 || to_s > last.0 || to_s < from_s {
        return None;
    }
    let power_at = |k: usize| -> f64 {
        match (samples.get(k), samples.get(k + 1)) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / (b.0 - a.0),
            _ => 0.0,
        }
    };
    // Breakpoints: sample times inside the window, request boundaries, and the window ends.
    let mut events: Vec<(f64, i8, usize)> = Vec::with_capacity(requests.len() * 2);
    let mut cuts: Vec<f64> = Vec::with_capacity(samples.len() + requests.len() * 3 + 2);
    for (i, w) in requests.iter().enumerate() {
        if let Some(w) = w {
            let (s, e) = (w.start.clamp(from_s, to_s), w.end.clamp(from_s, to_s));
            if e > s {
                events.push((s, 1, i));
                events.push((e, -1, i));
                cuts.extend([s, e]);
                if let Some(ft) = w.first_token
                    && ft > s
                    && ft < e
                {
                    cuts.push(ft);
                }
            }
        }
    }
    // Ends before starts at the same instant, so back-to-back requests never overlap.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    cuts.extend(samples.iter().map(|s| s.0).filter(|&t| t > from_s && t < to_s));
    cuts.push(from_s);
    cuts.push(to_s);
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();

    let n = requests.len();
    let served = |v: f64| -> Vec<Option<f64>> { requests.iter().map(|w| w.map(|_| v)).collect() };
    let mut a = Attribution {
        active_j: served(0.0),
        dyn_j: if idle_w.is_some() { served(0.0) } else { vec![None; n] },
        prefill_j: served(0.0),
        decode_j: served(0.0),
        time_share_j: served(0.0),
        ..Attribution::default()
    };
    let mut active: Vec<usize> = Vec::new();
    let mut weights: Vec<(usize, f64, bool)> = Vec::new();
    let (mut ev, mut k) = (0, 0);
    for w in cuts.windows(2) {
        let (x, y) = (w[0], w[1]);
        while ev < events.len() && events[ev].0 <= x {
            let (_, kind, i) = events[ev];
            if kind > 0 {
                active.push(i);
            } else if let Some(p) = active.iter().position(|&r| r == i) {
                active.swap_remove(p);
            }
            ev += 1;
        }
        let mid = 0.5 * (x + y);
        while k + 2 < samples.len() && samples[k + 1].0 <= mid {
            k += 1;
        }
        let dt = y - x;
        let e = power_at(k) * dt;
        a.window_j += e;
        if active.is_empty() {
            a.gap_j += e;
            continue;
        }
        a.busy_j += e;
        let e_dyn = idle_w.map(|p| e - p * dt);
        if let Some(d) = e_dyn
            && d < 0.0
        {
            a.negative_dyn_j += d;
        }
        weights.clear();
        weights.extend(active.iter().map(|&i| {
            let (r, pre) = requests[i].expect("active requests are served").rate(mid);
            (i, r, pre)
        }));
        let total_w: f64 = weights.iter().map(|w| w.1).sum();
        let even = 1.0 / weights.len() as f64;
        for &(i, r, pre) in &weights {
            let share = if total_w > 0.0 { r / total_w } else { even };
            add(&mut a.active_j[i], share * e);
            add(&mut a.time_share_j[i], even * e);
            if let Some(d) = e_dyn {
                add(&mut a.dyn_j[i], share * d);
            }
            add(if pre { &mut a.prefill_j[i] } else { &mut a.decode_j[i] }, share * e);
        }
    }
    let n_served = requests.iter().filter(|w| w.is_some()).count();
    a.equal_share_j = (n_served > 0).then(|| a.busy_j / n_served as f64);
    a.idle_j = idle_w.map(|p| p * (to_s - from_s));
    let attributed: f64 = a.active_j.iter().flatten().sum::<f64>() + a.gap_j;
    a.conservation_error_j = a.window_j - attributed;
    Some(a)
}

fn add(slot: &mut Option<f64>, x: f64) {
    if let Some(v) = slot.as_mut() {
        *v += x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(s: f64, e: f64) -> Option<Work> {
        Some(Work::span(s, e))
    }

    #[test]
    fn single_request_in_constant_power() {
        // 10 W for 10 s; one request in service from 2 s to 5 s; idle baseline 4 W.
        let s = [(0.0, 0.0), (5.0, 50.0), (10.0, 100.0)];
        let a = attribute(&s, &[span(2.0, 5.0), None], 0.0, 10.0, Some(4.0)).unwrap();
        assert!((a.active_j[0].unwrap() - 30.0).abs() < 1e-9);
        assert!((a.dyn_j[0].unwrap() - 18.0).abs() < 1e-9); // (10 − 4) W × 3 s
        assert_eq!(a.active_j[1], None);
        assert!((a.gap_j - 70.0).abs() < 1e-9);
        assert!((a.amortized_j(0.0)[0].unwrap() - 100.0).abs() < 1e-9);
        assert!((a.amortized_j(12.0)[0].unwrap() - 112.0).abs() < 1e-9);
        assert!(a.conserves());
        assert_eq!(a.idle_j, Some(40.0));
    }

    #[test]
    fn overlapping_requests_share_and_power_changes_are_followed() {
        // 0-2 s at 10 W, 2-4 s at 30 W. Requests A: 1-3, B: 1-2 (no token counts: equal split).
        let s = [(0.0, 0.0), (2.0, 20.0), (4.0, 80.0)];
        let a = attribute(&s, &[span(1.0, 3.0), span(1.0, 2.0)], 0.0, 4.0, None).unwrap();
        // A: 1-2 half of 10 J = 5, 2-3 all of 30 J = 30 → 35. B: 5. Gap: 0-1 (10) + 3-4 (30).
        assert!((a.active_j[0].unwrap() - 35.0).abs() < 1e-9);
        assert!((a.active_j[1].unwrap() - 5.0).abs() < 1e-9);
        assert!((a.gap_j - 40.0).abs() < 1e-9);
        assert!((a.window_j - 80.0).abs() < 1e-9);
        assert_eq!(a.dyn_j, vec![None, None]);
        assert_eq!(a.equal_share_j, Some(20.0));
    }

    #[test]
    fn token_work_weights_and_phases() {
        // 20 W for 4 s. A: prefill 0-1 s (100 tokens), decode 1-4 s (30 tokens → 10/s).
        // B: decode only, 0-4 s, 20 tokens after its first (5/s), first token at 0.
        let s = [(0.0, 0.0), (4.0, 80.0)];
        let a_work = Work {
            start: 0.0,
            first_token: Some(1.0),
            end: 4.0,
            prefill: 100.0,
            decode: 30.0,
        };
        let b_work = Work {
            start: 0.0,
            first_token: Some(0.0),
            end: 4.0,
            prefill: 0.0,
            decode: 20.0,
        };
        let a = attribute(&s, &[Some(a_work), Some(b_work)], 0.0, 4.0, Some(5.0)).unwrap();
        // 0-1 s (20 J): A 100/s vs B 5/s. 1-4 s (60 J): A 10/s vs B 5/s.
        let a_pre = 20.0 * 100.0 / 105.0;
        let a_dec = 60.0 * 10.0 / 15.0;
        assert!((a.prefill_j[0].unwrap() - a_pre).abs() < 1e-9);
        assert!((a.decode_j[0].unwrap() - a_dec).abs() < 1e-9);
        assert!((a.active_j[0].unwrap() - (a_pre + a_dec)).abs() < 1e-9);
        assert!((a.active_j[1].unwrap() - (80.0 - a_pre - a_dec)).abs() < 1e-9);
        // Dynamic: 15 W above idle, split the same way.
        assert!((a.dyn_j[0].unwrap() - 0.75 * (a_pre + a_dec)).abs() < 1e-9);
        // Time-share sensitivity: an even split.
        assert!((a.time_share_j[0].unwrap() - 40.0).abs() < 1e-9);
        assert!(a.conserves());
    }

    #[test]
    fn power_below_idle_is_a_negative_residual_kept_and_totalled() {
        let s = [(0.0, 0.0), (2.0, 6.0)]; // 3 W
        let a = attribute(&s, &[span(0.0, 2.0)], 0.0, 2.0, Some(5.0)).unwrap();
        assert!((a.dyn_j[0].unwrap() + 4.0).abs() < 1e-9);
        assert!((a.negative_dyn_j + 4.0).abs() < 1e-9);
    }

    #[test]
    fn conserves_energy_for_many_random_requests() {
        use oae_core::rng::{open01, seeded};
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
        let ivs: Vec<Option<Work>> = (0..300)
            .map(|_| {
                let s = open01(&mut r) * 10.0;
                let d = open01(&mut r);
                (open01(&mut r) > 0.1).then(|| Work {
                    start: s,
                    first_token: Some(s + d * open01(&mut r)),
                    end: s + d,
                    prefill: 100.0 * open01(&mut r),
                    decode: 50.0 * open01(&mut r),
                })
            })
            .collect();
        let a = attribute(&samples, &ivs, 0.5, 9.5, Some(3.0)).unwrap();
        let total = a.active_j.iter().flatten().sum::<f64>() + a.gap_j;
        assert!((total - a.window_j).abs() < 1e-6 * a.window_j);
        assert!(a.active_j.iter().flatten().all(|&x| x >= 0.0));
        for i in 0..ivs.len() {
            if let Some(x) = a.active_j[i] {
                let phases = a.prefill_j[i].unwrap() + a.decode_j[i].unwrap();
                assert!((phases - x).abs() < 1e-9);
            }
        }
        let ts: f64 = a.time_share_j.iter().flatten().sum();
        assert!((ts - a.busy_j).abs() < 1e-6 * a.busy_j);
    }

    #[test]
    fn window_outside_samples_is_refused() {
        assert!(attribute(&[(1.0, 0.0), (2.0, 1.0)], &[], 0.5, 2.0, None).is_none());
        assert!(attribute(&[], &[], 0.0, 1.0, None).is_none());
    }
}
