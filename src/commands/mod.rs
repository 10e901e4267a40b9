//! One module per subcommand.

mod cached;
mod datasets;
mod doctor;
mod fake_server;
mod import;
mod leaderboard;
mod list;
mod merge;
mod meter;
mod models;
mod plan;
mod resume;
mod run;
mod score;
mod suite;
mod trace;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::List { what } => list::list(what),
        Command::Doctor => doctor::doctor(),
        Command::Plan(args) => plan::plan(args),
        Command::Merge(args) => merge::merge(args),
        Command::Leaderboard(args) => leaderboard::leaderboard(args),
        Command::Suite(cmd) => suite::suite(cmd),
        Command::Import(args) => import::import(args),
        Command::Meter(args) => meter::meter(args),
        Command::Trace(cmd) => trace::trace(cmd),
        Command::Models(cmd) => models::models(cmd),
        Command::Datasets(cmd) => datasets::datasets(cmd),
        Command::Score(args) => score::score(args),
        Command::Report(args) => score::report(args),
        Command::Gate(args) => score::gate(args),
        Command::FakeServer(args) => fake_server::fake_server(args),
    }
}
