//! Trace streaming speed and memory. Target (issue: workloads and statistics): a 5M-row
//! BurstGPT-format CSV parsed in ≤ 10 s with peak RSS ≤ 300 MB.
//!
//! The bench writes the CSV itself (never committed) to a temporary directory, then times
//! three passes over it, each with the peak RSS reset before it (Linux `clear_refs` 5):
//! the validated row stream every consumer uses, `oae trace inspect`'s statistics, and
//! `oae trace fit`'s read + fit (which keeps every gap in memory by design).
//!
//! `cargo bench -p oae-workloads --bench trace_parse` (rows: OAE_BENCH_ROWS, default 5,000,000)

use std::io::Write;
use std::time::Instant;

use oae_core::rng::{exponential, open01, seeded};
use oae_workloads::traces::{self, inspect};

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a listing; nothing to list
    }
    let rows: u64 = std::env::var("OAE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burstgpt.csv");
    let t = Instant::now();
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
        writeln!(
            w,
            "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"
        )
        .unwrap();
        let mut rng = seeded(1, &["bench-trace"]);
        let mut ts = 0.0f64;
        for _ in 0..rows {
            ts += exponential(&mut rng, 0.5);
            let req = 1 + (exponential(&mut rng, 600.0) as u32);
            let resp = if open01(&mut rng) < 0.02 {
                0
            } else {
                1 + (exponential(&mut rng, 250.0) as u32)
            };
            let (model, log) = if open01(&mut rng) < 0.7 {
                ("ChatGPT", "Conversation log")
            } else {
                ("GPT-4", "API log")
            };
            writeln!(w, "{ts:.3},{model},{req},{resp},{},{log}", req + resp).unwrap();
        }
    }
    let size_mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
    println!(
        "generated {rows} BurstGPT rows ({size_mb:.0} MB) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let fmt = traces::format("burstgpt").unwrap();
    let label = path.display().to_string();

    reset_peak();
    let t = Instant::now();
    let (mut n, mut failed) = (0u64, 0u64);
    for row in traces::open(fmt, &path, &label, traces::Order::default()).unwrap() {
        let row = row.unwrap();
        n += 1;
        failed += u64::from(row.source_failed);
    }
    let s = t.elapsed().as_secs_f64();
    assert_eq!(n, rows);
    report("stream rows", rows, s, failed);

    reset_peak();
    let t = Instant::now();
    let stats = inspect::inspect(fmt, &path, &label, traces::Order::default()).unwrap();
    assert_eq!(stats.requests, rows);
    report("trace inspect", rows, t.elapsed().as_secs_f64(), stats.source_failed);

    reset_peak();
    let t = Instant::now();
    let sample = oae_workloads::fit::read_trace(fmt, &path, &label, traces::Order::default(), 0).unwrap();
    let fit = oae_workloads::fit::fit(sample.requests, &sample.gaps).unwrap();
    report("trace fit", rows, t.elapsed().as_secs_f64(), 0);
    println!("  (fit: best {} of {} models)", fit.best().name, fit.models.len());
}

fn report(what: &str, rows: u64, s: f64, failed: u64) {
    let rss = peak_rss_mb();
    println!(
        "{what:<14} {:.2} s ({:.2} M rows/s), peak RSS {} MB{}",
        s,
        rows as f64 / s / 1e6,
        rss.map(|r| format!("{r:.0}")).unwrap_or_else(|| "unavailable".into()),
        if failed > 0 {
            format!(", {failed} source failures kept")
        } else {
            String::new()
        }
    );
}
