//! `oae list methods|meters|workloads|scorers`.

use std::process::ExitCode;

use crate::cli::ListWhat;

pub fn list(what: ListWhat) -> anyhow::Result<ExitCode> {
    match what {
        ListWhat::Methods => {
            for spec in oae_methods::registry() {
                println!("{:<10} {}", spec.id(), spec.about());
                for k in spec.keys() {
                    println!("    {:<22} default {:<26} {}", k.name, k.default, k.help);
                }
            }
        }
        ListWhat::Meters => {
            for spec in oae_harness::meters::registry() {
                let here = match (spec.open)(&oae_harness::meters::MeterConfig::default()) {
                    Ok(m) => format!(
                        "available here: {}",
                        m.iter()
                            .map(|m| format!("{} ({:?})", m.domain(), m.kind()).to_lowercase())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Err(reason) => format!("unavailable here: {reason}"),
                };
                println!("{:<10} {}\n    {here}", spec.name, spec.about);
            }
            println!(
                "{:<10} {}\n    used instead of all of the above when a suite sets [energy] replay_timeline",
                "replay",
                oae_harness::meters::replay::ABOUT
            );
        }
        ListWhat::Workloads => {
            println!("arrival processes for [[workloads]] arrival = {{ process = \"NAME\", ... }}:");
            for spec in oae_workloads::arrivals::registry() {
                println!("  {:<10} {}", spec.name, spec.about);
            }
            println!(
                "lengths: input_tokens / output_tokens = N | {{ dist = \"uniform\", min, max }} | {{ dist = \"lognormal\", median, sigma, min, max }}"
            );
            println!(
                "trace formats for [[workloads]] trace = {{ path, format = \"NAME\", start_s, end_s, rate_qps, time_scale, max_input_tokens, max_output_tokens }}:"
            );
            for f in oae_workloads::traces::registry() {
                println!("  {:<10} {}", f.name, f.about);
            }
            println!(
                "tasks for [[workloads]] task = {{ path, subset, groups, limit, seed, template, scorers, max_new_tokens, shuffle, noise = {{ typos, case, whitespace, distractor }} }}; templates: {}",
                oae_quality::template::NAMES.join(", ")
            );
        }
        ListWhat::Scorers => {
            println!("answer scorers for task workloads (scorers = [...]) and [slo] quality = {{ scorer, min }}:");
            for s in oae_quality::registry() {
                println!("  {:<10} {}", s.name(), s.about());
            }
            for m in oae_quality::scorers::MODEL_SCORERS {
                println!("  {:<10} {}", m.name, m.about);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
