//! One scorecard: a prepared cell's cost, its comparison with the baseline, energy, carbon,
//! latency and the draws the gate needs.

use std::collections::BTreeMap;

use super::sensitivity::sensitivities;
use super::types::*;
use super::{Prepared, curve_rates, labor};
use crate::bootstrap::{Means, interval, quantile_sorted};
use crate::cost::{self, BreakEven, Breakdown, Labor, Measured};
use crate::manifest::Level;
use crate::rundir::{RunData, Sample};
use crate::site::Site;

/// What every row of a run shares.
pub(super) struct Context<'a> {
    pub data: &'a RunData,
    pub site: &'a Site,
    pub confidence: f64,
    pub device_class: &'a str,
}

const ALL: [&str; 3] = [MEASURED, DECLARED, SITE];

fn break_even_value(b: BreakEven) -> f64 {
    match b {
        BreakEven::At(q) => q,
        BreakEven::Always => 0.0,
        BreakEven::Never => f64::INFINITY,
    }
}

fn break_even_of(v: Option<f64>) -> BreakEven {
    match v {
        Some(0.0) => BreakEven::Always,
        Some(q) if q.is_finite() => BreakEven::At(q),
        _ => BreakEven::Never,
    }
}

fn tor_of(b: &Breakdown) -> f64 {
    if b.total_usd > 0.0 {
        b.good_requests / b.total_usd
    } else {
        f64::NAN
    }
}

/// The row's own cost at λ: cost per 1k good requests, its breakdown and tor, with CIs over
/// the draws and ranges over the declared weeks.
struct Cost {
    per_1k: Figure,
    breakdown: Breakdown,
    tor: Figure,
    draws: Vec<f64>,
}

fn cost_of(ctx: &Context<'_>, p: &Prepared, weeks: (f64, f64, f64), estimated: bool) -> Cost {
    let (site, conf) = (ctx.site, ctx.confidence);
    let lab = labor(&p.manifest, weeks.1);
    let point = cost::cost_at(p.rate_qps, &p.point, &lab, site);
    let at = |m: &Measured| cost::cost_at(p.rate_qps, m, &lab, site);
    let at_weeks = |w: f64| cost::cost_at(p.rate_qps, &p.point, &labor(&p.manifest, w), site);
    let (lo, hi) = (at_weeks(weeks.0), at_weeks(weeks.2));
    let draws: Vec<f64> = p.draws.iter().map(|m| at(m).cost_per_1k_good_usd).collect();
    let tor_draws: Vec<f64> = p.draws.iter().map(|m| tor_of(&at(m))).collect();
    Cost {
        per_1k: Figure::new(point.cost_per_1k_good_usd, &ALL)
            .ci(&draws, conf)
            .range(lo.cost_per_1k_good_usd, hi.cost_per_1k_good_usd)
            .estimated(estimated),
        tor: Figure::new(tor_of(&point), &ALL)
            .ci(&tor_draws, conf)
            .range(tor_of(&lo), tor_of(&hi))
            .estimated(estimated),
        breakdown: point,
        draws,
    }
}

/// The row against the suite's baseline.
#[derive(Default)]
struct Against {
    oae: Option<Figure>,
    verdict: Option<Verdict>,
    break_even: Option<BreakEvenFigure>,
    talent_dependent: bool,
    sensitivity: Vec<Sensitivity>,
    ratio_draws: Option<Vec<f64>>,
}

fn against(ctx: &Context<'_>, p: &Prepared, b: &Prepared, weeks: (f64, f64, f64)) -> Against {
    let (site, conf) = (ctx.site, ctx.confidence);
    if std::ptr::eq(b.cell, p.cell) {
        let mut f = Figure::new(1.0, &ALL);
        (f.ci_lo, f.ci_hi) = (Some(1.0), Some(1.0));
        return Against {
            oae: Some(f),
            verdict: Some(Verdict::Baseline),
            ratio_draws: Some(vec![1.0; p.draws.len()]),
            ..Against::default()
        };
    }
    let (w_lo, w_mid, w_hi) = weeks;
    let (bw_lo, bw_mid, bw_hi) = b.manifest.weeks_over(site.horizon_years);
    let (lab, blab) = (labor(&p.manifest, w_mid), labor(&b.manifest, bw_mid));
    let ratio =
        |m: &Measured, ml: &Labor, bm: &Measured, bl: &Labor| cost::oae_ratio(p.rate_qps, (m, ml), (bm, bl), site);
    let value = ratio(&p.point, &lab, &b.point, &blab);
    let draws: Vec<f64> = p
        .draws
        .iter()
        .zip(&b.draws)
        .map(|(m, bm)| ratio(m, &lab, bm, &blab))
        .collect();
    // Most favourable to the method: its low weeks against the baseline's high, and back.
    let (fav, unfav) = (
        (labor(&p.manifest, w_lo), labor(&b.manifest, bw_hi)),
        (labor(&p.manifest, w_hi), labor(&b.manifest, bw_lo)),
    );
    let f = Figure::new(value, &ALL)
        .ci(&draws, conf)
        .range(
            ratio(&p.point, &fav.0, &b.point, &fav.1),
            ratio(&p.point, &unfav.0, &b.point, &unfav.1),
        )
        .estimated(p.cell.energy_estimated || b.cell.energy_estimated);
    let verdict = match (f.ci_lo, f.ci_hi) {
        (Some(lo), _) if lo > 1.0 => Verdict::Better,
        (_, Some(hi)) if hi < 1.0 => Verdict::Worse,
        _ => Verdict::Inconclusive,
    };
    let be_draws: Vec<f64> = p
        .draws
        .iter()
        .zip(&b.draws)
        .map(|(m, bm)| break_even_value(cost::break_even((m, &lab), (bm, &blab), site)))
        .collect();
    let (lo, hi) = interval(&be_draws, conf);
    let break_even = BreakEvenFigure {
        point: cost::break_even((&p.point, &lab), (&b.point, &blab), site),
        ci_lo: break_even_of(lo),
        ci_hi: break_even_of(hi),
        share_never: be_draws.iter().filter(|v| v.is_infinite()).count() as f64 / be_draws.len().max(1) as f64,
        range_favourable: cost::break_even((&p.point, &fav.0), (&b.point, &fav.1), site),
        range_unfavourable: cost::break_even((&p.point, &unfav.0), (&b.point, &unfav.1), site),
        sources: ALL.to_vec(),
    };
    // A gain that only holds at the method's own level's rates, not at L4 rates.
    let l4 = Labor {
        level: Level::MlSpecialist,
        weeks: w_mid,
    };
    let talent_dependent =
        p.manifest.expertise.number() >= 3 && value >= 1.0 && ratio(&p.point, &l4, &b.point, &blab) < 1.0;
    Against {
        oae: Some(f),
        verdict: Some(verdict),
        break_even: Some(break_even),
        talent_dependent,
        sensitivity: sensitivities(p, b, w_mid, site),
        ratio_draws: Some(draws),
    }
}

fn energy_of(ctx: &Context<'_>, p: &Prepared, estimated: bool) -> EnergyFigures {
    let fig = |point: f64, f: fn(&Means) -> f64| {
        let d: Vec<f64> = p.means_draws.iter().map(f).collect();
        Figure::new(point, &[MEASURED])
            .ci(&d, ctx.confidence)
            .estimated(estimated)
    };
    let cell = ctx
        .data
        .summary_cell(&p.cell.method, &p.cell.workload)
        .and_then(|s| s.energy.as_ref());
    let mean = |s: &Option<oae_core::stats::Stat>| s.as_ref().map(|s| s.mean.clone());
    EnergyFigures {
        dynamic_j: fig(p.means.dyn_j, |m| m.dyn_j),
        active_j: fig(p.means.active_j, |m| m.active_j),
        amortized_j: fig(p.means.amortized_j, |m| m.amortized_j),
        source: cell.map_or_else(|| "none".to_string(), |e| e.source.clone()),
        by_domain: cell
            .map(|e| {
                e.domains
                    .iter()
                    .filter_map(|d| {
                        Some(DomainFigures {
                            domain: d.domain.clone(),
                            source: d.source.clone(),
                            kind: d.kind.as_str().to_string(),
                            active_j: mean(&d.active_j_per_request)?,
                            amortized_j: mean(&d.amortized_j_per_request)?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        estimated_domains: cell.map(|e| e.estimated_domains.clone()).unwrap_or_default(),
        process_cpu_active_j: cell
            .and_then(|e| e.process_view.as_ref())
            .and_then(|v| v.energy.active_j_per_request.as_ref())
            .map(|s| s.mean.value),
        co_tenant_flagged: cell
            .and_then(|e| e.process_view.as_ref())
            .is_some_and(|v| v.co_tenant_flagged),
    }
}

/// What each correct answer cost, from the cell's reasoning summary: tokens and energy as
/// measured, cost as the cost per good request × the good share / the correct share (the
/// cost model's good share is SLO attainment × mean quality; correct answers are counted one
/// by one — with a binary scorer and no latency objective the two coincide).
fn per_correct(c: &oae_core::rundir::CellSummary, cost_per_1k_good: f64, good: f64) -> Option<PerCorrect> {
    let r = c.reasoning.as_ref()?;
    let accuracy = if r.measured > 0 {
        r.correct as f64 / r.measured as f64
    } else {
        0.0
    };
    Some(PerCorrect {
        correct_by: r.correct_by.clone(),
        accuracy,
        tokens: r.tokens_per_correct,
        reasoning_tokens: r.reasoning_tokens_per_correct,
        energy_j: r.energy_j_per_correct,
        cost_usd: (accuracy > 0.0 && cost_per_1k_good.is_finite()).then(|| cost_per_1k_good / 1e3 * good / accuracy),
        reasoning_overhead: r.overhead,
    })
}

/// Carbon per request at λ under the site: the cost model's carbon over its requests.
fn carbon_of(ctx: &Context<'_>, p: &Prepared, lab: &Labor, estimated: bool) -> CarbonFigures {
    let site = ctx.site;
    let requests_h = p.rate_qps * site.hours() * 3600.0;
    let split = |m: &Measured| {
        let b = cost::cost_at(p.rate_qps, m, lab, site);
        let op_kg = b.energy_kwh * site.grid_g_per_kwh / 1e3;
        let per = |kg: f64| {
            if requests_h > 0.0 {
                kg * 1e3 / requests_h
            } else {
                f64::NAN
            }
        };
        [per(op_kg), per(b.carbon_kg - op_kg), per(b.carbon_kg)]
    };
    let point = split(&p.point);
    let splits: Vec<[f64; 3]> = p.draws.iter().map(split).collect();
    let fig = |k: usize| {
        let d: Vec<f64> = splits.iter().map(|s| s[k]).collect();
        Figure::new(point[k], &[MEASURED, SITE])
            .ci(&d, ctx.confidence)
            .estimated(estimated)
    };
    CarbonFigures {
        operational_g: fig(0),
        embodied_g: fig(1),
        total_g: fig(2),
        run_recorded_g: p.cell.run_co2e_g / p.cell.samples.len().max(1) as f64,
    }
}

/// TTFT, E2E and TPOT percentiles with the summary's order-statistic CIs.
fn latency_of(ctx: &Context<'_>, p: &Prepared) -> BTreeMap<String, Figure> {
    let mut out = BTreeMap::new();
    let Some(s) = ctx.data.summary_cell(&p.cell.method, &p.cell.workload) else {
        return out;
    };
    for metric in ["ttft_ms", "e2e_ms", "tpot_ms"] {
        let Some(stat) = s.latency.get(metric) else {
            continue;
        };
        for (q, e) in [("p50", &stat.p50), ("p95", &stat.p95), ("p99", &stat.p99)] {
            if let Some(f) = Figure::from_estimate(e) {
                out.insert(format!("{}_{q}", metric.trim_end_matches("_ms")), f);
            }
        }
    }
    out
}

/// Latency CDFs of ok requests: 101 quantiles.
fn cdfs_of(p: &Prepared) -> BTreeMap<String, Vec<f64>> {
    let mut out = BTreeMap::new();
    for (name, get) in [
        ("e2e", (|s: &Sample| s.e2e_ms) as fn(&Sample) -> f64),
        ("ttft", |s| s.ttft_ms),
    ] {
        let mut v: Vec<f64> = p
            .cell
            .samples
            .iter()
            .filter(|s| s.failed == 0.0)
            .map(get)
            .filter(|x| !x.is_nan())
            .collect();
        if !v.is_empty() {
            v.sort_by(f64::total_cmp);
            out.insert(
                name.to_string(),
                (0..=100).map(|i| quantile_sorted(&v, i as f64 / 100.0)).collect(),
            );
        }
    }
    out
}

/// Scores one prepared cell against the baseline of its workload (none: unscored).
pub(super) fn score_row(ctx: &Context<'_>, p: &Prepared, base: Option<&Prepared>) -> Row {
    let site = ctx.site;
    let weeks = p.manifest.weeks_over(site.horizon_years);
    let (w_lo, w_mid, w_hi) = weeks;
    let lab = labor(&p.manifest, w_mid);
    let estimated = p.cell.energy_estimated;
    let cost = cost_of(ctx, p, weeks, estimated);
    let vs = base.map(|b| against(ctx, p, b, weeks)).unwrap_or_default();
    let rate = |l: Level| site.labor_usd_per_week.rate(l);
    let premium = rate(p.manifest.expertise) - rate(Level::ItGeneralist);
    let energy = energy_of(ctx, p, estimated);

    let mut kept = BTreeMap::new();
    kept.insert("cost_per_1k_good_usd", cost.draws);
    if let Some(d) = vs.ratio_draws {
        kept.insert("oae_ratio", d);
    }
    kept.insert(
        "energy_amortized_j",
        p.means_draws.iter().map(|m| m.amortized_j).collect(),
    );
    kept.insert("energy_dyn_j", p.means_draws.iter().map(|m| m.dyn_j).collect());

    let conf = ctx.confidence;
    let summary = ctx.data.summary_cell(&p.cell.method, &p.cell.workload);
    // The share of requests the cost model counts good: SLO attainment × mean quality.
    let good_share = p.point.attainment * p.point.quality.unwrap_or(1.0);
    let per_correct = summary.and_then(|c| per_correct(c, cost.per_1k.value, good_share));
    Row {
        method: p.cell.method.clone(),
        method_id: p.method_id.clone(),
        workload: p.cell.workload.clone(),
        device_class: ctx.device_class.to_string(),
        baseline: base.is_some_and(|b| std::ptr::eq(b.cell, p.cell)),
        rate_qps: p.rate_qps,
        requests: p.cell.samples.len() as u64,
        failed: p.cell.samples.iter().filter(|s| s.failed > 0.0).count() as u64,
        inputs: Inputs {
            service_s: Figure::new(p.point.service_s, &[MEASURED])
                .ci(&p.draws.iter().map(|m| m.service_s).collect::<Vec<_>>(), conf),
            attainment: Figure::new(p.point.attainment, &[MEASURED])
                .ci(&p.draws.iter().map(|m| m.attainment).collect::<Vec<_>>(), conf),
            quality: p.means.quality.is_finite().then(|| {
                let draws: Vec<f64> = p
                    .means_draws
                    .iter()
                    .map(|m| m.quality)
                    .filter(|q| q.is_finite())
                    .collect();
                Figure::new(p.means.quality, &[MEASURED]).ci(&draws, conf)
            }),
            quality_scorer: summary
                .and_then(|s| {
                    crate::rundir::quality_scorer(&ctx.data.run.slo, ctx.data.quality_preference.as_deref(), &s.quality)
                })
                .map(str::to_string),
            quality_in_attainment: ctx.data.run.slo.quality.is_some(),
            idle_w: Figure::new(p.idle_w, &[MEASURED]).estimated(estimated),
            setup_j: Figure::new(p.setup_j, &[MEASURED]).estimated(estimated),
            setup_s: p.setup_s,
            memory_bytes: Figure::new(p.memory_bytes, &[MEASURED]),
        },
        declared: Declared {
            expertise: p.manifest.expertise.name(),
            level: p.manifest.expertise.number(),
            engineer_weeks: [w_lo, w_mid, w_hi],
            components: p.manifest.components.clone(),
            tuning_knobs: p.manifest.tuning_knobs.clone(),
            evidence: p.manifest.evidence.clone(),
        },
        cost_per_1k_good_usd: cost.per_1k,
        breakdown: cost.breakdown,
        tor: cost.tor,
        oae_ratio: vs.oae,
        verdict: vs.verdict.unwrap_or(Verdict::Unscored),
        break_even: vs.break_even,
        talent_premium_usd: Figure::new(premium * w_mid, &[DECLARED, SITE]).range(premium * w_lo, premium * w_hi),
        talent_dependent: vs.talent_dependent,
        per_correct,
        energy_per_request: energy,
        gco2e_per_request: carbon_of(ctx, p, &lab, estimated),
        latency_ms: latency_of(ctx, p),
        robustness: None,
        sensitivity: vs.sensitivity,
        curve: curve_rates()
            .into_iter()
            .map(|l| (l, cost::cost_at(l, &p.point, &lab, site).cost_per_1k_good_usd))
            .collect(),
        cdf_ms: cdfs_of(p),
        counters: summary.map(|s| s.counters.clone()).unwrap_or_default(),
        valid: summary.is_none_or(|s| s.validity.valid),
        invalid_reasons: summary.map(|s| s.validity.reasons.clone()).unwrap_or_default(),
        draws: kept,
    }
}
