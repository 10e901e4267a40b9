#!/usr/bin/env bash
# Install llama.cpp's OpenAI-compatible server (llama-cpp-python[server], built from source:
# ≈ 11 minutes on 2 cores the first time) into a virtual environment in a cache directory
# outside the clone, and print the Python that runs it:
#
#   py="$(scripts/llama-server.sh)"            # installs once, then only prints
#   "$py" -m llama_cpp.server --model model.gguf --port 8080 --model_alias smollm2
#
# The tests and bench/peer-http.sh use it (OAE_LLAMA_SERVER_PYTHON); a suite launches it with
# `launch = { command = ["<py>", "-m", "llama_cpp.server", …] }`.
#
# Environment:
#   OAE_LLAMA_SERVER_VENV   where to install (default ~/.cache/oae/llama-server-<version>)
set -euo pipefail

VERSION=0.3.36
VENV="${OAE_LLAMA_SERVER_VENV:-$HOME/.cache/oae/llama-server-$VERSION}"
say() { echo "llama-server: $*" >&2; }

if [ ! -f "$VENV/.complete" ]; then
  command -v python3 >/dev/null || { say "python3 with venv and pip is needed"; exit 1; }
  command -v cmake >/dev/null || command -v gcc >/dev/null || { say "a C/C++ compiler is needed to build llama.cpp"; exit 1; }
  say "building llama-cpp-python[server]==$VERSION into $VENV (≈ 11 min on 2 cores, once)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # A CPU build for this machine (llama.cpp's default -march=native, as a site would build
  # it); no BLAS, no GPU backends, no tests or examples. The cache is this machine's.
  CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$VENV/bin/pip" install --quiet --no-cache-dir "llama-cpp-python[server]==$VERSION" >&2
  "$VENV/bin/python" -c "import llama_cpp, llama_cpp.server; print(llama_cpp.__version__)" >&2
  touch "$VENV/.complete"
fi
echo "$VENV/bin/python"
