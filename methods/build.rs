//! With the `cuda` feature, compiles the decode kernels (`src/model/cuda/decode.cu`) to PTX
//! with the toolkit candle's kernels are built with (`NVCC`, else `nvcc` on the path; the
//! architecture from `CUDA_COMPUTE_CAP`, default 80, as `scripts/cuda-toolkit.sh` sets it).
//! Without the feature it does nothing.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/model/cuda/decode.cu");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("decode.ptx");
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    let cap: String = cap.chars().filter(char::is_ascii_digit).collect();
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17", &format!("-arch=compute_{cap}")])
        .arg("src/model/cuda/decode.cu")
        .arg("-o")
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{nvcc} failed ({s}) compiling src/model/cuda/decode.cu for compute_{cap}"),
        Err(e) => panic!(
            "the cuda feature needs the CUDA toolkit's nvcc ({nvcc}: {e}); \
             run `eval \"$(scripts/cuda-toolkit.sh)\"` first (README, \"GPU\")"
        ),
    }
}
