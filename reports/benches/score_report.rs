//! Score + report throughput and memory on a synthetic run of 1,000,000 request records —
//! 10 methods × 5 workloads × 20,000 requests — and the size of its leaderboard.html.
//!
//! Targets (issue 6): score + report ≤ 10 s and ≤ 2 GB peak RSS; leaderboard.html ≤ 2 MB
//! for 10 methods × 5 workloads. Run: `cargo bench -p oae-reports --bench score_report`
//! (`-- --records N` for another size). With `OAE_BENCH_RUN_DIR=DIR` the synthetic run is
//! written to DIR and kept — or, when DIR already holds one, scored as it is (to time two
//! builds on the very same records).

use std::time::Instant;

use oae_scorecards::RunData;
use oae_scorecards::score::{Options, score};
use oae_scorecards::synthetic::{SynthCell, SynthRun, manifest, scoring};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: usize = args
        .iter()
        .position(|a| a == "--records")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (methods, workloads) = (10usize, 5usize);
    let per_cell = records / (methods * workloads);
    let mut cells = Vec::new();
    for w in 0..workloads {
        for m in 0..methods {
            let mut c = SynthCell::new(
                &format!("method-{m}"),
                &format!("m{m}"),
                &format!("workload-{w}"),
                per_cell,
            );
            c.service_s = 0.05 + 0.01 * m as f64;
            c.dyn_j = 3.0 + m as f64;
            c.spread = 0.6;
            c.fail_share = 0.01 * (m % 3) as f64;
            cells.push(c);
        }
    }
    let mut run = SynthRun::new(cells, 1.0);
    for (i, w) in run.workloads.iter_mut().enumerate() {
        w.rate_qps = 0.1 * 10f64.powi(i as i32 - 1);
    }
    run.slo_e2e_ms = Some(150.0);
    let ids: Vec<String> = (0..methods).map(|m| format!("m{m}")).collect();
    let manifests: Vec<(&str, String)> = (0..methods)
        .map(|m| {
            let level = ["software-engineer", "ml-engineer", "ml-specialist"][m % 3];
            (
                ids[m].as_str(),
                manifest(&ids[m], level, &format!("[{}, {}]", m, 2 * m + 1)),
            )
        })
        .collect();
    run.scoring = Some(scoring(Some("method-0"), &manifests, &[]));
    let tmp = tempfile::tempdir().expect("temp dir");
    let kept = std::env::var_os("OAE_BENCH_RUN_DIR").map(std::path::PathBuf::from);
    let dir = kept.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let t = Instant::now();
    if kept.is_some() && dir.join("run.json").is_file() {
        println!("scoring the run already in {}", dir.display());
    } else {
        run.write(&dir).expect("writing the synthetic run");
    }
    let bytes = std::fs::metadata(dir.join("requests.jsonl"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "synthetic run: {} records ({methods} methods × {workloads} workloads), requests.jsonl {:.0} MiB, written in {:.1} s",
        per_cell * methods * workloads,
        bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_mib();

    let t = Instant::now();
    let data = RunData::load(&dir, false).expect("loading");
    let t_load = t.elapsed().as_secs_f64();
    let cards = score(&data, &Options::default()).expect("scoring");
    let t_score = t.elapsed().as_secs_f64() - t_load;
    let out = tmp.path().join("reports");
    let files = oae_reports::write_all(&cards, &out).expect("reports");
    let total = t.elapsed().as_secs_f64();
    let t_report = total - t_load - t_score;
    let html = std::fs::metadata(out.join("leaderboard.html"))
        .map(|m| m.len())
        .unwrap_or(0);
    let peak = peak_rss_mib();
    println!(
        "score + report: {total:.2} s (read {t_load:.2} s, score {t_score:.2} s with {} bootstrap draws/cell, reports {t_report:.2} s) — target ≤ 10 s: {}",
        cards.bootstrap.draws,
        if total <= 10.0 { "met" } else { "MISSED" }
    );
    match (peak, rss_before) {
        (Some(p), Some(b)) => println!(
            "peak RSS {p:.0} MiB (after writing the synthetic run: {b:.0} MiB) — target ≤ 2048 MiB: {}",
            if p <= 2048.0 { "met" } else { "MISSED" }
        ),
        _ => println!("peak RSS: not available on this OS (/proc/self/status)"),
    }
    println!(
        "leaderboard.html {:.0} KiB for {methods} methods × {workloads} workloads — target ≤ 2048 KiB: {}",
        html as f64 / 1024.0,
        if html <= 2 * 1024 * 1024 { "met" } else { "MISSED" }
    );
    for f in files {
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        println!("  {:<22} {:>9} bytes", f.file_name().unwrap().to_string_lossy(), size);
    }
}
