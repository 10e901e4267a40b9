//! `oae` — the Overhead-Aware Efficiency benchmark harness for LLM inference.
//!
//! Exit codes: 0 ok; 2 usage, input, device or run error (including a run that stopped
//! early); 130 interrupted by Ctrl-C.

mod cli;
mod commands;
mod render;
mod signals;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
