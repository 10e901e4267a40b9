//! Inter-arrival models fitted to a trace (`oae trace fit`) and traces synthesized from them
//! (`oae trace gen`).
//!
//! Every model is fitted to the trace's positive gaps by maximum likelihood, compared by AIC
//! (2·params − 2·log-likelihood; lower is better) and checked with the Kolmogorov–Smirnov
//! statistic D. Gaps of exactly zero (simultaneous timestamps — batches, or a coarse clock)
//! have no density under any of these models; they are counted and reproduced by `gen` as
//! batches with the same probability. On/off structure is read from a two-phase
//! hyperexponential fit: short gaps within bursts, long silences between them.
//!
//! Adding a model = a file here with a `FIT` and a line in [`registry`].

mod exponential;
mod gamma;
mod hyperexp;
mod lognormal;
pub mod special;
mod weibull;

use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::ConfigError;
use crate::arrivals::{Limit, accumulate};
use crate::rng::{SeededRng, open01, seeded};
use crate::traces::{self, TraceFormat};

/// A fitted inter-arrival distribution (gaps in seconds).
pub trait GapModel: Debug + Send + Sync {
    /// Model name, as in the registry.
    fn name(&self) -> &'static str;
    /// Fitted parameters, named.
    fn params(&self) -> Vec<(&'static str, f64)>;
    /// ln f(x); `ln_x` = ln x, precomputed.
    fn ln_pdf(&self, x: f64, ln_x: f64) -> f64;
    /// F(x).
    fn cdf(&self, x: f64) -> f64;
    /// One gap.
    fn sample(&self, rng: &mut SeededRng) -> f64;
    /// Mean gap, s.
    fn mean(&self) -> f64;
    /// Coefficient of variation of the gaps.
    fn cv(&self) -> f64;
    /// The same shape with every gap multiplied by `c` (rate divided by `c`).
    fn scaled(&self, c: f64) -> Box<dyn GapModel>;
    /// A suite `arrival = {...}` value reproducing this renewal process, when oae has one.
    fn arrival(&self) -> Option<String>;
}

/// A registry entry: a model family and its maximum-likelihood fitter.
pub struct GapFitter {
    /// Model name.
    pub name: &'static str,
    /// Number of fitted parameters (for AIC).
    pub params: usize,
    /// The MLE, or `None` where the family cannot fit these gaps (e.g. all equal).
    pub fit: fn(&Gaps) -> Option<Box<dyn GapModel>>,
}

/// Every inter-arrival model `oae trace fit` tries, one line each.
pub fn registry() -> &'static [GapFitter] {
    &[
        exponential::FIT,
        gamma::FIT,
        weibull::FIT,
        lognormal::FIT,
        hyperexp::FIT,
    ]
}

/// Positive gaps, sorted, with the sufficient statistics the fitters share.
#[derive(Debug, Clone)]
pub struct Gaps {
    /// Positive gaps, ascending, s.
    pub xs: Vec<f64>,
    /// ln of each of `xs`.
    pub ln: Vec<f64>,
    /// Mean gap.
    pub mean: f64,
    /// Mean of ln gap.
    pub mean_ln: f64,
    /// Standard deviation (MLE, divisor n) of ln gap.
    pub sd_ln: f64,
}

/// Fewest positive gaps a fit is attempted on.
pub const MIN_GAPS: usize = 20;

impl Gaps {
    /// From positive gaps in any order; `None` with fewer than [`MIN_GAPS`].
    pub fn new(mut xs: Vec<f64>) -> Option<Self> {
        xs.retain(|&x| x > 0.0 && x.is_finite());
        if xs.len() < MIN_GAPS {
            return None;
        }
        xs.sort_by(f64::total_cmp);
        let ln: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let mean_ln = ln.iter().sum::<f64>() / n;
        let sd_ln = (ln.iter().map(|l| (l - mean_ln).powi(2)).sum::<f64>() / n).sqrt();
        Some(Self {
            xs,
            ln,
            mean,
            mean_ln,
            sd_ln,
        })
    }
}

/// One model's fit.
#[derive(Debug, Serialize)]
pub struct ModelFit {
    /// Model name.
    pub name: &'static str,
    /// Fitted parameters.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Mean gap of the fitted model, s.
    pub mean_gap_s: f64,
    /// CV of the fitted model.
    pub cv: f64,
    /// Log-likelihood of the positive gaps.
    pub log_likelihood: f64,
    /// Akaike information criterion (lower is better).
    pub aic: f64,
    /// AIC minus the best model's AIC (0 for the best; > 10: essentially no support).
    pub delta_aic: f64,
    /// Kolmogorov–Smirnov statistic: largest gap between the empirical and fitted CDFs.
    pub ks_d: f64,
    /// D exceeds the 5% critical value 1.358/√n. That value assumes known parameters; with
    /// parameters fitted from the same data the true critical value is smaller, so a
    /// rejection here is conservative (certain), a pass is not proof of fit.
    pub ks_rejected_5pct: bool,
    /// Suite `arrival = ...` value for this model, when oae has that arrival process.
    pub arrival: Option<String>,
    #[serde(skip)]
    model: Box<dyn GapModel>,
}

/// On/off structure read from the hyperexponential fit.
#[derive(Debug, Clone, Serialize)]
pub struct OnOff {
    /// Whether the trace has clear on/off structure: the two gap scales differ ≥ 10×, the
    /// two-phase model beats the exponential by ΔAIC ≥ 10, and there are ≥ 5 silences.
    pub detected: bool,
    /// Gaps longer than this are silences between bursts, s.
    pub threshold_s: f64,
    /// Fast (within-burst) to slow (silence) gap-rate ratio.
    pub rate_ratio: f64,
    /// Bursts (runs of gaps at most the threshold).
    pub bursts: u64,
    /// Mean requests per burst.
    pub requests_per_burst: f64,
    /// Mean burst length, first to last arrival, s.
    pub mean_burst_s: f64,
    /// Mean silence (gap above the threshold), s.
    pub mean_silence_s: f64,
    /// Fraction of the span inside bursts.
    pub on_fraction: f64,
    /// Arrival rate within bursts, req/s.
    pub rate_on_qps: f64,
    /// The matching `onoff` process: mean on period, s.
    pub mean_on_s: f64,
    /// The matching `onoff` process: mean off period, s.
    pub mean_off_s: f64,
    /// Suite `arrival = ...` value.
    pub arrival: String,
}

/// What `oae trace fit` reports.
#[derive(Debug, Serialize)]
pub struct FitReport {
    /// Requests in the trace.
    pub requests: u64,
    /// First to last arrival, s.
    pub span_s: f64,
    /// requests / span.
    pub mean_rate_qps: f64,
    /// Inter-arrival gaps (requests − 1).
    pub gaps: u64,
    /// Gaps of exactly zero (simultaneous timestamps), excluded from the fits.
    pub zero_gaps: u64,
    /// Smallest positive gap, s: the trace's effective timestamp resolution.
    pub resolution_s: f64,
    /// Mean of all gaps, s.
    pub mean_gap_s: f64,
    /// CV of all gaps.
    pub gap_cv: f64,
    /// Fits, best (lowest AIC) first.
    pub models: Vec<ModelFit>,
    /// 5% Kolmogorov–Smirnov critical value for the number of positive gaps (known-parameter
    /// table; see [`ModelFit::ks_rejected_5pct`]).
    pub ks_critical_5pct: f64,
    /// On/off structure.
    pub onoff: Option<OnOff>,
    /// Caveats worth reading.
    pub notes: Vec<String>,
}

impl FitReport {
    /// The best model by AIC.
    pub fn best(&self) -> &ModelFit {
        &self.models[0]
    }
}

/// A trace's arrival gaps (in time order) and a bounded sample of its request shapes.
#[derive(Debug, Clone)]
pub struct TraceSample {
    /// Requests read.
    pub requests: u64,
    /// Gaps between consecutive arrivals, in time order, s.
    pub gaps: Vec<f64>,
    /// Up to [`SHAPE_SAMPLE`] (input tokens, output tokens, failed in the source), a uniform
    /// reservoir sample over the whole trace.
    pub shapes: Vec<(u32, u32, bool)>,
}

/// Request shapes kept for `gen` (uniform reservoir sample).
pub const SHAPE_SAMPLE: usize = 100_000;

/// Streams a trace once: every gap, and a seeded uniform sample of request shapes.
pub fn read_trace(
    fmt: &TraceFormat,
    path: &Path,
    label: &str,
    order: traces::Order,
    seed: u64,
) -> Result<TraceSample, ConfigError> {
    let mut rng = seeded(seed, &["trace-shapes"]);
    let mut s = TraceSample {
        requests: 0,
        gaps: Vec::new(),
        shapes: Vec::new(),
    };
    let mut prev = None;
    for row in traces::open(fmt, path, label, order)? {
        let row = row?;
        if let Some(p) = prev {
            s.gaps.push(row.t_s - p);
        }
        prev = Some(row.t_s);
        let shape = (row.input_tokens, row.output_tokens, row.source_failed);
        if s.shapes.len() < SHAPE_SAMPLE {
            s.shapes.push(shape);
        } else {
            let j = (open01(&mut rng) * (s.requests + 1) as f64) as u64;
            if (j as usize) < SHAPE_SAMPLE {
                s.shapes[j as usize] = shape;
            }
        }
        s.requests += 1;
    }
    Ok(s)
}

/// Fits every registered model to the gaps, in time order, of a trace.
pub fn fit(requests: u64, gaps: &[f64]) -> Result<FitReport, String> {
    let zero = gaps.iter().filter(|&&g| g == 0.0).count();
    let Some(g) = Gaps::new(gaps.to_vec()) else {
        return Err(format!(
            "the trace has {} positive inter-arrival gaps; fitting needs at least {MIN_GAPS}",
            gaps.len() - zero
        ));
    };
    if g.xs[0] == g.xs[g.xs.len() - 1] {
        return Err(format!(
            "every positive gap is {} s, the same length: constant arrivals, nothing to fit; use arrival = {{ process = \"constant\", rate_qps = {} }}",
            g.xs[0],
            1.0 / g.xs[0]
        ));
    }
    let n = g.xs.len() as f64;
    let mut models: Vec<ModelFit> = registry()
        .iter()
        .filter_map(|f| {
            let m = (f.fit)(&g)?;
            let ll: f64 = g.xs.iter().zip(&g.ln).map(|(&x, &l)| m.ln_pdf(x, l)).sum();
            ll.is_finite().then(|| ModelFit {
                name: f.name,
                params: m.params().into_iter().map(|(k, v)| (k.to_string(), v.into())).collect(),
                mean_gap_s: m.mean(),
                cv: m.cv(),
                log_likelihood: ll,
                aic: 2.0 * f.params as f64 - 2.0 * ll,
                delta_aic: 0.0,
                ks_d: ks(&g.xs, m.as_ref()),
                ks_rejected_5pct: false,
                arrival: m.arrival(),
                model: m,
            })
        })
        .collect();
    if models.is_empty() {
        return Err("no model could be fitted: every positive gap is the same length".into());
    }
    models.sort_by(|a, b| a.aic.total_cmp(&b.aic));
    let best = models[0].aic;
    let crit = 1.358 / n.sqrt();
    for m in &mut models {
        m.delta_aic = m.aic - best;
        m.ks_rejected_5pct = m.ks_d > crit;
    }
    let span: f64 = gaps.iter().sum();
    let mean_gap = span / gaps.len() as f64;
    let var = gaps.iter().map(|x| (x - mean_gap).powi(2)).sum::<f64>() / (gaps.len() as f64 - 1.0);
    let mut notes = Vec::new();
    if zero > 0 {
        notes.push(format!(
            "{zero} gaps ({:.1}%) are exactly 0 (simultaneous timestamps); the models describe the positive gaps, `gen` reproduces the zeros as batches",
            100.0 * zero as f64 / gaps.len() as f64
        ));
    }
    let resolution = g.xs[0];
    if resolution >= 0.999 && g.xs.iter().all(|x| x.fract() == 0.0) {
        notes.push("timestamps have whole-second resolution: gaps are discretised, so KS D is inflated for every continuous model".into());
    }
    if models.iter().all(|m| m.ks_rejected_5pct) {
        notes.push(format!(
            "every model is rejected by KS at 5% (n = {}); with many gaps small misfits are detectable — compare by AIC, and read D as the largest CDF error",
            g.xs.len()
        ));
    }
    let exp_aic = models.iter().find(|m| m.name == "exponential").map(|m| m.aic);
    let onoff = hyperexp::em(&g).map(|h| onoff_structure(&h, gaps, h_aic(&models), exp_aic));
    Ok(FitReport {
        requests,
        span_s: span,
        mean_rate_qps: if span > 0.0 { requests as f64 / span } else { 0.0 },
        gaps: gaps.len() as u64,
        zero_gaps: zero as u64,
        resolution_s: resolution,
        mean_gap_s: mean_gap,
        gap_cv: var.sqrt() / mean_gap,
        models,
        ks_critical_5pct: crit,
        onoff,
        notes,
    })
}

fn h_aic(models: &[ModelFit]) -> Option<f64> {
    models.iter().find(|m| m.name == hyperexp::FIT.name).map(|m| m.aic)
}

/// Kolmogorov–Smirnov D of sorted `xs` against `m`.
fn ks(xs: &[f64], m: &dyn GapModel) -> f64 {
    let n = xs.len() as f64;
    let mut d = 0.0f64;
    let mut i = 0;
    while i < xs.len() {
        // Ties: the empirical CDF jumps over the whole run of equal values at once.
        let mut j = i;
        while j + 1 < xs.len() && xs[j + 1] == xs[i] {
            j += 1;
        }
        let f = m.cdf(xs[i]);
        d = d.max(f - i as f64 / n).max((j + 1) as f64 / n - f);
        i = j + 1;
    }
    d
}

fn onoff_structure(h: &hyperexp::HyperExp, gaps: &[f64], h_aic: Option<f64>, exp_aic: Option<f64>) -> OnOff {
    let tau = h.threshold_s();
    let (mut silences, mut silence_s, mut within_s) = (0u64, 0.0, 0.0);
    for &g in gaps {
        if g > tau {
            silences += 1;
            silence_s += g;
        } else {
            within_s += g;
        }
    }
    let requests = gaps.len() as f64 + 1.0;
    let bursts = silences + 1;
    let rpb = requests / bursts as f64;
    let span = silence_s + within_s;
    let within_gaps = requests - bursts as f64;
    let rate_on = if within_s > 0.0 {
        within_gaps / within_s
    } else {
        h.rate_fast
    };
    let mean_silence = if silences > 0 { silence_s / silences as f64 } else { 0.0 };
    let mean_on = rpb / rate_on;
    let mean_off = (mean_silence - 1.0 / rate_on).max(0.5 * mean_silence);
    let ratio = h.rate_fast / h.rate_slow;
    let better = matches!((h_aic, exp_aic), (Some(a), Some(b)) if a <= b - 10.0);
    OnOff {
        detected: ratio >= 10.0 && better && silences >= 5,
        threshold_s: tau,
        rate_ratio: ratio,
        bursts,
        requests_per_burst: rpb,
        mean_burst_s: within_s / bursts as f64,
        mean_silence_s: mean_silence,
        on_fraction: if span > 0.0 { within_s / span } else { 0.0 },
        rate_on_qps: rate_on,
        mean_on_s: mean_on,
        mean_off_s: mean_off,
        arrival: format!(
            "{{ process = \"onoff\", rate_on_qps = {rate_on:.6}, mean_on_s = {mean_on:.4}, mean_off_s = {mean_off:.4} }}"
        ),
    }
}

/// Which model `gen` draws gaps from.
#[derive(Debug, Clone, PartialEq)]
pub enum GenModel {
    /// On/off when detected, else the best model by AIC.
    Auto,
    /// A registered model, by name.
    Named(String),
    /// The on/off (two-state MMPP) structure.
    OnOff,
}

/// A synthesized trace: offsets and what produced them.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// Arrival offsets, s, non-decreasing.
    pub offsets: Vec<f64>,
    /// The generating model, e.g. `lognormal(mu_ln_s=…, sigma=…) time-scaled ×0.5`.
    pub model: String,
}

/// Draws arrival offsets like the fitted trace's, time-scaled to a mean rate of `rate_qps`:
/// shape, CV and burst structure are kept; every duration is multiplied by one factor.
pub fn synthesize(
    report: &FitReport,
    which: &GenModel,
    rate_qps: f64,
    limit: Limit,
    rng: &mut SeededRng,
) -> Result<Synthetic, String> {
    if !(rate_qps.is_finite() && rate_qps > 0.0) {
        return Err(format!("the target rate must be > 0 req/s, got {rate_qps}"));
    }
    let use_onoff = match which {
        GenModel::OnOff => {
            let o = report
                .onoff
                .as_ref()
                .ok_or("the trace has no fitted on/off structure")?;
            if !o.detected {
                return Err(format!(
                    "the trace shows no clear on/off structure (gap-rate ratio {:.1}, {} silences); pick a renewal model",
                    o.rate_ratio,
                    o.bursts - 1
                ));
            }
            true
        }
        GenModel::Auto => report.onoff.as_ref().is_some_and(|o| o.detected),
        GenModel::Named(_) => false,
    };
    if use_onoff {
        let o = report.onoff.as_ref().expect("checked above");
        // MMPP mean rate = rate_on · on / (on + off); scale time so it equals the target.
        let native = o.rate_on_qps * o.mean_on_s / (o.mean_on_s + o.mean_off_s);
        let c = native / rate_qps;
        let p = crate::arrivals::onoff_process(o.rate_on_qps / c, o.mean_on_s * c, o.mean_off_s * c);
        let offsets = p.offsets(rng, limit).into_iter().map(|d| d.as_secs_f64()).collect();
        return Ok(Synthetic {
            offsets,
            model: format!("{} (time ×{c:.4})", p.describe()),
        });
    }
    let fit = match which {
        GenModel::Named(name) => report.models.iter().find(|m| m.name == name).ok_or_else(|| {
            let names: Vec<_> = report.models.iter().map(|m| m.name).collect();
            format!("no fitted model `{name}`; one of: {}, onoff", names.join(", "))
        })?,
        _ => report.best(),
    };
    let zero_p = report.zero_gaps as f64 / report.gaps.max(1) as f64;
    let native_mean = (1.0 - zero_p) * fit.model.mean();
    let c = 1.0 / (rate_qps * native_mean);
    let m = fit.model.scaled(c);
    let offsets = accumulate(limit, || if open01(rng) < zero_p { 0.0 } else { m.sample(rng) })
        .into_iter()
        .map(|d: Duration| d.as_secs_f64())
        .collect();
    let params: Vec<String> = fit.model.params().iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
    Ok(Synthetic {
        offsets,
        model: format!(
            "{}({}) time ×{c:.4}{}",
            fit.name,
            params.join(", "),
            if zero_p > 0.0 {
                format!(", {:.1}% zero gaps", zero_p * 100.0)
            } else {
                String::new()
            }
        ),
    })
}
