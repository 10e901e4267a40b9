#!/usr/bin/env bash
# SmolLM2 decode/prefill: oae vs PyTorch + transformers and llama.cpp — a standing benchmark.
#
#   bench/peer-smollm2.sh [--threads 1,2] [--runs 3] [--reps 5] [--skip torch,llama.cpp]
#
# Each run measures every runtime at every thread count in turn (oae with the file's blocks and
# with f32 weights, PyTorch, llama.cpp), so the machine's drift falls on all of them; the
# summary gives each figure and each ratio (like with like: oae as-file ÷ llama.cpp, oae f32 ÷
# PyTorch) as the median and range over the runs, with this machine's bandwidths, each
# runtime's roofline and oae's resident memory next to the file's size.
#
# Peers live in private virtual environments, never project dependencies:
#   $OAE_PEER_VENV (default ~/.cache/oae/peer-venv): torch, transformers, accelerate, gguf;
#   ~/.cache/oae/peer-llama-0.3.36-<isa>: llama-cpp-python 0.3.36 built from source (several
#   minutes on 2 cores) with explicit ISA options from this CPU's flags — never GGML_NATIVE: on
#   a VM whose CPU advertises AMX (Sapphire Rapids class) without enabling tile state,
#   -march=native code dies with SIGILL on its first tileloadd. AMX stays off; the options are
#   printed, and the build is per option set, so another CPU gets its own.
# Needs the model in oae's cache (`oae models fetch smollm2-135m-instruct`).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=1,2
RUNS=3
REPS=5
SKIP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --skip) SKIP="$2"; shift 2 ;;
    *) echo "unknown option $1 (see the header)" >&2; exit 2 ;;
  esac
done
skip() { [[ ",$SKIP," == *",$1,"* ]]; }

# llama.cpp's ISA options, from what this CPU reports.
isa=(-DGGML_NATIVE=OFF)
if [ "$(uname -m)" = x86_64 ]; then
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  opt() { if [[ "$flags" == *" $2 "* ]]; then isa+=("-D$1=ON"); else isa+=("-D$1=OFF"); fi; }
  opt GGML_SSE42 sse4_2; opt GGML_AVX avx; opt GGML_AVX2 avx2; opt GGML_FMA fma; opt GGML_F16C f16c
  opt GGML_BMI2 bmi2; opt GGML_AVX_VNNI avx_vnni; opt GGML_AVX512 avx512f; opt GGML_AVX512_VBMI avx512vbmi
  opt GGML_AVX512_VNNI avx512_vnni; opt GGML_AVX512_BF16 avx512_bf16
  isa+=(-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
fi
tag="$(echo "${isa[*]}" | sha256sum | cut -c1-12)"

VENV="${OAE_PEER_VENV:-$HOME/.cache/oae/peer-venv}"
LLAMA_VENV="$HOME/.cache/oae/peer-llama-0.3.36-$tag"
if ! skip torch; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -c "import torch, transformers, gguf, accelerate" 2>/dev/null ||
    "$VENV/bin/pip" install -q torch transformers accelerate gguf numpy
fi
if ! skip llama.cpp && ! "$LLAMA_VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "building llama-cpp-python 0.3.36 with ${isa[*]} (several minutes)" >&2
  rm -rf "$LLAMA_VENV"
  python3 -m venv "$LLAMA_VENV"
  CMAKE_ARGS="${isa[*]} -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$LLAMA_VENV/bin/pip" install -q --no-cache-dir \
    "llama-cpp-python==0.3.36" numpy >&2
fi
OAE="${OAE:-target/release/oae}"
[ -x "$OAE" ] || cargo build --release -q
GGUF="$("$OAE" models list | awk '$1=="smollm2-135m-instruct"{print $2}')"
if [ "$GGUF" != "cached" ]; then
  echo "SmolLM2 is not in the model cache: run 'oae models fetch smollm2-135m-instruct'" >&2
  exit 2
fi
ROOT="${OAE_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oae/models}"
GGUF="$ROOT/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
common=(bench/peer_smollm2.py --gguf "$GGUF" --oae "$OAE" --reps "$REPS")
for run in $(seq "$RUNS"); do
  for t in ${THREADS//,/ }; do
    python3 "${common[@]}" --only oae --weights as-file --threads "$t" --run "$run" >> "$out"
    python3 "${common[@]}" --only oae --weights f32 --threads "$t" --run "$run" >> "$out"
    skip torch || "$VENV/bin/python" "${common[@]}" --only torch --threads "$t" --run "$run" >> "$out"
    skip llama.cpp || "$LLAMA_VENV/bin/python" "${common[@]}" --only llama.cpp --threads "$t" --run "$run" >> "$out"
    echo "run $run, $t thread(s) done ($(date -u +%H:%M:%S))" >&2
  done
done
python3 bench/peer_smollm2.py --summarize "$out" --reps "$REPS" --isa "${isa[*]}"
