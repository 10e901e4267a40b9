//! Harness bookkeeping per request: the timestamps a worker takes (4 + one per token),
//! building the RequestRecord, recording it into the HDR histograms, and appending its JSON
//! line to requests.jsonl — everything the harness adds on top of the method's own work.
//! Target: ≤ 20 µs per request (issue: foundation).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use oae_core::rundir::Outcome;
use oae_harness::rundir::RunDir;
use oae_harness::runner::{CellPlan, Histograms, Served, Stamps, build_record};
use oae_workloads::{Arrival, Request, Schedule};

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut dir = RunDir::create(&tmp.path().join("run")).unwrap();
    let arrival = Arrival {
        at: Duration::from_millis(5),
        skipped: Duration::ZERO,
        request: Request {
            id: 7,
            prompt: "x".repeat(64),
            max_new_tokens: 32,
            target_input_tokens: 64,
            source_failed: false,
            task: None,
        },
    };
    let schedule = Schedule::new("w".into(), "bench".into(), vec![arrival.clone()], None);
    let plan = CellPlan {
        method: "dense",
        schedule: &schedule,
        warmup: Duration::ZERO,
        cooldown: Duration::ZERO,
        trial: 0,
        controls: Default::default(),
        boundary: None,
        keep_output_chars: 0,
    };
    let mut hists = Histograms::default();
    let t0 = Instant::now();

    c.bench_function("bookkeeping per request (32 tokens)", |b| {
        b.iter(|| {
            let dispatched = Instant::now();
            let started = Instant::now();
            let mut tokens = Vec::with_capacity(32);
            for _ in 0..32 {
                tokens.push(Instant::now());
            }
            let stamps = Stamps {
                dispatched,
                started: Some(started),
                tokens,
                ids: Vec::new(),
                finished: Some(Instant::now()),
            };
            let served = Served {
                instance: Some(0),
                outcome: Outcome::Ok,
                error: None,
                input_tokens: Some(65),
                stop_reason: Some("length".into()),
                phases_ms: [("prefill".to_string(), 1.5), ("decode".to_string(), 60.0)].into(),
                counters: [("kv_tokens".to_string(), 97.0)].into(),
                output_text: None,
                reasoning_split: None,
                output_tokens: None,
            };
            let rec = build_record(&plan, &arrival, t0, &stamps, served);
            hists.record(&rec);
            dir.append_record(black_box(&rec)).unwrap();
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
