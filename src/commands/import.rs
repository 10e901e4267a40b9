//! `oae import`: a peer harness's per-request results as an oae run directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use oae_core::config::PositiveF64;
use oae_core::rundir::Slo;
use oae_harness::import::{IMPORTED_ID, ImportInput, ImportOptions, import as run_import};
use oae_methods::openai::SERVERS;
use oae_reports::flow;

use crate::cli::ImportArgs;
use crate::render;

pub fn import(a: ImportArgs) -> anyhow::Result<ExitCode> {
    if !(a.confidence > 0.5 && a.confidence < 1.0) {
        bail!(
            "--confidence must be between 0.5 and 1 (e.g. 0.95), got {}",
            a.confidence
        );
    }
    let inputs: Vec<ImportInput> = a.inputs.iter().map(|s| input(s, a.format.as_deref())).collect();
    let labels: Vec<String> = inputs.iter().map(ImportInput::label).collect::<Result<_, _>>()?;
    let composed = server_manifests(&a.servers, &labels)?;
    let methods: Vec<(String, String)> = labels.iter().map(|l| (l.clone(), IMPORTED_ID.to_string())).collect();
    let mut scoring = flow::scoring_for_run(None, None, &methods, &super::score::shipped_manifests(), &composed)?;
    if let Some(b) = &a.baseline {
        if !labels.contains(b) {
            bail!(
                "--baseline {b}: no input is labelled `{b}`; labels: {}",
                labels.join(", ")
            );
        }
        scoring.baseline = Some(b.clone());
    }
    let timeline = a
        .timeline
        .as_deref()
        .map(oae_harness::metered::read)
        .transpose()
        .context("--timeline")?;
    let opts = ImportOptions {
        confidence: a.confidence,
        slo: Slo {
            ttft_ms: a.slo_ttft_ms.map(PositiveF64),
            tpot_ms: a.slo_tpot_ms.map(PositiveF64),
            e2e_ms: a.slo_e2e_ms.map(PositiveF64),
            quality: None,
        },
        scoring,
        host: a.host_here.then(oae_harness::host::facts),
        peer_version: a.peer_version.clone(),
        command: std::env::args().collect(),
        git_sha: Some(env!("OAE_GIT_SHA").to_string()).filter(|s| !s.is_empty()),
        timeline,
    };
    let metered = opts.timeline.is_some();
    let got = run_import(&inputs, &a.out, &opts).context("oae import")?;
    print!(
        "{}",
        render::cells(
            &got.summaries,
            "none: the peer measured no energy (oae meter, then --timeline)"
        )
    );
    for (tool, version, label) in &got.sources {
        println!(
            "  {label}: {tool} {}",
            version
                .as_deref()
                .unwrap_or("(version not recorded: pass --peer-version)")
        );
    }
    println!(
        "{} records imported; {}; run directory: {}",
        got.records,
        if metered {
            "energy from the metered timeline"
        } else {
            "no energy (the peers measured none — run.json says so)"
        },
        got.dir.display()
    );
    println!("next: oae score {0} · oae report {0}", got.dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `LABEL=FILE` or `FILE`.
fn input(arg: &str, format: Option<&str>) -> ImportInput {
    let (label, path) = match arg.split_once('=') {
        Some((l, p)) if !l.is_empty() && !l.contains(['/', '\\']) && !p.is_empty() => (Some(l.to_string()), p),
        _ => (None, arg),
    };
    ImportInput {
        path: PathBuf::from(path),
        label,
        format: format.map(str::to_string),
    }
}

/// `--server NAME` (every label) or `--server LABEL=NAME`: each label's shipped template.
fn server_manifests(args: &[String], labels: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let names = || SERVERS.iter().map(|s| s.0).collect::<Vec<_>>().join(", ");
    let mut out = BTreeMap::new();
    for arg in args {
        let (who, name) = match arg.split_once('=') {
            Some((l, n)) => (Some(l), n),
            None => (None, arg.as_str()),
        };
        let text = SERVERS
            .iter()
            .find(|s| s.0 == name)
            .map(|s| s.1)
            .with_context(|| format!("--server {arg}: unknown serving stack `{name}`; known: {}", names()))?;
        match who {
            Some(l) if !labels.iter().any(|x| x == l) => {
                bail!(
                    "--server {arg}: no input is labelled `{l}`; labels: {}",
                    labels.join(", ")
                )
            }
            Some(l) => {
                out.insert(l.to_string(), text.to_string());
            }
            None => {
                for l in labels {
                    out.entry(l.clone()).or_insert_with(|| text.to_string());
                }
            }
        }
    }
    Ok(out)
}
