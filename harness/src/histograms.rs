//! HDR latency histograms on disk: the standard interval-log format, one tagged interval per
//! (method, workload, metric), so runs — or shards of one suite run on several machines —
//! merge exactly by adding counts.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::stats::{Estimate, ci_ranks};

/// One tagged histogram: (tag, start s, duration s, histogram).
pub type Entry = (String, f64, f64, Histogram<u64>);

/// The tag of a (method, workload, metric) histogram. Characters the format forbids in
/// tags (`,`, space, CR, LF) become `_`.
pub fn tag(method: &str, workload: &str, metric: &str) -> String {
    format!("{method}|{workload}|{metric}")
        .chars()
        .map(|c| if matches!(c, ',' | ' ' | '\r' | '\n') { '_' } else { c })
        .collect()
}

/// Serializes entries as an interval log (V2 + deflate, base64), in order.
pub fn to_log(entries: &[Entry]) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    {
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment("oae latency histograms, microseconds; tag = method|workload|metric")
            .begin_log_with(&mut buf, &mut ser)
            .map_err(|e| e.to_string())?;
        for (t, start_s, dur_s, h) in entries {
            let t = Tag::new(t).ok_or_else(|| format!("tag `{t}` has a character the interval-log format forbids"))?;
            let start = Duration::from_secs_f64(start_s.max(0.0));
            let dur = Duration::from_secs_f64(dur_s.max(0.0));
            w.write_histogram(h, start, dur, Some(t))
                .map_err(|e| format!("{e:?}"))?;
        }
    }
    Ok(buf)
}

/// Parses an interval log into its tagged histograms (untagged intervals get tag `""`).
pub fn read_log(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let mut de = Deserializer::new();
    for (i, entry) in IntervalLogIterator::new(bytes).enumerate() {
        let entry = entry.map_err(|e| format!("interval {}: not a valid interval-log line: {e:?}", i + 1))?;
        if let LogEntry::Interval(iv) = entry {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(iv.encoded_histogram())
                .map_err(|e| format!("interval {}: bad base64: {e}", i + 1))?;
            let h: Histogram<u64> = de
                .deserialize(&mut std::io::Cursor::new(raw))
                .map_err(|e| format!("interval {}: bad histogram encoding: {e:?}", i + 1))?;
            let t = iv.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
            out.push((t, iv.start_timestamp().as_secs_f64(), iv.duration().as_secs_f64(), h));
        }
    }
    Ok(out)
}

/// Merges several logs: histograms with the same tag are added (exact: counts add).
pub fn merge_logs(logs: &[Vec<u8>]) -> Result<BTreeMap<String, Histogram<u64>>, String> {
    let mut merged: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for (i, log) in logs.iter().enumerate() {
        for (t, _, _, h) in read_log(log).map_err(|e| format!("log {}: {e}", i + 1))? {
            match merged.get_mut(&t) {
                Some(m) => m
                    .add(&h)
                    .map_err(|e| format!("tag {t}: cannot add histograms: {e:?}"))?,
                None => {
                    merged.insert(t, h);
                }
            }
        }
    }
    Ok(merged)
}

/// Percentiles of a histogram with the same order-statistic intervals as [`crate::stats`],
/// read at the interval's ranks (values are HDR-rounded to 3 significant digits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramStat {
    /// Values recorded.
    pub n: u64,
    /// Mean (HDR-rounded values).
    pub mean: f64,
    /// Smallest value.
    pub min: u64,
    /// Largest value.
    pub max: u64,
    /// Median.
    pub p50: Estimate,
    /// 90th percentile.
    pub p90: Estimate,
    /// 95th percentile.
    pub p95: Estimate,
    /// 99th percentile.
    pub p99: Estimate,
}

/// Summarises a histogram; `None` when it is empty.
pub fn describe(h: &Histogram<u64>, confidence: f64) -> Option<HistogramStat> {
    let n = h.len();
    if n == 0 {
        return None;
    }
    let at_rank = |r: usize| h.value_at_quantile(r as f64 / n as f64) as f64;
    let est = |p: f64| {
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n as usize);
        let value = at_rank(rank);
        // Exact ranks for moderate n; beyond, the binomial ranks are p·n ± z·√(n p (1−p)).
        let (lo, hi) = if n <= 2_000_000 {
            ci_ranks(n as usize, p, confidence)
        } else {
            let z = crate::stats::normal_quantile(1.0 - (1.0 - confidence) / 2.0);
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            (
                Some((p * n as f64 - z * sd).floor().max(1.0) as usize),
                Some((p * n as f64 + z * sd).ceil().min(n as f64) as usize),
            )
        };
        let ci_lo = lo.map(|r| at_rank(r).min(value));
        let ci_hi = hi.map(|r| at_rank(r).max(value));
        Estimate {
            value,
            ci_lo,
            ci_hi,
            insufficient: ci_lo.is_none() || ci_hi.is_none(),
        }
    };
    Some(HistogramStat {
        n,
        mean: h.mean(),
        min: h.min(),
        max: h.max(),
        p50: est(0.5),
        p90: est(0.9),
        p95: est(0.95),
        p99: est(0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_tags_and_counts() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in [10, 20, 30, 4000] {
            h.record(v).unwrap();
        }
        let log = to_log(&[(tag("dense greedy", "w,1", "ttft_us"), 1.5, 2.0, h.clone())]).unwrap();
        let back = read_log(&log).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].0, "dense_greedy|w_1|ttft_us");
        assert_eq!(back[0].3, h);
        assert!((back[0].1 - 1.5).abs() < 1e-3);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_log(b"Tag=a,0.1,1.0,2.0,!!!notbase64\n").is_err());
    }
}
