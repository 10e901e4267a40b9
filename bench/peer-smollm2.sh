#!/usr/bin/env bash
# SmolLM2 decode/prefill: oae vs PyTorch + transformers and llama.cpp, in one run.
#
#   bench/peer-smollm2.sh [--threads N] [--reps N] [--skip torch|llama.cpp]
#
# Installs the peers into a private virtual environment ($OAE_PEER_VENV, default
# ~/.cache/oae/peer-venv): torch, transformers and gguf from PyPI; llama-cpp-python built
# from source for this CPU (several minutes on 2 cores). Needs the model in oae's cache
# (`oae models fetch smollm2-135m-instruct`). The peers are never project dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${OAE_PEER_VENV:-$HOME/.cache/oae/peer-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c "import torch, transformers, gguf, accelerate" 2>/dev/null ||
  "$VENV/bin/pip" install -q torch transformers accelerate gguf numpy
"$VENV/bin/python" -c "import llama_cpp" 2>/dev/null ||
  CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$VENV/bin/pip" install -q llama-cpp-python
cargo build --release -q
GGUF="$(./target/release/oae models list | awk '$1=="smollm2-135m-instruct"{print $2}')"
if [ "$GGUF" != "cached" ]; then
  echo "SmolLM2 is not in the model cache: run 'oae models fetch smollm2-135m-instruct'" >&2
  exit 2
fi
ROOT="${OAE_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oae/models}"
exec "$VENV/bin/python" bench/peer_smollm2.py --oae ./target/release/oae \
  --gguf "$ROOT/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf" "$@"
