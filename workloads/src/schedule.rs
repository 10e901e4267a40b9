//! A pre-generated, hashed schedule and its time compression.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::Arrival;

pub use oae_core::rundir::Compression;

/// The whole list of arrivals one workload replays, in order.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The workload it belongs to.
    pub workload: String,
    /// The arrival process, described.
    pub process: String,
    /// Arrivals sorted by intended time (after compression).
    pub arrivals: Vec<Arrival>,
    /// What compression removed.
    pub compression: Compression,
    /// SHA-256 (hex) of the replayed schedule: offsets, skipped time and every request.
    pub hash: String,
    /// Trace rows whose timestamp stepped back within the accepted tolerance and were kept
    /// in file order (0 for arrival processes).
    pub reordered_rows: u64,
}

impl Schedule {
    /// Builds a schedule from uncompressed arrivals, compressing gaps above `cap`.
    pub fn new(workload: String, process: String, mut arrivals: Vec<Arrival>, cap: Option<Duration>) -> Self {
        let original_span = arrivals.last().map(|a| a.at).unwrap_or_default();
        let mut removed = Duration::ZERO;
        let mut shortened = 0u64;
        let mut prev = Duration::ZERO;
        for a in &mut arrivals {
            let gap = a.at.saturating_sub(prev);
            prev = a.at;
            if let Some(cap) = cap
                && gap > cap
            {
                a.skipped = gap - cap;
                removed += a.skipped;
                shortened += 1;
            }
            a.at -= removed;
        }
        let replay_span = arrivals.last().map(|a| a.at).unwrap_or_default();
        let factor = if replay_span.is_zero() {
            1.0
        } else {
            original_span.as_secs_f64() / replay_span.as_secs_f64()
        };
        let compression = Compression {
            cap_s: cap.map(|c| c.as_secs_f64()),
            gaps_shortened: shortened,
            skipped_s: removed.as_secs_f64(),
            original_span_s: original_span.as_secs_f64(),
            replay_span_s: replay_span.as_secs_f64(),
            factor,
        };
        let hash = hash(&workload, &arrivals);
        Self {
            workload,
            process,
            arrivals,
            compression,
            hash,
            reordered_rows: 0,
        }
    }

    /// Number of arrivals.
    pub fn len(&self) -> usize {
        self.arrivals.len()
    }

    /// Whether there are no arrivals.
    pub fn is_empty(&self) -> bool {
        self.arrivals.is_empty()
    }

    /// Mean offered rate over the replayed span, requests per second.
    pub fn replay_rate_qps(&self) -> f64 {
        match self.compression.replay_span_s {
            s if s > 0.0 => self.len() as f64 / s,
            _ => 0.0,
        }
    }
}

fn hash(workload: &str, arrivals: &[Arrival]) -> String {
    let mut h = Sha256::new();
    h.update(b"oae-schedule-v1\0");
    h.update((workload.len() as u64).to_le_bytes());
    h.update(workload.as_bytes());
    for a in arrivals {
        h.update((a.at.as_nanos() as u64).to_le_bytes());
        h.update((a.skipped.as_nanos() as u64).to_le_bytes());
        h.update(a.request.id.to_le_bytes());
        h.update(a.request.max_new_tokens.to_le_bytes());
        h.update((a.request.prompt.len() as u64).to_le_bytes());
        h.update(a.request.prompt.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Request;

    fn arrivals(at_s: &[f64]) -> Vec<Arrival> {
        at_s.iter()
            .enumerate()
            .map(|(i, &t)| Arrival {
                at: Duration::from_secs_f64(t),
                skipped: Duration::ZERO,
                request: Request {
                    id: i as u64,
                    prompt: "p".into(),
                    max_new_tokens: 1,
                    target_input_tokens: 1,
                    source_failed: false,
                    task: None,
                },
            })
            .collect()
    }

    #[test]
    fn compression_shortens_long_gaps_and_records_them() {
        let s = Schedule::new(
            "w".into(),
            "x".into(),
            arrivals(&[1.0, 11.0, 12.0, 40.0]),
            Some(Duration::from_secs(2)),
        );
        let at: Vec<f64> = s.arrivals.iter().map(|a| a.at.as_secs_f64()).collect();
        assert_eq!(at, vec![1.0, 3.0, 4.0, 6.0]);
        let skipped: Vec<f64> = s.arrivals.iter().map(|a| a.skipped.as_secs_f64()).collect();
        assert_eq!(skipped, vec![0.0, 8.0, 0.0, 26.0]);
        assert_eq!(s.compression.gaps_shortened, 2);
        assert!((s.compression.skipped_s - 34.0).abs() < 1e-9);
        assert!((s.compression.factor - 40.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn no_cap_no_change() {
        let s = Schedule::new("w".into(), "x".into(), arrivals(&[1.0, 50.0]), None);
        assert_eq!(s.arrivals[1].at, Duration::from_secs(50));
        assert_eq!(s.compression.factor, 1.0);
    }

    #[test]
    fn hash_depends_on_content() {
        let a = Schedule::new("w".into(), "x".into(), arrivals(&[1.0, 2.0]), None);
        let b = Schedule::new("w".into(), "x".into(), arrivals(&[1.0, 2.5]), None);
        let c = Schedule::new("v".into(), "x".into(), arrivals(&[1.0, 2.0]), None);
        assert_eq!(
            a.hash,
            Schedule::new("w".into(), "x".into(), arrivals(&[1.0, 2.0]), None).hash
        );
        assert_ne!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
        assert_eq!(a.hash.len(), 64);
    }
}
