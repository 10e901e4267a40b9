#!/usr/bin/env bash
# Every figure of docs/energy-validation.md's GPU table in one run of a few minutes:
#
#   bench/gpu-validate.sh path/to/oae OUT_DIR
#
# with an oae built `--features cuda` (README, "GPU"). Writes OUT_DIR/gpu-validation.md (the
# table) and .json, the log, and the run directories it measured:
#   doctor        NVML, driver, GPU, power limit, persistence, MIG; the CUDA libraries loaded
#   runs/nvml     meters every 5 ms under a bursty external load (bench/gpu_load.py, when torch
#                 and pynvml are installed): counter update period, counter vs integrated
#                 power, read errors by kind, oae's GPU energy vs pynvml's
#   runs/gpu-cold dense 1024x12 in f32/bf16/f16 on cuda:0 with an empty JIT cache: cold start,
#                 setup energy, loaded-idle power and drift, TPOT, per-request energy by domain
#   runs/gpu-warm the same with the JIT cache the first run filled (5 requests per method)
#   runs/gpu-methods dense, moe, speculative, beam and trie-beam on cuda:0 in bf16 (smoke)
#   runs/cpu      the same model in f32 on the CPU: TPOT reference and the answers the GPU
#                 dtypes are compared with
#   peer          transformers generate() on the same shape, when transformers is installed
#
# OAE_GPU_PARTS names the parts to run (default: all of nvml cold warm methods cpu peer);
# the report marks the others missing.
set -u
PARTS=" ${OAE_GPU_PARTS:-nvml cold warm methods cpu peer} "
part() { case "$PARTS" in *" $1 "*) return 0 ;; *) echo "(part $1 not asked for)"; return 1 ;; esac; }
OAE="$(realpath "${1:?usage: bench/gpu-validate.sh path/to/oae OUT_DIR}")"
OUT="$(mkdir -p "${2:?usage: bench/gpu-validate.sh path/to/oae OUT_DIR}" && realpath "$2")"
HERE="$(cd "$(dirname "$0")" && pwd)"
JIT="$(mktemp -d)"   # a JIT cache of this run's own, empty at first: the cold start is cold
log() { echo "=== $(date -u +%H:%M:%S) $*"; }
{
  log "gpu"
  nvidia-smi --query-gpu=name,driver_version,power.limit,persistence_mode,mig.mode.current,compute_cap --format=csv
  log "doctor"
  "$OAE" doctor
  if part nvml; then
  log "nvml: meters every 5 ms under a bursty external load"
  load=()
  if python3 -c "import torch, pynvml" 2>/dev/null; then load=(python3 "$HERE/gpu_load.py"); else echo "no torch/pynvml: no external load"; fi
  timeout 150 "${load[@]}" "$OAE" run "$HERE/gpu/nvml.toml" --out "$OUT/runs/nvml" --quiet --no-report > "$OUT/nvml.log" 2>&1
  echo "rc=$?"; tail -3 "$OUT/nvml.log"
  fi
  if part cold; then
  log "dense on cuda:0, cold JIT cache"
  CUDA_CACHE_PATH="$JIT" timeout 320 "$OAE" run "$HERE/gpu/dense.toml" --out "$OUT/runs/gpu-cold" --quiet
  echo "rc=$?"
  fi
  if part warm; then
  log "dense on cuda:0, warm JIT cache"
  CUDA_CACHE_PATH="$JIT" timeout 150 "$OAE" run "$HERE/gpu/dense.toml" --out "$OUT/runs/gpu-warm" --requests 5 --idle-baseline-s 0 --quiet --no-report
  echo "rc=$?"
  fi
  if part methods; then
  log "every model-driving method on cuda:0 (bf16, embedded model)"
  CUDA_CACHE_PATH="$JIT" timeout 120 "$OAE" run "$HERE/gpu/methods.toml" --out "$OUT/runs/gpu-methods" --quiet --no-report
  echo "rc=$?"
  fi
  if part cpu; then
  log "dense on the CPU"
  timeout 150 "$OAE" run "$HERE/gpu/dense-cpu.toml" --out "$OUT/runs/cpu" --quiet --no-report
  echo "rc=$?"
  fi
  if part peer && [ "${OAE_GPU_PEER:-1}" = 1 ] && python3 -c "import transformers" 2>/dev/null; then
    log "peer: transformers generate() on the same shape"
    timeout 150 python3 "$HERE/gpu_peer.py" > "$OUT/peer.log" 2>&1
    echo "rc=$?"; cat "$OUT/peer.log" | grep PEER
  fi
  log "report"
  python3 "$HERE/gpu_report.py" "$OUT"
} 2>&1 | tee "$OUT/validate.log"
rm -rf "$JIT"
