#!/usr/bin/env bash
# Decode speed on a GPU, the fused CUDA decode step against candle's op-by-op path, with one
# binary (README, "GPU"):
#
#   bench/gpu-tpot.sh path/to/oae OUT_DIR [RUNS]
#
# Runs bench/gpu/tpot.toml (a synthetic 1024 x 12 Llama, f32 and bf16 on cuda:0, 24 greedy
# 64-token answers each) RUNS times (default 2) with each path, alternating
# OAE_CUDA_FUSED=0 (op by op) and the default (fused), and writes every run's TPOT
# p50 [95% CI] (n) per method to OUT_DIR/tpot.md and the run directories under OUT_DIR/runs.
# The JIT cache is shared by the runs: the first one pays the kernels' compilation in setup.
set -u
OAE="$(realpath "${1:?usage: bench/gpu-tpot.sh path/to/oae OUT_DIR [RUNS]}")"
OUT="$(mkdir -p "${2:?usage: bench/gpu-tpot.sh path/to/oae OUT_DIR [RUNS]}" && realpath "$2")"
RUNS="${3:-2}"
HERE="$(cd "$(dirname "$0")" && pwd)"
for i in $(seq 1 "$RUNS"); do
  for path in op-by-op fused; do
    fused=1; [ "$path" = op-by-op ] && fused=0
    echo "=== $(date -u +%H:%M:%S) run $i, $path"
    OAE_CUDA_FUSED=$fused timeout 240 "$OAE" run "$HERE/gpu/tpot.toml" --out "$OUT/runs/$path-$i" --quiet --no-report
    echo "rc=$?"
  done
done
python3 - "$OUT" <<'PY' | tee "$OUT/tpot.md"
import json, os, sys
out = sys.argv[1]
print("| run | path | method | TPOT p50 ms [95% CI] (n) | TTFT p50 ms | ok / measured |")
print("|---|---|---|---|---|---|")
for name in sorted(os.listdir(os.path.join(out, "runs"))):
    path = os.path.join(out, "runs", name, "summary.json")
    if not os.path.exists(path):
        print(f"| {name} | — | no summary.json (the run failed: see its log) | | | |")
        continue
    for c in json.load(open(path))["cells"]:
        t = (c.get("latency") or {}).get("tpot_ms") or {}
        p = t.get("p50") or {}
        ttft = (((c.get("latency") or {}).get("ttft_ms") or {}).get("p50") or {}).get("value")
        fmt = lambda v: "—" if v is None else f"{v:.3f}"
        kind, run = name.rsplit("-", 1)
        print(f"| {run} | {kind} | {c['method']} | {fmt(p.get('value'))} [{fmt(p.get('ci_lo'))}, {fmt(p.get('ci_hi'))}] ({t.get('n')}) "
              f"| {fmt(ttft)} | {c.get('ok')} / {c.get('measured')} |")
PY
