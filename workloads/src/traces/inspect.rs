//! `oae trace inspect`: what a trace looks like, computed in one streaming pass with bounded
//! memory (running moments for gaps, HDR histograms for lengths and gaps).

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Order, TraceFormat, open};
use crate::ConfigError;

/// Summary of a token-length or gap distribution.
#[derive(Debug, Clone, Serialize)]
pub struct Dist {
    /// Mean.
    pub mean: f64,
    /// Median (HDR, 3 significant digits).
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

/// What `oae trace inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct TraceStats {
    /// Format read.
    pub format: String,
    /// Requests.
    pub requests: u64,
    /// Requests the source recorded as failed.
    pub source_failed: u64,
    /// Rows whose timestamp stepped back within the accepted tolerance (kept in file order).
    pub reordered: u64,
    /// First to last arrival, s.
    pub span_s: f64,
    /// requests / span.
    pub mean_rate_qps: f64,
    /// Inter-arrival gaps, s.
    pub gap_s: Option<Dist>,
    /// Coefficient of variation of the gaps (1 = Poisson-like, > 1 bursty).
    pub gap_cv: Option<f64>,
    /// Gaps by length: [< 1 s, 1–10 s, 10–60 s, > 60 s].
    pub idle_gaps: [u64; 4],
    /// Time inside gaps longer than 60 s, as a fraction of the span.
    pub idle_fraction_over_60s: f64,
    /// Fraction of 1-second bins with at least one arrival.
    pub duty_cycle_1s: f64,
    /// Fraction of 60-second bins with at least one arrival.
    pub duty_cycle_60s: f64,
    /// Prompt tokens.
    pub input_tokens: Dist,
    /// Generated tokens.
    pub output_tokens: Dist,
}

fn dist(h: &Histogram<u64>, scale: f64) -> Dist {
    Dist {
        mean: h.mean() / scale,
        p50: h.value_at_quantile(0.5) as f64 / scale,
        p95: h.value_at_quantile(0.95) as f64 / scale,
        p99: h.value_at_quantile(0.99) as f64 / scale,
        max: h.max() as f64 / scale,
    }
}

/// Reads the whole trace once and summarises it.
pub fn inspect(
    fmt: &TraceFormat,
    path: &std::path::Path,
    label: &str,
    order: Order,
) -> Result<TraceStats, ConfigError> {
    let h = || Histogram::<u64>::new_with_bounds(1, u64::from(u32::MAX) * 1000, 3).expect("static bounds");
    let (mut inputs, mut outputs, mut gaps_ms) = (h(), h(), h());
    let (mut n, mut failed) = (0u64, 0u64);
    let (mut first, mut prev) = (None::<f64>, 0.0f64);
    // Welford running mean/variance of gaps.
    let (mut gn, mut gmean, mut gm2) = (0u64, 0.0f64, 0.0f64);
    let mut idle = [0u64; 4];
    let mut idle_long_s = 0.0;
    let (mut bins_1s, mut last_bin_1s, mut bins_60s, mut last_bin_60s) = (0u64, None, 0u64, None);
    let mut reordered = 0u64;
    for row in open(fmt, path, label, order)? {
        let row = row?;
        let t0 = *first.get_or_insert(row.t_s);
        let rel = row.t_s - t0;
        if n > 0 {
            let g = rel - prev;
            gn += 1;
            let d = g - gmean;
            gmean += d / gn as f64;
            gm2 += d * (g - gmean);
            let _ = gaps_ms.record(((g * 1e3).round() as u64).max(1));
            idle[match g {
                g if g < 1.0 => 0,
                g if g < 10.0 => 1,
                g if g < 60.0 => 2,
                _ => 3,
            }] += 1;
            if g > 60.0 {
                idle_long_s += g;
            }
        }
        let (b1, b60) = ((rel.floor()) as u64, (rel / 60.0).floor() as u64);
        if last_bin_1s != Some(b1) {
            bins_1s += 1;
            last_bin_1s = Some(b1);
        }
        if last_bin_60s != Some(b60) {
            bins_60s += 1;
            last_bin_60s = Some(b60);
        }
        prev = rel;
        n += 1;
        failed += u64::from(row.source_failed);
        reordered += u64::from(row.reordered);
        let _ = inputs.record(u64::from(row.input_tokens).max(1));
        let _ = outputs.record(u64::from(row.output_tokens).max(1));
    }
    let span = prev;
    let var = if gn > 1 { gm2 / (gn - 1) as f64 } else { 0.0 };
    Ok(TraceStats {
        format: fmt.name.to_string(),
        requests: n,
        source_failed: failed,
        reordered,
        span_s: span,
        mean_rate_qps: if span > 0.0 { n as f64 / span } else { 0.0 },
        gap_s: (gn > 0).then(|| dist(&gaps_ms, 1e3)),
        gap_cv: (gn > 1 && gmean > 0.0).then(|| var.sqrt() / gmean),
        idle_gaps: idle,
        idle_fraction_over_60s: if span > 0.0 { idle_long_s / span } else { 0.0 },
        duty_cycle_1s: bins_1s as f64 / (span.floor() + 1.0),
        duty_cycle_60s: bins_60s as f64 / ((span / 60.0).floor() + 1.0),
        input_tokens: dist(&inputs, 1.0),
        output_tokens: dist(&outputs, 1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_a_small_trace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        // Arrivals at 0, 1, 2, 100, 101 s: four gaps (1, 1, 98, 1).
        std::fs::write(
            &p,
            "t_s,input_tokens,output_tokens\n0,10,1\n1,20,2\n2,30,3\n100,40,4\n101,50,5\n",
        )
        .unwrap();
        let fmt = super::super::detect(&p).unwrap();
        assert_eq!(fmt.name, "oae-csv");
        let s = inspect(fmt, &p, "t.csv", Order::default()).unwrap();
        assert_eq!((s.requests, s.span_s), (5, 101.0));
        assert_eq!(s.idle_gaps, [0, 3, 0, 1]);
        assert!((s.idle_fraction_over_60s - 98.0 / 101.0).abs() < 1e-9);
        assert!((s.gap_cv.unwrap() - 1.92).abs() < 0.01, "{:?}", s.gap_cv);
        assert_eq!(s.duty_cycle_60s, 1.0);
        assert!((s.duty_cycle_1s - 5.0 / 102.0).abs() < 1e-9);
        assert_eq!(s.input_tokens.max, 50.0);
    }
}
