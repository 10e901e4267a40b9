#!/usr/bin/env bash
# `oae leaderboard` at scale: 1,000 run directories (copies of one mock run of 2 methods ×
# 2 workloads × 60 requests, each with its own start time, so 1,000 distinct runs of one
# definition), built into a site twice: the wall time of each build, and whether the two
# sites are byte-identical.
#
#   bench/leaderboard-scale.sh [OAE_BINARY] [WORK_DIR] [RUNS]
set -euo pipefail
oae="${1:-target/release/oae}"
work="${2:-$(mktemp -d)}"
n="${3:-1000}"
mkdir -p "$work"
cat >"$work/suite.toml" <<'TOML'
name = "board-scale"
[run]
seed = 3
requests = 60
warmup_s = 0.0
[energy]
idle_baseline_s = 0.2
[[workloads]]
name = "a"
arrival = { process = "poisson", rate_qps = 300.0 }
input_tokens = 8
output_tokens = 2
[[workloads]]
name = "b"
arrival = { process = "poisson", rate_qps = 100.0 }
input_tokens = 16
output_tokens = 2
[[methods]]
id = "mock"
label = "m1"
prefill_ms = 0.2
[[methods]]
id = "mock"
label = "m2"
prefill_ms = 0.4
TOML
[ -f "$work/seed/run.json" ] || "$oae" run "$work/suite.toml" --quiet --no-report --out "$work/seed" >/dev/null
mkdir -p "$work/runs"
for i in $(seq 1 "$n"); do
  d="$work/runs/$i"
  [ -d "$d" ] && continue
  cp -r "$work/seed" "$d"
  sed -i "s/\"started_utc\": \"[^\"]*\"/\"started_utc\": \"2026-01-01T00:00:00Z+$i\"/" "$d/run.json"
done
rm -rf "$work/site1" "$work/site2"
for s in site1 site2; do
  start=$(date +%s.%N)
  "$oae" leaderboard "$work"/runs/* --out "$work/$s" >/dev/null
  echo "$n runs -> $s: $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
done
if diff -r "$work/site1" "$work/site2" >/dev/null; then echo "the two sites are byte-identical"; else echo "the two sites DIFFER"; fi
du -sh "$work/site1" | cut -f1 | sed 's/^/site size: /'
