//! Schedules generated from a workload are reproducible from the seed.

use std::sync::Arc;
use std::time::Duration;

use oae_workloads::config::SourceFile;
use oae_workloads::workload::WorkloadEntry;
use oae_workloads::{Limit, WorkloadSpec};

fn workload(text: &str) -> WorkloadSpec {
    let source: Arc<SourceFile> = SourceFile::new("w.toml", text);
    let entry: WorkloadEntry = toml::from_str(text).unwrap();
    WorkloadSpec::from_entry(entry, &source, 0).unwrap()
}

const POISSON: &str = r#"
name = "sporadic"
arrival = { process = "poisson", rate_qps = 2.0 }
input_tokens = { dist = "uniform", min = 8, max = 40 }
output_tokens = 16
"#;

#[test]
fn same_seed_same_hash_different_seed_different_hash() {
    let w = workload(POISSON);
    let a = w.schedule(42, Limit::Count(50), None);
    let b = w.schedule(42, Limit::Count(50), None);
    let c = w.schedule(43, Limit::Count(50), None);
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.arrivals, b.arrivals);
    assert_ne!(a.hash, c.hash);
    assert_eq!(a.len(), 50);
    assert!(
        a.arrivals
            .iter()
            .all(|x| (8..=40).contains(&(x.request.prompt.len() as u32)))
    );
}

#[test]
fn duration_limit_and_compression_change_the_hash() {
    let w = workload(POISSON);
    let full = w.schedule(1, Limit::Duration(Duration::from_secs(30)), None);
    assert!(full.arrivals.iter().all(|a| a.at < Duration::from_secs(30)));
    let capped = w.schedule(
        1,
        Limit::Duration(Duration::from_secs(30)),
        Some(Duration::from_millis(100)),
    );
    assert_eq!(full.len(), capped.len());
    assert_ne!(full.hash, capped.hash);
    assert!(capped.compression.factor > 1.0);
}
