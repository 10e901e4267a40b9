//! `oae trace inspect | fit | gen`.

use std::process::ExitCode;

use anyhow::anyhow;
use std::io::Write;
use std::path::Path;

use oae_core::rng;
use oae_workloads::Limit;
use oae_workloads::fit::{self, GenModel};
use oae_workloads::traces::{self, Order, TraceFormat, inspect};

use crate::cli::{OrderArgs, TraceCommand, TraceFitArgs, TraceGenArgs};
use crate::render::num;

fn resolve(file: &Path, format: Option<&str>) -> anyhow::Result<&'static TraceFormat> {
    match format {
        Some(name) => traces::format(name).map_err(|e| anyhow!("--format: {e}")),
        None => traces::detect(file).map_err(|e| anyhow!(e)),
    }
}

fn order(args: OrderArgs) -> anyhow::Result<Order> {
    let t = args.reorder_tolerance_s;
    if !(t.is_finite() && (0.0..=60.0).contains(&t)) {
        anyhow::bail!("--reorder-tolerance-s {t}: give seconds from 0 to 60");
    }
    Ok(Order { tolerance_s: t })
}

pub fn trace(cmd: TraceCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TraceCommand::Fit(args) => fit(args),
        TraceCommand::Gen(args) => generate(args),
        TraceCommand::Inspect {
            file,
            format,
            json,
            order: o,
        } => {
            let fmt = resolve(&file, format.as_deref())?;
            let label = file.display().to_string();
            let s = inspect::inspect(fmt, &file, &label, order(o)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{label} ({} format)", s.format);
            println!(
                "  requests        {} ({} failed in the source)",
                s.requests, s.source_failed
            );
            if s.reordered > 0 {
                println!(
                    "  out of order    {} rows stepped back within the tolerance (kept in file order)",
                    s.reordered
                );
            }
            println!(
                "  span            {} s, mean rate {} req/s",
                num(s.span_s),
                num(s.mean_rate_qps)
            );
            if let (Some(g), Some(cv)) = (&s.gap_s, s.gap_cv) {
                println!(
                    "  gaps            mean {} s, p50 {} s, p99 {} s, max {} s; CV {} ({})",
                    num(g.mean),
                    num(g.p50),
                    num(g.p99),
                    num(g.max),
                    num(cv),
                    if cv > 1.2 {
                        "bursty"
                    } else if cv < 0.8 {
                        "regular"
                    } else {
                        "Poisson-like"
                    }
                );
            }
            let [a, b, c, d] = s.idle_gaps;
            println!(
                "  idle gaps       <1s {a} · 1-10s {b} · 10-60s {c} · >60s {d}; {:.1}% of the span in gaps > 60 s",
                s.idle_fraction_over_60s * 100.0
            );
            println!(
                "  duty cycle      {:.1}% of 1 s bins, {:.1}% of 60 s bins have a request",
                s.duty_cycle_1s * 100.0,
                s.duty_cycle_60s * 100.0
            );
            for (name, d) in [("input tokens", &s.input_tokens), ("output tokens", &s.output_tokens)] {
                println!(
                    "  {name:<15} mean {} · p50 {} · p95 {} · p99 {} · max {}",
                    num(d.mean),
                    num(d.p50),
                    num(d.p95),
                    num(d.p99),
                    num(d.max)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn fit(args: TraceFitArgs) -> anyhow::Result<ExitCode> {
    let fmt = resolve(&args.file, args.format.as_deref())?;
    let label = args.file.display().to_string();
    if !args.json {
        eprintln!("reading {label} ({} format)…", fmt.name);
    }
    let sample = fit::read_trace(fmt, &args.file, &label, order(args.order)?, 0)?;
    let r = fit::fit(sample.requests, &sample.gaps).map_err(|e| anyhow!("{label}: {e}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{label} ({} format): {} requests over {} s, mean rate {} req/s",
        fmt.name,
        r.requests,
        num(r.span_s),
        num(r.mean_rate_qps)
    );
    println!(
        "  gaps: {} ({} zero), mean {} s, CV {}, resolution {} s",
        r.gaps,
        r.zero_gaps,
        num(r.mean_gap_s),
        num(r.gap_cv),
        oae_core::fmt::sig(r.resolution_s, 4)
    );
    println!(
        "\n  {:<17} {:<52} {:>10} {:>8}  KS (5% critical {:.4})",
        "model", "maximum-likelihood parameters", "ΔAIC", "CV", r.ks_critical_5pct
    );
    for m in &r.models {
        let params: Vec<String> = m
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", oae_core::fmt::sig(v.as_f64().unwrap_or(f64::NAN), 4)))
            .collect();
        println!(
            "  {:<17} {:<52} {:>10.1} {:>8}  D={:.4}{}",
            m.name,
            params.join(" "),
            m.delta_aic,
            num(m.cv),
            m.ks_d,
            if m.ks_rejected_5pct { " rejected" } else { "" }
        );
    }
    let best = r.best();
    println!("\n  best by AIC: {}", best.name);
    if let Some(a) = r.models.iter().find_map(|m| m.arrival.as_ref().map(|a| (m.name, a))) {
        println!("  best renewal process a suite can replay ({}): arrival = {}", a.0, a.1);
    }
    if let Some(o) = &r.onoff {
        if o.detected {
            println!(
                "  on/off: yes — {} bursts of {} requests (mean {} s at {} req/s), silences mean {} s (gaps > {} s); on {:.1}% of the time",
                o.bursts,
                num(o.requests_per_burst),
                num(o.mean_burst_s),
                num(o.rate_on_qps),
                num(o.mean_silence_s),
                num(o.threshold_s),
                o.on_fraction * 100.0
            );
            println!("          arrival = {}", o.arrival);
        } else {
            println!(
                "  on/off: no clear structure (fast/slow gap-rate ratio {}, {} gaps above {} s)",
                num(o.rate_ratio),
                o.bursts - 1,
                num(o.threshold_s)
            );
        }
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
    Ok(ExitCode::SUCCESS)
}

fn generate(args: TraceGenArgs) -> anyhow::Result<ExitCode> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        anyhow::bail!("--rate must be a rate > 0 req/s, got {}", args.rate);
    }
    let limit_duration = match args.duration_s {
        Some(d) if !(d.is_finite() && d > 0.0) => anyhow::bail!("--duration-s must be > 0, got {d}"),
        d => d,
    };
    let which = match args.model.as_str() {
        "auto" => GenModel::Auto,
        "onoff" => GenModel::OnOff,
        m if fit::registry().iter().any(|f| f.name == m) => GenModel::Named(m.to_string()),
        m => {
            let names: Vec<_> = fit::registry().iter().map(|f| f.name).collect();
            anyhow::bail!(
                "--model: unknown model `{m}`; one of: auto, onoff, {}",
                names.join(", ")
            )
        }
    };
    let fmt = resolve(&args.like, args.format.as_deref())?;
    let label = args.like.display().to_string();
    eprintln!("reading {label} ({} format)…", fmt.name);
    let sample = fit::read_trace(fmt, &args.like, &label, order(args.order)?, args.seed)?;
    let report = fit::fit(sample.requests, &sample.gaps).map_err(|e| anyhow!("{label}: {e}"))?;
    let limit = match limit_duration {
        Some(d) => Limit::Duration(std::time::Duration::from_secs_f64(d)),
        None => Limit::Count(args.requests.unwrap_or(sample.requests)),
    };
    let mut arrivals = rng::seeded(args.seed, &["trace-gen", "arrivals"]);
    let syn = fit::synthesize(&report, &which, args.rate, limit, &mut arrivals).map_err(|e| anyhow!("{e}"))?;
    let mut shapes = rng::seeded(args.seed, &["trace-gen", "shapes"]);
    let jsonl = args
        .out
        .as_ref()
        .is_some_and(|p| p.extension().is_some_and(|e| e == "jsonl"));
    // Streamed: a long synthetic trace is never held in memory as text.
    let write_rows = |w: &mut dyn Write, shapes: &mut rng::SeededRng| -> std::io::Result<()> {
        if !jsonl {
            writeln!(w, "t_s,input_tokens,output_tokens,failed")?;
        }
        for &t in &syn.offsets {
            let i = ((rng::open01(shapes) * sample.shapes.len() as f64) as usize).min(sample.shapes.len() - 1);
            let (inp, out, failed) = sample.shapes[i];
            if jsonl {
                writeln!(
                    w,
                    "{{\"t_s\": {t:.6}, \"input_tokens\": {inp}, \"output_tokens\": {out}, \"failed\": {failed}}}"
                )?;
            } else {
                writeln!(w, "{t:.6},{inp},{out},{}", u8::from(failed))?;
            }
        }
        w.flush()
    };
    let span = syn.offsets.last().copied().unwrap_or(0.0);
    match &args.out {
        Some(path) => {
            // Written beside the target, then renamed: a reader never sees half a trace, and a
            // failed write leaves nothing behind.
            let mut tmp = path.clone().into_os_string();
            tmp.push(".partial");
            let tmp = std::path::PathBuf::from(tmp);
            let written = std::fs::File::create(&tmp)
                .and_then(|f| write_rows(&mut std::io::BufWriter::new(f), &mut shapes))
                .and_then(|()| std::fs::rename(&tmp, path));
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                anyhow::bail!("{}: cannot write the trace: {e}", path.display());
            }
        }
        None => write_rows(&mut std::io::BufWriter::new(std::io::stdout().lock()), &mut shapes)?,
    }
    // A count of a renewal process over a fixed horizon has relative s.d. ≈ CV / √n: bursty
    // traffic hits its long-run rate only loosely in a short trace.
    let noise = report.gap_cv / (syn.offsets.len().max(1) as f64).sqrt();
    eprintln!(
        "{} requests over {} s ({} req/s; target {}, ±{:.0}% expected from burstiness) from {}; request shapes resampled from {} of {label}'s {} rows{}",
        syn.offsets.len(),
        num(span),
        num(if span > 0.0 {
            syn.offsets.len() as f64 / span
        } else {
            0.0
        }),
        num(args.rate),
        noise * 100.0,
        syn.model,
        sample.shapes.len(),
        sample.requests,
        args.out
            .as_ref()
            .map(|p| format!("; wrote {}", p.display()))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
