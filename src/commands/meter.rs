//! `oae meter`: the machine's energy around a command, for `oae import --timeline`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use oae_harness::metered::{MeterOptions, record};
use oae_harness::meters::MeterConfig;

use crate::cli::MeterArgs;

pub fn meter(a: MeterArgs) -> anyhow::Result<ExitCode> {
    if !(a.idle_s.is_finite() && a.idle_s >= 0.0) {
        bail!("--idle-s must be 0 or more seconds, got {}", a.idle_s);
    }
    if !(a.interval_ms.is_finite() && (1.0..=60_000.0).contains(&a.interval_ms)) {
        bail!("--interval-ms must be between 1 and 60000, got {}", a.interval_ms);
    }
    if let Some(w) = a.cpu_tdp_w.filter(|w| !(w.is_finite() && *w > 0.0)) {
        bail!("--cpu-tdp-w must be a positive number of watts, got {w}");
    }
    let stop = crate::signals::install("the command gets the signal too; the timeline so far is written")?;
    let opts = MeterOptions {
        idle: Duration::from_secs_f64(a.idle_s),
        interval: Duration::from_secs_f64(a.interval_ms / 1e3),
        config: MeterConfig {
            cpu_tdp_w: a.cpu_tdp_w,
            replay_timeline: None,
        },
    };
    let m = record(&a.command, &a.out, &opts, &stop.flag, &mut |msg| {
        eprintln!("oae meter: {msg}")
    })?;
    let (t0, t1) = m.info.command_window_s;
    println!("command ran {:.1} s ({}):", t1 - t0, m.info.command.join(" "));
    for (domain, j) in m.command_energy() {
        match j {
            Some(j) => println!("  {domain:<8} {j:.1} J ({:.1} W mean)", j / (t1 - t0).max(1e-9)),
            None => println!("  {domain:<8} — (no meter covered the whole command)"),
        }
    }
    for meter in &m.info.meters {
        println!(
            "  meter {} on {} ({}{})",
            meter.name,
            meter.domain,
            meter.kind.as_str(),
            if meter.primary { ", primary" } else { "" }
        );
    }
    println!("timeline: {} (oae import PEER_FILE --timeline {0})", m.dir.display());
    Ok(match m.info.exit_code {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => {
            eprintln!("the command exited with {c}");
            ExitCode::from(u8::try_from(c).unwrap_or(1))
        }
        None => {
            eprintln!("the command ended without an exit code (a signal)");
            ExitCode::from(1)
        }
    })
}
