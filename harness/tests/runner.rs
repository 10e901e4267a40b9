//! The runner driven by the mock method: timing from intended arrival, failures kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use oae_core::rundir::{Outcome, RequestRecord};
use oae_harness::Method;
use oae_harness::mock::{Mock, MockConfig};
use oae_harness::runner::{CellPlan, run_cell};
use oae_workloads::{Arrival, Request, Schedule};

fn schedule(n: usize, gap_ms: u64) -> Schedule {
    let arrivals = (0..n)
        .map(|i| Arrival {
            at: Duration::from_millis(gap_ms * i as u64),
            skipped: Duration::ZERO,
            request: Request {
                id: i as u64,
                prompt: "p".into(),
                max_new_tokens: 4,
                target_input_tokens: 1,
                source_failed: false,
                task: None,
            },
        })
        .collect();
    Schedule::new("w".into(), "test".into(), arrivals, None)
}

fn run(s: &Schedule, cfg: MockConfig, stop: &AtomicBool) -> (Vec<RequestRecord>, bool) {
    let plan = CellPlan {
        method: "mock",
        schedule: s,
        warmup: Duration::ZERO,
        cooldown: Duration::ZERO,
        trial: 0,
        controls: Default::default(),
        boundary: None,
        keep_output_chars: 0,
    };
    let instances: Vec<Box<dyn Method>> = vec![Box::new(Mock::new(cfg))];
    let mut seen = 0;
    let out = run_cell(&plan, instances, stop, &mut |_| {
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, out.records.len(), "every record passes through the sink");
    let mut r = out.records;
    r.sort_by_key(|r| r.request_id);
    (r, out.aborted)
}

#[test]
fn latency_is_timed_from_intended_arrival_so_queueing_shows() {
    // Arrivals every 20 ms, service ≈ 60 ms: each request waits ~40 ms longer than the last.
    let s = schedule(10, 20);
    let cfg = MockConfig {
        prefill_ms: 30.0,
        decode_ms_per_token: 10.0,
        ..Default::default()
    };
    let (r, aborted) = run(&s, cfg, &AtomicBool::new(false));
    assert!(!aborted);
    assert_eq!(r.len(), 10);
    let q: Vec<f64> = r.iter().map(|x| x.queue_ms.unwrap()).collect();
    let e2e: Vec<f64> = r.iter().map(|x| x.e2e_ms.unwrap()).collect();
    // Sleeps only ever overshoot, so these lower bounds hold on any machine.
    assert!(q[9] > q[0] + 200.0, "queue did not grow: {q:?}");
    assert!(e2e[9] > e2e[0] + 200.0, "e2e did not grow: {e2e:?}");
    assert!(
        q.windows(2).all(|w| w[1] + 1.0 >= w[0]),
        "queue should be non-decreasing: {q:?}"
    );
    for x in &r {
        // TTFT and E2E are measured from the intended arrival, which precedes dispatch.
        assert!(x.ttft_ms.unwrap() >= x.queue_ms.unwrap() + x.dispatch_lag_ms - 1e-6);
        assert!(x.e2e_ms.unwrap() >= x.ttft_ms.unwrap());
        assert_eq!(x.itl_ms.len(), 3);
        assert_eq!(x.output_tokens, 4);
        assert!(x.dispatched_s >= x.intended_s);
    }
}

#[test]
fn failures_and_panics_are_recorded_and_counted_never_dropped() {
    let s = schedule(8, 2);
    let cfg = MockConfig {
        fail_every: 4,
        panic_ids: vec![1],
        ..Default::default()
    };
    let (r, _) = run(&s, cfg, &AtomicBool::new(false));
    assert_eq!(r.len(), 8, "every arrival has a record");
    let failed: Vec<u64> = r
        .iter()
        .filter(|x| x.outcome == Outcome::Error)
        .map(|x| x.request_id)
        .collect();
    assert_eq!(failed, vec![1, 3, 7]);
    assert!(r[1].error.as_deref().unwrap().contains("panicked"));
    assert!(r[3].error.as_deref().unwrap().contains("mock failure"));
    assert!(r[3].ttft_ms.is_none() && r[3].e2e_ms.is_some());
    let info = oae_harness::summary::CellInfo {
        method: "mock",
        method_id: "mock",
        workload: "w",
        replay_s: 1.0,
        offered_rate_qps: 1.0,
        setup_s: 0.0,
        confidence: 0.95,
        warmup_s: 0.0,
        cooldown_s: 0.0,
        slo: &Default::default(),
        min_requests: None,
        min_duration_s: None,
    };
    let summary = oae_harness::summary::summarize(&info, &r);
    assert_eq!((summary.ok, summary.failed), (5, 3));
    assert_eq!(summary.outcomes[&Outcome::Error], 3);
    assert_eq!(
        summary.latency["e2e_ms"].n, 5,
        "latency statistics are over ok requests"
    );
}

#[test]
fn stopping_keeps_records_and_marks_the_rest_cancelled() {
    let s = schedule(20, 10);
    let stop = AtomicBool::new(false);
    let cfg = MockConfig {
        prefill_ms: 40.0,
        ..Default::default()
    };
    let (r, aborted) = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(120));
            stop.store(true, Ordering::Relaxed);
        });
        run(&s, cfg, &stop)
    });
    assert!(aborted);
    assert!(r.len() < 20, "unreleased arrivals are not sent");
    assert!(r.iter().any(|x| x.outcome == Outcome::Ok));
    assert!(
        r.iter().any(|x| x.outcome == Outcome::Cancelled),
        "queued requests are recorded as cancelled"
    );
}

#[test]
fn warmup_and_cooldown_are_by_intended_time() {
    let s = schedule(6, 10);
    let plan = CellPlan {
        method: "mock",
        schedule: &s,
        warmup: Duration::from_millis(25),
        cooldown: Duration::from_millis(15),
        trial: 0,
        controls: Default::default(),
        boundary: None,
        keep_output_chars: 0,
    };
    let out = run_cell(
        &plan,
        vec![Box::new(Mock::new(MockConfig::default()))],
        &AtomicBool::new(false),
        &mut |_| Ok(()),
    )
    .unwrap();
    let mut warm: Vec<(u64, bool)> = out.records.iter().map(|r| (r.request_id, r.warmup)).collect();
    warm.sort();
    assert_eq!(
        warm,
        vec![(0, true), (1, true), (2, true), (3, false), (4, false), (5, false)]
    );
    let mut cool: Vec<(u64, bool)> = out.records.iter().map(|r| (r.request_id, r.cooldown)).collect();
    cool.sort();
    let last = s.arrivals.last().unwrap().at;
    let want: Vec<(u64, bool)> = s
        .arrivals
        .iter()
        .map(|a| (a.request.id, a.at + Duration::from_millis(15) > last))
        .collect();
    assert_eq!(cool, want);
    assert!(want.iter().filter(|w| w.1).count() >= 1);
    assert_eq!(
        out.records.iter().filter(|r| r.measured()).count(),
        6 - 3 - want.iter().filter(|w| w.1).count()
    );
}

fn run_with(s: &Schedule, cfg: MockConfig, controls: oae_harness::runner::LoadControls) -> Vec<RequestRecord> {
    let plan = CellPlan {
        method: "mock",
        schedule: s,
        warmup: Duration::ZERO,
        cooldown: Duration::ZERO,
        trial: 0,
        controls,
        boundary: None,
        keep_output_chars: 0,
    };
    let out = run_cell(
        &plan,
        vec![Box::new(Mock::new(cfg))],
        &AtomicBool::new(false),
        &mut |_| Ok(()),
    )
    .unwrap();
    let mut r = out.records;
    r.sort_by_key(|r| r.request_id);
    r
}

#[test]
fn queue_bound_rejects_and_records_every_rejection() {
    // Ten arrivals 5 ms apart against a 60 ms service: one in service, one waiting, the rest refused.
    let s = schedule(10, 5);
    let cfg = MockConfig {
        prefill_ms: 60.0,
        ..Default::default()
    };
    let controls = oae_harness::runner::LoadControls {
        timeout: None,
        queue_bound: Some(1),
    };
    let r = run_with(&s, cfg, controls);
    assert_eq!(r.len(), 10, "rejections are records too");
    let rejected: Vec<&RequestRecord> = r.iter().filter(|x| x.outcome == Outcome::Rejected).collect();
    assert!(
        rejected.len() >= 6,
        "expected most to be rejected: {:?}",
        r.iter().map(|x| x.outcome).collect::<Vec<_>>()
    );
    assert!(
        rejected
            .iter()
            .all(|x| x.started_s.is_none() && x.error.as_deref().unwrap().contains("queue_bound"))
    );
    assert_eq!(r[0].outcome, Outcome::Ok);
}

#[test]
fn timeouts_fire_in_the_queue_and_in_service() {
    // Deadline 50 ms after each arrival (10 ms apart). Request 0 emits its first token at
    // ≥ 45 ms and is stopped at the deadline mid-generation; request 1 cannot start before
    // ~50 ms nor emit before ~95 ms, so requests 2–4 (deadlines 70–90 ms) expire queued.
    let s = schedule(6, 10);
    let cfg = MockConfig {
        prefill_ms: 45.0,
        decode_ms_per_token: 4.0,
        tokens: Some(oae_core::config::PositiveU32(20)),
        ..Default::default()
    };
    let controls = oae_harness::runner::LoadControls {
        timeout: Some(Duration::from_millis(50)),
        queue_bound: None,
    };
    let r = run_with(&s, cfg, controls);
    assert_eq!(r.len(), 6);
    assert!(
        r.iter().all(|x| x.outcome == Outcome::Timeout),
        "{:?}",
        r.iter().map(|x| (x.outcome, x.error.clone())).collect::<Vec<_>>()
    );
    assert!(
        r[0].output_tokens < 20 && r[0].stop_reason.as_deref() == Some("stopped"),
        "stopped mid-generation: {:?}",
        r[0]
    );
    assert!(r[0].error.as_deref().unwrap().contains("timeout_s"));
    assert!(
        r.iter()
            .skip(1)
            .any(|x| x.started_s.is_none() && x.error.as_deref().unwrap().contains("while queued"))
    );
}

#[test]
fn a_failing_record_sink_stops_the_replay_but_loses_no_record() {
    let s = schedule(10, 5);
    let plan = CellPlan {
        method: "mock",
        schedule: &s,
        warmup: Duration::ZERO,
        cooldown: Duration::ZERO,
        trial: 0,
        controls: Default::default(),
        boundary: None,
        keep_output_chars: 0,
    };
    let cfg = MockConfig {
        prefill_ms: 20.0,
        ..Default::default()
    };
    let mut calls = 0;
    let out = run_cell(
        &plan,
        vec![Box::new(Mock::new(cfg))],
        &AtomicBool::new(false),
        &mut |_| {
            calls += 1;
            if calls == 2 {
                Err(oae_harness::HarnessError::Invalid("disk full".into()))
            } else {
                Ok(())
            }
        },
    )
    .unwrap();
    assert!(out.aborted);
    assert!(out.error.as_deref().unwrap().contains("disk full"));
    assert!(
        out.records.len() >= 2,
        "records collected before and after the failure are handed back"
    );
    assert_eq!(out.instances.len(), 1, "the method instance survives");
}
