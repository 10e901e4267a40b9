#!/usr/bin/env bash
# Install the CUDA 13.0.x toolkit oae's `--features cuda` build needs, from PyPI wheels, into a
# cache directory (no system CUDA, no root), and print the environment to build with:
#
#   eval "$(scripts/cuda-toolkit.sh)"          # installs once, then only prints
#   cargo build --release --features cuda
#
# Pinned to CUDA 13.0 because PTX from a newer nvcc does not load on an older driver: build with
# the toolkit of the oldest driver you target (13.0 = driver 580). The wheels ship no libcuda.so
# (it is the driver), so a link-time stub with the driver functions cudarc binds is compiled into
# lib/stubs/: it is on the *link* path only, never on LD_LIBRARY_PATH at run time.
#
# Environment:
#   OAE_CUDA_ROOT          where to install (default ~/.cache/oae/cuda-13.0)
#   CUDA_COMPUTE_CAP       the GPU architecture candle's kernels are compiled for (default 80).
#                          candle 0.11 compiles its kernels to PTX for one architecture per
#                          build, which the driver JIT-compiles at first use (cached in
#                          ~/.nv/ComputeCache) on that architecture and every newer one: 80
#                          runs on A100, A10, L4, L40, H100, H200 and Blackwell; 90 builds
#                          Hopper-only PTX (compute_90a, not forward compatible); 75 adds T4
#                          (its bf16 kernels are then disabled).
set -euo pipefail

ROOT="${OAE_CUDA_ROOT:-$HOME/.cache/oae/cuda-13.0}"
CAP="${CUDA_COMPUTE_CAP:-80}"
WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
  nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.0.2.14
  nvidia-curand==10.4.0.35
)
say() { echo "cuda-toolkit: $*" >&2; }

if [ ! -f "$ROOT/.complete" ]; then
  command -v python3 >/dev/null || { say "python3 with pip is needed to fetch the wheels"; exit 1; }
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  say "downloading ${#WHEELS[@]} wheels from PyPI into $tmp"
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    --python-version 3.11 -d "$tmp/wheels" "${WHEELS[@]}" >&2
  rm -rf "$ROOT.partial"; mkdir -p "$ROOT.partial"
  for w in "$tmp"/wheels/*.whl; do
    python3 -m zipfile -e "$w" "$tmp/unpacked" >&2
  done
  # Every wheel unpacks under nvidia/cu13/ (bin, include, lib, nvvm): together one CUDA root.
  src="$tmp/unpacked/nvidia/cu13"
  [ -d "$src" ] || { say "unexpected wheel layout: no nvidia/cu13 in the wheels"; exit 1; }
  cp -a "$src/." "$ROOT.partial/"
  # zip drops execute bits.
  chmod +x "$ROOT.partial"/bin/* "$ROOT.partial"/nvvm/bin/* 2>/dev/null || true
  # lib64/ with the unversioned names the linker looks for.
  mkdir -p "$ROOT.partial/lib64"
  for so in "$ROOT.partial"/lib/lib*.so.*; do
    base="$(basename "$so")"; plain="${base%%.so.*}.so"
    ln -sf "../lib/$base" "$ROOT.partial/lib64/$base"
    [ -e "$ROOT.partial/lib64/$plain" ] || ln -sf "../lib/$base" "$ROOT.partial/lib64/$plain"
  done
  # Link-time stub for the driver library (soname libcuda.so.1): every symbol cudarc binds,
  # each returning CUDA_ERROR_STUB_LIBRARY (34). Linking only; the real driver answers at run time.
  mkdir -p "$ROOT.partial/lib/stubs"
  syms="$(grep -ho 'cu[A-Z][A-Za-z0-9_]*' "$ROOT.partial/include/cuda.h" | sort -u)"
  {
    for s in $syms; do echo "int $s(void) { return 34; }"; done
  } > "$tmp/stub.c"
  cc -shared -fPIC -w -Wl,-soname,libcuda.so.1 -o "$ROOT.partial/lib/stubs/libcuda.so" "$tmp/stub.c"
  "$ROOT.partial/bin/nvcc" --version >&2
  rm -rf "$ROOT"; mv "$ROOT.partial" "$ROOT"; touch "$ROOT/.complete"
  say "installed in $ROOT"
fi

cat <<ENV
export CUDA_HOME="$ROOT" CUDA_PATH="$ROOT" CUDA_ROOT="$ROOT"
export NVCC="$ROOT/bin/nvcc" CUDA_COMPUTE_CAP="$CAP"
export PATH="$ROOT/bin:\$PATH"
export LIBRARY_PATH="$ROOT/lib64:$ROOT/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
ENV
