//! `oae doctor`: what this machine offers, and why a source is unavailable.

use std::process::ExitCode;

use oae_harness::host;

pub fn doctor() -> anyhow::Result<ExitCode> {
    let f = host::facts();
    println!("oae {} — what this machine offers", env!("CARGO_PKG_VERSION"));
    let cores = f
        .physical_cores
        .map(|p| format!(", {p} physical cores"))
        .unwrap_or_default();
    println!(
        "  cpu       {} ({} logical CPUs{cores}, {})",
        f.cpu_model, f.logical_cpus, f.arch
    );
    println!("  memory    {:.1} GiB", f.memory_bytes as f64 / (1u64 << 30) as f64);
    println!(
        "  os        {} (kernel {})",
        f.os.as_deref().unwrap_or("unknown"),
        f.kernel.as_deref().unwrap_or("unknown")
    );
    let config = oae_harness::meters::MeterConfig::default();
    println!("  energy sources:");
    for s in oae_harness::meters::check_all(&config) {
        let state = if s.available { "available" } else { "unavailable" };
        println!("    {:<13} {state}: {}", s.source, s.detail);
        for item in &s.items {
            println!("                  {item}");
        }
    }
    println!("  meters oae will use:");
    let opened = oae_harness::meters::open_all(&config);
    for m in &opened.meters {
        println!(
            "    {} (domain {}, {})",
            m.name(),
            m.domain(),
            format!("{:?}", m.kind()).to_lowercase()
        );
        if let serde_json::Value::Object(fields) = m.provenance() {
            for (k, v) in fields {
                let v = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                println!("        {k:<20} {v}");
            }
        }
    }
    for (name, reason) in &opened.unavailable {
        println!("    {name}: unavailable: {reason}");
    }
    for (i, line) in oae_methods::model::cuda_info::report().iter().enumerate() {
        println!("  {}{line}", if i == 0 { "devices   " } else { "            " });
    }
    let root = oae_methods::model::catalog::cache_dir();
    println!("  models    cache {}", root.display());
    for e in oae_methods::model::catalog::CATALOG {
        let state = if e.present(&root) {
            format!("found: {}", e.model_path(&root).display())
        } else {
            format!("absent (oae models fetch {})", e.name)
        };
        println!("    {:<24} {state}", e.name);
    }
    Ok(ExitCode::SUCCESS)
}
