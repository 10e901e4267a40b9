//! The energy of one replay: each metered domain's energy over the cell's window split among
//! its records by [`super::attribute`], summed over domains (one primary meter per domain,
//! or its fallback), written into the records and summarised for summary.json.

use std::collections::BTreeMap;

use oae_core::rundir::{CO_TENANT_SHARE, DomainEnergy, DomainJ, EnergySummary, ProcessView, Sensitivity};

use super::{Attribution, Work, attribute};
use crate::meters::{Sample, Timeline};
use crate::stats::Stat;
use crate::{EnergyKind, RequestRecord};

/// The replay window of a cell on the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellWindow {
    /// Replay start, s on the timeline.
    pub t0_s: f64,
    /// Replay end.
    pub end_s: f64,
    /// Idle time removed from the schedule by compression, s (its idle energy is added to
    /// the gap bucket analytically).
    pub compressed_s: f64,
}

/// What attribution needs besides the timeline and the records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// `c_p`: token-work weight of a prefill token relative to a decode token.
    pub prefill_weight: f64,
    /// The method's setup energy, J (reported with the cell).
    pub setup_j: Option<f64>,
    /// Two-sided confidence of the per-request statistics.
    pub confidence: f64,
}

/// Each record's work, on the timeline's clock (`None`: never served).
fn works(records: &[RequestRecord], t0_s: f64, prefill_weight: f64) -> Vec<Option<Work>> {
    records
        .iter()
        .map(|r| {
            let (s, e) = r.started_s.zip(r.finished_s)?;
            Some(Work {
                start: t0_s + s,
                first_token: r.first_token_s.map(|x| t0_s + x),
                end: t0_s + e,
                prefill: f64::from(r.input_tokens.unwrap_or(0)) * prefill_weight,
                decode: f64::from(r.output_tokens.saturating_sub(1)),
            })
        })
        .collect()
}

/// The estimated source's low/high cumulative energy over `[t0, end]`, linearly
/// interpolated between samples; `None` when the samples carry no band.
fn band(pts: &[&Sample], t0_s: f64, end_s: f64) -> Option<(f64, f64)> {
    let at = |x: f64| -> Option<(f64, f64)> {
        let i = pts.partition_point(|s| s.t_s <= x);
        let (p, q) = (pts.get(i.checked_sub(1)?)?, pts.get(i).unwrap_or(&pts[i - 1]));
        let (bp, bq) = (p.band_j?, q.band_j?);
        let f = if q.t_s > p.t_s {
            (x - p.t_s) / (q.t_s - p.t_s)
        } else {
            0.0
        };
        Some((bp.0 + (bq.0 - bp.0) * f, bp.1 + (bq.1 - bp.1) * f))
    };
    let (b0, b1) = at(t0_s).zip(at(end_s))?;
    Some((b1.0 - b0.0, b1.1 - b0.1))
}

/// Why a domain is served by a secondary meter.
fn fallback_reason(t: &Timeline, domain: &str) -> String {
    t.failures
        .iter()
        .find(|x| t.meters[x.meter].domain == domain && t.meters[x.meter].primary)
        .map(|x| {
            format!(
                "primary {} failed at {:.1} s: {}",
                t.meters[x.meter].name, x.t_s, x.reason
            )
        })
        .unwrap_or_else(|| "the primary meter does not cover the window".into())
}

/// Per-request and per-cell sums over the domains attributed so far.
struct Sums {
    a: Attribution,
    amortized: Vec<Option<f64>>,
    used: Vec<usize>,
    idle_w: Option<f64>,
    compressed_j: Option<f64>,
    dyn_missing: bool,
    band: (f64, f64),
    band_any: bool,
    invalid: Vec<String>,
    fallbacks: Vec<String>,
    /// Each domain's own attribution.
    parts: Vec<DomainPart>,
}

/// One domain's attribution within a cell.
struct DomainPart {
    meter: usize,
    a: Attribution,
    amortized: Vec<Option<f64>>,
    idle_w: Option<f64>,
}

/// Per-request statistics of a figure read from each record (grouped by trial).
type RecordStat<'a> = &'a dyn Fn(&dyn Fn(&RequestRecord) -> Option<f64>) -> Option<Stat>;

impl Sums {
    fn new(n: usize) -> Sums {
        Sums {
            a: Attribution {
                active_j: vec![None; n],
                dyn_j: vec![None; n],
                prefill_j: vec![None; n],
                decode_j: vec![None; n],
                time_share_j: vec![None; n],
                ..Attribution::default()
            },
            amortized: vec![None; n],
            used: Vec::new(),
            idle_w: Some(0.0),
            compressed_j: Some(0.0),
            dyn_missing: false,
            band: (0.0, 0.0),
            band_any: false,
            invalid: Vec::new(),
            fallbacks: Vec::new(),
            parts: Vec::new(),
        }
    }

    /// Adds one domain's attribution (meter `m`, idle power `idle`).
    fn add(&mut self, m: usize, a: &Attribution, idle: Option<f64>, compressed_s: f64, band: Option<(f64, f64)>) {
        match band {
            Some((lo, hi)) => {
                self.band.0 += lo;
                self.band.1 += hi;
                self.band_any = true;
            }
            None => {
                self.band.0 += a.window_j;
                self.band.1 += a.window_j;
            }
        }
        let extra = idle.map(|p| p * compressed_s);
        self.compressed_j = self.compressed_j.zip(extra).map(|(x, y)| x + y);
        self.idle_w = self.idle_w.zip(idle).map(|(x, y)| x + y);
        self.dyn_missing |= idle.is_none();
        let merge = |dst: &mut Vec<Option<f64>>, src: &[Option<f64>]| {
            for (d, s) in dst.iter_mut().zip(src) {
                if let Some(s) = s {
                    *d.get_or_insert(0.0) += s;
                }
            }
        };
        let amortized = a.amortized_j(extra.unwrap_or(0.0));
        merge(&mut self.amortized, &amortized);
        self.parts.push(DomainPart {
            meter: m,
            a: a.clone(),
            amortized,
            idle_w: idle,
        });
        merge(&mut self.a.active_j, &a.active_j);
        merge(&mut self.a.dyn_j, &a.dyn_j);
        merge(&mut self.a.prefill_j, &a.prefill_j);
        merge(&mut self.a.decode_j, &a.decode_j);
        merge(&mut self.a.time_share_j, &a.time_share_j);
        self.a.window_j += a.window_j;
        self.a.gap_j += a.gap_j;
        self.a.busy_j += a.busy_j;
        self.a.negative_dyn_j += a.negative_dyn_j;
        self.a.conservation_error_j += a.conservation_error_j;
        self.used.push(m);
    }
}

/// Attributes each domain's energy over the replay window to the cell's records (in place:
/// the `energy_*` fields) and returns the cell's energy summary; `None` without meters.
pub fn attribute_cell(
    t: &Timeline,
    records: &mut [RequestRecord],
    w: CellWindow,
    idle_w: &[Option<f64>],
    settings: Settings,
) -> Option<EnergySummary> {
    if t.meters.is_empty() {
        return None;
    }
    let works = works(records, w.t0_s, settings.prefill_weight);
    let mut sums = Sums::new(records.len());
    for (domain, pick) in t.serving(w.t0_s, w.end_s) {
        let Some(m) = pick else {
            sums.invalid.push(format!(
                "{domain}: no meter covers the replay window (a counter reset or a meter failure inside it)"
            ));
            continue;
        };
        if !t.meters[m].primary {
            let why = fallback_reason(t, &domain);
            sums.fallbacks.push(format!("{domain}: {} ({why})", t.meters[m].name));
        }
        let pts = t.of(m);
        let samples: Vec<(f64, f64)> = pts.iter().map(|s| (s.t_s, s.energy_j)).collect();
        let Some(a) = attribute(&samples, &works, w.t0_s, w.end_s, idle_w[m]) else {
            sums.invalid
                .push(format!("{domain}: samples do not cover the replay window"));
            continue;
        };
        if !a.conserves() {
            sums.invalid.push(format!(
                "{domain}: energy not conserved (Σ active + gap differs from the window by {:.3e} J)",
                a.conservation_error_j
            ));
        }
        sums.add(m, &a, idle_w[m], w.compressed_s, band(&pts, w.t0_s, w.end_s));
    }
    let process = process_views(t, records, &works, w, idle_w);
    let mut e = if sums.used.is_empty() {
        unmeasured(sums.invalid, sums.fallbacks, w.compressed_s, settings.setup_j)
    } else {
        summarize(t, records, &works, sums, w, settings)
    };
    e.process_view = process.map(|(meter, a)| {
        let info = &t.meters[meter];
        let machine = e.domains.iter().find(|d| d.domain == info.domain).map(|d| d.window_j);
        let share = machine.filter(|&m| m > 0.0).map(|m| a.window_j / m);
        let measured: Vec<usize> = (0..records.len()).filter(|&i| records[i].measured()).collect();
        let stat = |f: fn(&DomainJ) -> Option<f64>| {
            Stat::from_samples(
                measured
                    .iter()
                    .filter_map(|&i| records[i].energy_process_cpu.as_ref().and_then(f)),
                settings.confidence,
            )
        };
        ProcessView {
            energy: DomainEnergy {
                domain: info.domain.clone(),
                source: format!("{} of {}", info.name, of_meter(info)),
                kind: info.kind,
                window_j: a.window_j,
                idle_w: idle_w[meter],
                dyn_j: idle_w[meter].map(|_| a.dyn_j.iter().flatten().sum()),
                dyn_j_per_request: idle_w[meter].and_then(|_| stat(|d| d.dyn_j)),
                active_j_per_request: stat(|d| d.active_j),
                amortized_j_per_request: stat(|d| d.amortized_j),
                setup_j: None,
            },
            share_of_machine: share,
            co_tenant_flagged: share.is_some_and(|s| s < CO_TENANT_SHARE),
        }
    });
    Some(e)
}

/// The meter a process view takes its share of, from its provenance.
fn of_meter(info: &crate::meters::MeterInfo) -> String {
    info.provenance
        .get("of")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string()
}

/// The process view's attribution over the window (the first process-view meter that
/// covers it), with each record's figures written into `energy_process_cpu`.
fn process_views(
    t: &Timeline,
    records: &mut [RequestRecord],
    works: &[Option<Work>],
    w: CellWindow,
    idle_w: &[Option<f64>],
) -> Option<(usize, Attribution)> {
    let m = (0..t.meters.len()).find(|&m| t.meters[m].process_view && t.covers(m, w.t0_s, w.end_s))?;
    let samples: Vec<(f64, f64)> = t.of(m).iter().map(|s| (s.t_s, s.energy_j)).collect();
    let a = attribute(&samples, works, w.t0_s, w.end_s, idle_w[m])?;
    let amortized = a.amortized_j(idle_w[m].map_or(0.0, |p| p * w.compressed_s));
    for (i, r) in records.iter_mut().enumerate() {
        r.energy_process_cpu = a.active_j[i].map(|active| DomainJ {
            active_j: Some(active),
            dyn_j: idle_w[m].and(a.dyn_j[i]),
            amortized_j: amortized[i],
        });
    }
    Some((m, a))
}

/// No domain could be measured over the window: say so rather than report nothing.
fn unmeasured(invalid: Vec<String>, fallbacks: Vec<String>, compressed_s: f64, setup_j: Option<f64>) -> EnergySummary {
    EnergySummary {
        source: "none".into(),
        domain: "none".into(),
        kind: EnergyKind::Estimated,
        estimated: true,
        valid: false,
        invalid_reasons: invalid,
        fallbacks,
        window_j: 0.0,
        mean_power_w: 0.0,
        busy_j: 0.0,
        gap_j: 0.0,
        idle_w: None,
        dyn_j: None,
        negative_dyn_j: None,
        compressed_idle_j: None,
        compressed_s,
        dyn_j_per_request: None,
        active_j_per_request: None,
        amortized_j_per_request: None,
        sensitivity: Sensitivity::default(),
        phases_j: BTreeMap::new(),
        band: None,
        conservation_error_j: 0.0,
        setup_j,
        domains: Vec::new(),
        estimated_domains: Vec::new(),
        process_view: None,
    }
}

/// Writes the per-request figures into `records` and summarises the cell.
fn summarize(
    t: &Timeline,
    records: &mut [RequestRecord],
    works: &[Option<Work>],
    sums: Sums,
    w: CellWindow,
    settings: Settings,
) -> EnergySummary {
    let kind = sums
        .used
        .iter()
        .map(|&m| t.meters[m].kind)
        .max()
        .unwrap_or(EnergyKind::Estimated);
    let joined = |f: fn(&crate::meters::MeterInfo) -> &str| {
        sums.used.iter().map(|&m| f(&t.meters[m])).collect::<Vec<_>>().join("+")
    };
    let (source, domain) = (joined(|m| m.name.as_str()), joined(|m| m.domain.as_str()));
    let estimated = kind != EnergyKind::Measured;
    let (a, dyn_missing) = (&sums.a, sums.dyn_missing);
    for (i, r) in records.iter_mut().enumerate() {
        r.energy_active_j = a.active_j[i];
        r.energy_dyn_j = if dyn_missing { None } else { a.dyn_j[i] };
        r.energy_amortized_j = sums.amortized[i];
        r.energy_prefill_j = a.prefill_j[i];
        r.energy_decode_j = a.decode_j[i];
        r.energy_source = Some(source.clone());
        r.energy_estimated = estimated;
        r.energy_by_domain = sums
            .parts
            .iter()
            .filter(|p| p.a.active_j[i].is_some())
            .map(|p| {
                let part = DomainJ {
                    active_j: p.a.active_j[i],
                    dyn_j: p.idle_w.and(p.a.dyn_j[i]),
                    amortized_j: p.amortized[i],
                };
                (t.meters[p.meter].domain.clone(), part)
            })
            .collect();
    }
    let measured: Vec<usize> = (0..records.len()).filter(|&i| records[i].measured()).collect();
    let stat = |f: &dyn Fn(usize) -> Option<f64>| {
        Stat::from_samples(measured.iter().filter_map(|&i| f(i)), settings.confidence)
    };
    let mean = |f: &dyn Fn(usize) -> Option<f64>| {
        let v: Vec<f64> = measured.iter().filter_map(|&i| f(i)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let n_served = works.iter().filter(|x| x.is_some()).count();
    let span = (w.end_s - w.t0_s).max(f64::MIN_POSITIVE);
    let phases_j = BTreeMap::from([
        ("prefill".to_string(), a.prefill_j.iter().flatten().sum()),
        ("decode".to_string(), a.decode_j.iter().flatten().sum()),
    ]);
    EnergySummary {
        source,
        domain,
        kind,
        estimated,
        valid: sums.invalid.is_empty(),
        invalid_reasons: sums.invalid.clone(),
        fallbacks: sums.fallbacks.clone(),
        window_j: a.window_j,
        mean_power_w: a.window_j / span,
        busy_j: a.busy_j,
        gap_j: a.gap_j,
        idle_w: if dyn_missing { None } else { sums.idle_w },
        dyn_j: (!dyn_missing).then(|| a.dyn_j.iter().flatten().sum()),
        negative_dyn_j: (!dyn_missing).then_some(a.negative_dyn_j),
        compressed_idle_j: if dyn_missing { None } else { sums.compressed_j },
        compressed_s: w.compressed_s,
        dyn_j_per_request: if dyn_missing {
            None
        } else {
            stat(&|i| records[i].energy_dyn_j)
        },
        active_j_per_request: stat(&|i| records[i].energy_active_j),
        amortized_j_per_request: stat(&|i| records[i].energy_amortized_j),
        sensitivity: Sensitivity {
            token_work_j: mean(&|i| a.active_j[i]),
            time_share_j: mean(&|i| a.time_share_j[i]),
            equal_share_j: (n_served > 0).then(|| a.busy_j / n_served as f64),
        },
        phases_j,
        band: (sums.band_any && a.window_j > 0.0).then(|| (sums.band.0 / a.window_j, sums.band.1 / a.window_j)),
        conservation_error_j: a.conservation_error_j,
        setup_j: settings.setup_j,
        domains: sums
            .parts
            .iter()
            .map(|p| {
                let (info, pa, idle) = (&t.meters[p.meter], &p.a, &p.idle_w);
                let d = info.domain.as_str();
                let by = |f: fn(&DomainJ) -> Option<f64>| stat(&|i| records[i].energy_by_domain.get(d).and_then(f));
                DomainEnergy {
                    domain: info.domain.clone(),
                    source: info.name.clone(),
                    kind: info.kind,
                    window_j: pa.window_j,
                    idle_w: *idle,
                    dyn_j: idle.map(|_| pa.dyn_j.iter().flatten().sum()),
                    dyn_j_per_request: if idle.is_some() { by(|x| x.dyn_j) } else { None },
                    active_j_per_request: by(|x| x.active_j),
                    amortized_j_per_request: by(|x| x.amortized_j),
                    setup_j: None,
                }
            })
            .collect(),
        estimated_domains: sums
            .parts
            .iter()
            .filter(|p| t.meters[p.meter].kind != EnergyKind::Measured)
            .map(|p| t.meters[p.meter].domain.clone())
            .collect(),
        process_view: None,
    }
}

/// The energy of a cell's trials pooled: joules summed over the windows, per-request
/// statistics over every record (each attributed in its own window; with two or more trials
/// their intervals are hierarchical), reasons kept per trial. One trial: its own summary,
/// unchanged. `parts` are in trial order, as the records' trials.
pub fn pool(parts: Vec<Option<EnergySummary>>, records: &[RequestRecord], confidence: f64) -> Option<EnergySummary> {
    let parts: Vec<EnergySummary> = parts.into_iter().flatten().collect();
    if parts.len() <= 1 {
        return parts.into_iter().next();
    }
    let sum = |f: fn(&EnergySummary) -> f64| parts.iter().map(f).sum::<f64>();
    let sum_opt = |f: fn(&EnergySummary) -> Option<f64>| parts.iter().map(f).sum::<Option<f64>>();
    let joined = |f: fn(&EnergySummary) -> &str| {
        let mut v: Vec<&str> = parts.iter().map(f).collect();
        v.dedup();
        v.join(" | ")
    };
    let tagged = |f: fn(&EnergySummary) -> &Vec<String>| {
        parts
            .iter()
            .enumerate()
            .flat_map(|(i, p)| f(p).iter().map(move |r| format!("trial {i}: {r}")))
            .collect::<Vec<_>>()
    };
    let measured: Vec<&RequestRecord> = records.iter().filter(|r| r.measured()).collect();
    let mut by_trial: BTreeMap<u32, Vec<&RequestRecord>> = BTreeMap::new();
    for r in &measured {
        by_trial.entry(r.trial).or_default().push(r);
    }
    let stat = |f: &dyn Fn(&RequestRecord) -> Option<f64>| {
        Stat::from_groups(
            by_trial
                .values()
                .map(|g| g.iter().filter_map(|r| f(r)).collect())
                .collect(),
            confidence,
        )
    };
    let window_j = sum(|p| p.window_j);
    let span_s: f64 = parts
        .iter()
        .map(|p| {
            if p.mean_power_w > 0.0 {
                p.window_j / p.mean_power_w
            } else {
                0.0
            }
        })
        .sum();
    let dyn_missing = parts.iter().any(|p| p.dyn_j.is_none());
    // Time-share is not kept per request: each trial's mean, weighted by its requests.
    let counts: Vec<f64> = by_trial.values().map(|g| g.len() as f64).collect();
    let time_share = parts
        .iter()
        .zip(&counts)
        .map(|(p, n)| p.sensitivity.time_share_j.map(|t| t * n))
        .sum::<Option<f64>>()
        .map(|t| t / counts.iter().sum::<f64>().max(1.0));
    let served: f64 = parts
        .iter()
        .filter_map(|p| p.sensitivity.equal_share_j.filter(|&e| e > 0.0).map(|e| p.busy_j / e))
        .sum();
    let mut phases_j: BTreeMap<String, f64> = BTreeMap::new();
    for p in &parts {
        for (k, v) in &p.phases_j {
            *phases_j.entry(k.clone()).or_insert(0.0) += v;
        }
    }
    let banded = parts.iter().all(|p| p.band.is_some());
    let band_side = |k: usize| {
        sum(if k == 0 {
            |p| p.band.map_or(0.0, |b| b.0 * p.window_j)
        } else {
            |p| p.band.map_or(0.0, |b| b.1 * p.window_j)
        })
    };
    let first = &parts[0];
    let active_mean = {
        let v: Vec<f64> = measured.iter().filter_map(|r| r.energy_active_j).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    Some(EnergySummary {
        source: joined(|p| p.source.as_str()),
        domain: joined(|p| p.domain.as_str()),
        kind: parts.iter().map(|p| p.kind).max().unwrap_or(EnergyKind::Estimated),
        estimated: parts.iter().any(|p| p.estimated),
        valid: parts.iter().all(|p| p.valid),
        invalid_reasons: tagged(|p| &p.invalid_reasons),
        fallbacks: tagged(|p| &p.fallbacks),
        window_j,
        mean_power_w: if span_s > 0.0 { window_j / span_s } else { 0.0 },
        busy_j: sum(|p| p.busy_j),
        gap_j: sum(|p| p.gap_j),
        idle_w: first.idle_w,
        dyn_j: sum_opt(|p| p.dyn_j),
        negative_dyn_j: sum_opt(|p| p.negative_dyn_j),
        compressed_idle_j: sum_opt(|p| p.compressed_idle_j),
        compressed_s: sum(|p| p.compressed_s),
        dyn_j_per_request: if dyn_missing { None } else { stat(&|r| r.energy_dyn_j) },
        active_j_per_request: stat(&|r| r.energy_active_j),
        amortized_j_per_request: stat(&|r| r.energy_amortized_j),
        sensitivity: Sensitivity {
            token_work_j: active_mean,
            time_share_j: time_share,
            equal_share_j: (served > 0.0).then(|| sum(|p| p.busy_j) / served),
        },
        phases_j,
        band: (banded && window_j > 0.0).then(|| (band_side(0) / window_j, band_side(1) / window_j)),
        conservation_error_j: sum(|p| p.conservation_error_j),
        setup_j: first.setup_j,
        domains: pool_domains(&parts, &stat),
        process_view: pool_process(&parts, &stat),
        estimated_domains: {
            let mut v: Vec<String> = parts.iter().flat_map(|p| p.estimated_domains.clone()).collect();
            v.sort();
            v.dedup();
            v
        },
    })
}

/// The process view over the trials: joules summed, statistics over every record.
fn pool_process(parts: &[EnergySummary], stat: RecordStat<'_>) -> Option<ProcessView> {
    let views: Vec<&ProcessView> = parts.iter().filter_map(|p| p.process_view.as_ref()).collect();
    let mut energy = views.first()?.energy.clone();
    energy.window_j = views.iter().map(|v| v.energy.window_j).sum();
    energy.dyn_j = views.iter().map(|v| v.energy.dyn_j).sum();
    let of = |f: fn(&DomainJ) -> Option<f64>| move |r: &RequestRecord| r.energy_process_cpu.as_ref().and_then(f);
    energy.dyn_j_per_request = energy.dyn_j.and_then(|_| stat(&of(|d| d.dyn_j)));
    energy.active_j_per_request = stat(&of(|d| d.active_j));
    energy.amortized_j_per_request = stat(&of(|d| d.amortized_j));
    let machine: f64 = parts
        .iter()
        .filter_map(|p| p.domains.iter().find(|d| d.domain == energy.domain))
        .map(|d| d.window_j)
        .sum();
    let share = (machine > 0.0).then(|| energy.window_j / machine);
    Some(ProcessView {
        energy,
        share_of_machine: share,
        co_tenant_flagged: share.is_some_and(|s| s < CO_TENANT_SHARE),
    })
}

/// Each domain's figures over the trials: joules summed, per-request statistics over every
/// record (`stat` groups them by trial), the first trial's idle power and meter.
fn pool_domains(parts: &[EnergySummary], stat: RecordStat<'_>) -> Vec<DomainEnergy> {
    let mut out: Vec<DomainEnergy> = Vec::new();
    for d in parts.iter().flat_map(|p| &p.domains) {
        match out.iter_mut().find(|o| o.domain == d.domain) {
            Some(o) => {
                o.window_j += d.window_j;
                o.dyn_j = o.dyn_j.zip(d.dyn_j).map(|(a, b)| a + b);
                if o.source != d.source {
                    o.source = format!("{} | {}", o.source, d.source);
                    o.kind = o.kind.max(d.kind);
                }
            }
            None => out.push(d.clone()),
        }
    }
    for o in &mut out {
        let name = o.domain.clone();
        let of = |f: fn(&DomainJ) -> Option<f64>| {
            let name = name.clone();
            move |r: &RequestRecord| r.energy_by_domain.get(&name).and_then(f)
        };
        o.active_j_per_request = stat(&of(|x| x.active_j));
        o.amortized_j_per_request = stat(&of(|x| x.amortized_j));
        o.dyn_j_per_request = if o.dyn_j.is_some() {
            stat(&of(|x| x.dyn_j))
        } else {
            None
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oae_core::rundir::Outcome;

    /// `watts` on one measured cpu meter from 0 to 10 s, sampled every second.
    fn timeline(watts: f64) -> Timeline {
        Timeline::one_meter(10, |t| watts * t)
    }

    fn record(id: u64, started: f64, finished: f64) -> RequestRecord {
        use serde_json::json;
        let mut value = json!({
            "method": "m", "workload": "w", "request_id": id, "trial": 0, "instance": 0,
            "warmup": false, "cooldown": false, "intended_s": started, "dispatched_s": started,
            "started_s": started, "first_token_s": started + 0.1, "finished_s": finished,
            "ttft_ms": 100.0, "e2e_ms": (finished - started) * 1e3, "queue_ms": 0.0,
            "dispatch_lag_ms": 0.0, "service_ms": (finished - started) * 1e3, "tpot_ms": null,
            "itl_ms": [], "input_tokens": 10, "output_tokens": 5, "max_new_tokens": 5,
            "stop_reason": "length", "idle_skipped_s": 0.0, "idle_before_s": null,
            "source_failed": false, "outcome": "ok", "error": null, "phases_ms": {}, "counters": {},
            "energy_dyn_j": null, "energy_active_j": null, "energy_amortized_j": null,
            "energy_prefill_j": null, "energy_decode_j": null, "co2e_g": null,
            "energy_source": null, "energy_estimated": false
        });
        for (k, v) in [
            ("task_id", json!(null)),
            ("output_text", json!(null)),
            ("output_truncated", json!(false)),
            ("quality", json!({})),
        ] {
            value[k] = v;
        }
        let mut r: RequestRecord = serde_json::from_value(value).unwrap();
        r.outcome = Outcome::Ok;
        r
    }

    fn settings() -> Settings {
        Settings {
            prefill_weight: 1.0,
            setup_j: Some(3.0),
            confidence: 0.95,
        }
    }

    #[test]
    fn a_cell_conserves_energy_and_fills_every_record() {
        let t = timeline(10.0);
        let mut recs = vec![record(0, 1.0, 3.0), record(1, 5.0, 6.0)];
        let w = CellWindow {
            t0_s: 0.0,
            end_s: 10.0,
            compressed_s: 2.0,
        };
        let e = attribute_cell(&t, &mut recs, w, &[Some(4.0)], settings()).unwrap();
        assert!(e.valid && e.kind == EnergyKind::Measured && !e.estimated, "{e:?}");
        assert!((e.window_j - 100.0).abs() < 1e-9 && (e.busy_j + e.gap_j - e.window_j).abs() < 1e-9);
        assert!((e.busy_j - 30.0).abs() < 1e-9, "3 s in service at 10 W");
        assert_eq!(e.compressed_idle_j, Some(8.0), "4 W idle × 2 s compressed");
        assert!((e.dyn_j.unwrap() - 18.0).abs() < 1e-9, "(10 − 4) W × 3 s");
        for r in &recs {
            let (a, m) = (r.energy_active_j.unwrap(), r.energy_amortized_j.unwrap());
            assert!(m > a && a > 0.0 && r.energy_dyn_j.unwrap() > 0.0, "{r:?}");
            let phases = r.energy_prefill_j.unwrap() + r.energy_decode_j.unwrap();
            assert!((phases - a).abs() < 1e-9, "phases add up to active");
            assert_eq!(r.energy_source.as_deref(), Some("m"));
        }
        let amortized: f64 = recs.iter().map(|r| r.energy_amortized_j.unwrap()).sum();
        assert!(
            (amortized - (100.0 + 8.0)).abs() < 1e-9,
            "window + compressed idle, all shared"
        );
        assert_eq!(e.setup_j, Some(3.0));
    }

    #[test]
    fn trials_pool_to_the_sums_of_their_windows_and_one_trial_is_unchanged() {
        let t = Timeline::one_meter(20, |t| 10.0 * t);
        let mut a = vec![record(0, 1.0, 3.0)];
        let mut b = vec![record(0, 1.0, 2.0)];
        b[0].trial = 1;
        let w = |t0_s: f64| CellWindow {
            t0_s,
            end_s: t0_s + 5.0,
            compressed_s: 1.0,
        };
        let ea = attribute_cell(&t, &mut a, w(0.0), &[Some(4.0)], settings());
        let eb = attribute_cell(&t, &mut b, w(10.0), &[Some(4.0)], settings());
        assert_eq!(pool(vec![ea.clone()], &a, 0.95), ea, "one trial: unchanged");
        let all: Vec<RequestRecord> = a.iter().chain(&b).cloned().collect();
        let p = pool(vec![ea.clone(), eb.clone()], &all, 0.95).unwrap();
        let (ea, eb) = (ea.unwrap(), eb.unwrap());
        assert!((p.window_j - (ea.window_j + eb.window_j)).abs() < 1e-9);
        assert!(
            (p.busy_j + p.gap_j - p.window_j).abs() < 1e-9,
            "pooled energy still conserves"
        );
        assert_eq!(p.compressed_idle_j, Some(8.0), "4 W × 1 s compressed, twice");
        assert!((p.mean_power_w - 10.0).abs() < 1e-9);
        assert_eq!(p.amortized_j_per_request.as_ref().unwrap().n, 2);
        assert!(p.valid && p.source == "m");
        assert_eq!(pool(vec![None, None], &all, 0.95), None);
    }

    #[test]
    fn without_an_idle_baseline_there_is_no_dynamic_energy() {
        let t = timeline(10.0);
        let mut recs = vec![record(0, 1.0, 3.0)];
        let w = CellWindow {
            t0_s: 0.0,
            end_s: 10.0,
            compressed_s: 0.0,
        };
        let e = attribute_cell(&t, &mut recs, w, &[None], settings()).unwrap();
        assert!(e.dyn_j.is_none() && e.idle_w.is_none() && recs[0].energy_dyn_j.is_none());
        assert!(recs[0].energy_active_j.is_some());
    }

    #[test]
    fn a_window_the_samples_do_not_cover_is_invalid_and_no_meters_is_none() {
        let t = timeline(10.0);
        let mut recs = vec![record(0, 1.0, 3.0)];
        let w = CellWindow {
            t0_s: 5.0,
            end_s: 20.0,
            compressed_s: 0.0,
        };
        let e = attribute_cell(&t, &mut recs, w, &[Some(1.0)], settings()).unwrap();
        assert!(!e.valid && e.source == "none", "{e:?}");
        assert!(!e.invalid_reasons.is_empty());
        assert!(attribute_cell(&Timeline::default(), &mut recs, w, &[], settings()).is_none());
    }

    /// A measured GPU at 100 W and a modelled CPU at 10 W, 0–10 s.
    fn two_domains() -> Timeline {
        let mut t = Timeline::one_meter(10, |t| 100.0 * t);
        t.meters[0].name = "nvml-counter".into();
        t.meters[0].domain = "gpu:0".into();
        let mut cpu = t.meters[0].clone();
        cpu.name = "cpu-model".into();
        cpu.domain = "cpu".into();
        cpu.kind = EnergyKind::Estimated;
        t.meters.push(cpu);
        let extra: Vec<Sample> = (0..=10)
            .map(|i| Sample {
                t_s: f64::from(i),
                meter: 1,
                energy_j: 10.0 * f64::from(i),
                power_w: None,
                invalid: false,
                band_j: None,
            })
            .collect();
        t.samples.extend(extra);
        t
    }

    #[test]
    fn domains_sum_to_the_totals_and_keep_their_own_kinds() {
        let t = two_domains();
        let mut recs = vec![record(0, 1.0, 3.0), record(1, 5.0, 6.0)];
        let w = CellWindow {
            t0_s: 0.0,
            end_s: 10.0,
            compressed_s: 0.0,
        };
        let e = attribute_cell(&t, &mut recs, w, &[Some(60.0), Some(4.0)], settings()).unwrap();
        assert_eq!(e.domains.len(), 2);
        let (gpu, cpu) = (&e.domains[0], &e.domains[1]);
        assert_eq!((gpu.domain.as_str(), gpu.kind), ("gpu:0", EnergyKind::Measured));
        assert_eq!((cpu.domain.as_str(), cpu.kind), ("cpu", EnergyKind::Estimated));
        assert_eq!(e.estimated_domains, ["cpu"], "only the modelled part is an estimate");
        assert!((gpu.window_j - 1000.0).abs() < 1e-9 && (cpu.window_j - 100.0).abs() < 1e-9);
        assert!((gpu.window_j + cpu.window_j - e.window_j).abs() < 1e-9);
        assert!((gpu.dyn_j.unwrap() + cpu.dyn_j.unwrap() - e.dyn_j.unwrap()).abs() < 1e-9);
        for r in &recs {
            let parts =
                |f: fn(&DomainJ) -> Option<f64>| r.energy_by_domain.values().map(|d| f(d).unwrap()).sum::<f64>();
            assert!(
                (parts(|d| d.active_j) - r.energy_active_j.unwrap()).abs() < 1e-9,
                "{r:?}"
            );
            assert!((parts(|d| d.dyn_j) - r.energy_dyn_j.unwrap()).abs() < 1e-9);
            assert!((parts(|d| d.amortized_j) - r.energy_amortized_j.unwrap()).abs() < 1e-9);
            assert!(r.energy_by_domain["gpu:0"].active_j > r.energy_by_domain["cpu"].active_j);
        }
        let mean = |s: &Option<Stat>| s.as_ref().unwrap().mean.value;
        assert!(
            (mean(&gpu.amortized_j_per_request) + mean(&cpu.amortized_j_per_request)
                - mean(&e.amortized_j_per_request))
            .abs()
                < 1e-9
        );
        // Pooled over two trials, the parts still add up.
        let mut b = vec![record(0, 1.0, 2.0)];
        b[0].trial = 1;
        let eb = attribute_cell(&t, &mut b, w, &[Some(60.0), Some(4.0)], settings());
        let all: Vec<RequestRecord> = recs.iter().chain(&b).cloned().collect();
        let p = pool(vec![Some(e.clone()), eb], &all, 0.95).unwrap();
        assert_eq!(p.domains.len(), 2);
        assert!((p.domains.iter().map(|d| d.window_j).sum::<f64>() - p.window_j).abs() < 1e-9);
        assert_eq!(p.domains[0].amortized_j_per_request.as_ref().unwrap().n, 3);
        assert_eq!(p.estimated_domains, ["cpu"]);
    }

    #[test]
    fn the_process_view_keeps_the_dynamic_energy_a_co_tenant_hides() {
        // A co-tenant keeps the machine's CPU at 10 W from 0 to 30 s, replay or not. oae's own
        // share: 0.5 W while idle, 5 W while serving (requests at 11–13 s and 15–16 s).
        let mut t = Timeline::one_meter(30, |s| 10.0 * s);
        t.meters[0].name = "cpu-model".into();
        t.meters[0].kind = EnergyKind::Estimated;
        let mut view = t.meters[0].clone();
        view.name = crate::meters::process::NAME.into();
        view.primary = false;
        view.process_view = true;
        view.provenance = serde_json::json!({ "of": "cpu-model" });
        t.meters.push(view);
        let serving = |s: f64| (11.0..13.0).contains(&s) || (15.0..16.0).contains(&s);
        let mut e = 0.0;
        for i in 0..=300 {
            let s = f64::from(i) / 10.0;
            if i > 0 {
                e += 0.1 * if serving(s - 0.05) { 5.0 } else { 0.5 };
            }
            t.samples.push(Sample {
                t_s: s,
                meter: 1,
                energy_j: e,
                power_w: None,
                invalid: false,
                band_j: None,
            });
        }
        let mut recs = vec![record(0, 1.0, 3.0), record(1, 5.0, 6.0)];
        let w = CellWindow {
            t0_s: 10.0,
            end_s: 20.0,
            compressed_s: 0.0,
        };
        // Idle power from baselines before and after the replay: the machine's 10 W, oae's 0.5 W.
        let cell = attribute_cell(&t, &mut recs, w, &[Some(10.0), Some(0.5)], settings()).unwrap();
        let machine_dyn = cell.dyn_j.unwrap();
        assert!(machine_dyn.abs() < 1e-6, "the machine view loses it: {machine_dyn}");
        assert_eq!(cell.domains.len(), 1, "the process view is not a domain of its own");
        let pv = cell.process_view.as_ref().unwrap();
        let per_request = pv.energy.dyn_j_per_request.as_ref().unwrap().mean.value;
        // 4.5 W above oae's idle for 2 s and 1 s: 13.5 J over two requests.
        assert!((per_request - 6.75).abs() < 1e-6, "{per_request}");
        assert!((recs[0].energy_process_cpu.unwrap().dyn_j.unwrap() - 9.0).abs() < 1e-6);
        assert!(recs[0].energy_by_domain["cpu"].dyn_j.unwrap().abs() < 1e-6);
        assert!(pv.co_tenant_flagged && pv.share_of_machine.unwrap() < 0.5, "{pv:?}");
        assert_eq!(pv.energy.source, "cpu-process of cpu-model");
        assert!((cell.window_j - 100.0).abs() < 1e-9, "totals are the machine view's");
    }
}
