//! What `oae doctor` says about CUDA: whether this build has it, whether a device opens, and
//! which CUDA libraries the process loaded from where.
//!
//! candle 0.11 links cudarc with `dynamic-linking` (its `dynamic-loading` cannot be chosen
//! beside it: cudarc refuses both), so a `--features cuda` binary needs `libcuda.so.1` (the
//! driver), `libcublas.so.13` + `libcublasLt.so.13`, `libcurand.so.10` and `libcudart.so.13`
//! on the loader's path even to start — also for `oae doctor` and CPU runs. Where they are
//! missing the loader stops the binary before `main`; the CPU build (`cargo build --release`)
//! is the binary for machines without them.

/// The CUDA libraries this process has mapped, as (name, path).
pub fn loaded_libraries() -> Vec<(String, String)> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for path in maps.lines().filter_map(|l| l.split_whitespace().nth(5)) {
        let name = path.rsplit('/').next().unwrap_or(path);
        let cuda = [
            "libcuda.so",
            "libcublas",
            "libcurand",
            "libcudart",
            "libnvrtc",
            "libnvidia-ml",
        ]
        .iter()
        .any(|p| name.starts_with(p));
        if cuda && !out.iter().any(|(_, p)| p == path) {
            out.push((name.to_string(), path.to_string()));
        }
    }
    out
}

/// An error's first line (candle appends a backtrace when RUST_BACKTRACE is set).
pub fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or("").trim().to_string()
}

/// Lines for `oae doctor`.
pub fn report() -> Vec<String> {
    let mut lines = Vec::new();
    if !cfg!(feature = "cuda") {
        lines.push(
            "cpu only: CUDA support is not compiled into this build (`--features cuda` adds it; scripts/cuda-toolkit.sh installs the toolkit)".into(),
        );
        return lines;
    }
    lines.push(format!(
        "cpu, cuda:N: built with --features cuda, kernels as PTX for compute_{} (JIT-compiled by the driver at first use on that architecture and newer)",
        option_env!("CUDA_COMPUTE_CAP").unwrap_or("?")
    ));
    #[cfg(feature = "cuda")]
    match candle_core::Device::new_cuda(0) {
        Ok(_) => lines.push("cuda:0 opens".into()),
        Err(e) => lines.push(format!("cuda:0 does not open: {}", first_line(&e))),
    }
    for (name, path) in loaded_libraries() {
        lines.push(format!("{name:<22} {path}"));
    }
    lines
}
