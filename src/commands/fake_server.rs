//! `oae fake-server`: the scripted OpenAI-compatible server (`oae_methods::openai::fake`)
//! in the foreground until interrupted.

use std::process::ExitCode;

use anyhow::Context;
use oae_methods::openai::fake::{FakeServer, Fault, Script};

use crate::cli::FakeServerArgs;

pub fn fake_server(args: FakeServerArgs) -> anyhow::Result<ExitCode> {
    if !(args.ttft_ms >= 0.0 && args.itl_ms >= 0.0 && args.loading_s >= 0.0) {
        anyhow::bail!("--ttft-ms, --itl-ms and --loading-s must be >= 0");
    }
    let faults = args
        .faults
        .iter()
        .map(|f| f.parse::<Fault>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--faults: {e}"))?;
    let server = FakeServer::start(
        &args.listen,
        Script {
            model: args.model.clone(),
            prefix: args.prefix.trim_end_matches('/').to_string(),
            ttft_ms: args.ttft_ms,
            itl_ms: args.itl_ms,
            tokens: args.tokens,
            usage: !args.no_usage,
            faults,
            loading_s: args.loading_s,
        },
    )
    .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!(
        "serving model `{}` at {} (Ctrl-C stops)",
        args.model,
        server.base_url(args.prefix.trim_end_matches('/'))
    );
    loop {
        std::thread::park();
    }
}
