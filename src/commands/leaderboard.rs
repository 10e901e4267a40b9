//! `oae leaderboard`: many run directories as one static site.

use std::process::ExitCode;

use oae_reports::flow::ScoringInputs;
use oae_reports::site::{SiteOptions, build};

use crate::cli::LeaderboardArgs;

pub fn leaderboard(a: LeaderboardArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let opts = SiteOptions {
        title: a.title,
        inputs: ScoringInputs {
            site: a.site,
            shipped: super::score::shipped_manifests(),
            ..ScoringInputs::default()
        },
        allow_mixed: a.allow_mixed,
    };
    let built = build(&a.runs, &a.out, &opts)?;
    println!(
        "{} run(s), {} row(s), {} benchmark definition(s) in {:.1} s: {}/index.html (and leaderboard.csv, .parquet, .json; runs/<id>/index.html per run)",
        built.runs,
        built.rows,
        built.definitions,
        started.elapsed().as_secs_f64(),
        built.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
