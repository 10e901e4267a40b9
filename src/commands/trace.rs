//! `oae trace inspect`.

use std::process::ExitCode;

use anyhow::anyhow;
use oae_workloads::traces::{self, inspect};

use crate::cli::TraceCommand;
use crate::render::num;

pub fn trace(cmd: TraceCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TraceCommand::Inspect { file, format, json } => {
            let fmt = match format {
                Some(name) => traces::format(&name).map_err(|e| anyhow!("--format: {e}"))?,
                None => inspect::detect(&file).map_err(|e| anyhow!(e))?,
            };
            let label = file.display().to_string();
            let s = inspect::inspect(fmt, &file, &label)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{label} ({} format)", s.format);
            println!(
                "  requests        {} ({} failed in the source)",
                s.requests, s.source_failed
            );
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
