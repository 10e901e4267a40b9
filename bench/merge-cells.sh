#!/usr/bin/env bash
# Merge at scale: 64 cells × 10,000 records (a mock suite of 2 methods × 2 workloads × 16
# trials), each cell run with `oae run --cell I`, then `oae merge` of all 64 into the suite's
# scored run directory. Prints the per-cell wall time (start-up included) and the merge's
# wall time and peak memory (GNU time's maximum resident set).
#
#   bench/merge-cells.sh [OAE_BINARY] [WORK_DIR]
set -euo pipefail
oae="${1:-target/release/oae}"
work="${2:-$(mktemp -d)}"
mkdir -p "$work"
cat >"$work/suite.toml" <<'TOML'
name = "merge-scale"
[run]
seed = 1
requests = 10000
trials = 16
warmup_s = 0.0
[energy]
idle_baseline_s = 0.0
[[workloads]]
name = "a"
arrival = { process = "poisson", rate_qps = 4000.0 }
input_tokens = 8
output_tokens = 2
[[workloads]]
name = "b"
arrival = { process = "poisson", rate_qps = 4000.0 }
input_tokens = 16
output_tokens = 2
[[methods]]
id = "mock"
label = "m1"
prefill_ms = 0.01
[[methods]]
id = "mock"
label = "m2"
prefill_ms = 0.02
TOML
n=$("$oae" suite plan "$work/suite.toml" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["cells"]))')
started=$(date +%s.%N)
for i in $(seq 0 $((n - 1))); do
  [ -f "$work/cells/$i/run.json" ] || "$oae" run "$work/suite.toml" --cell "$i" --quiet --no-report --out "$work/cells/$i" >/dev/null
done
cells_s=$(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")
records=$(cat "$work"/cells/*/requests.jsonl | wc -l)
rm -rf "$work/merged"
/usr/bin/time -f '%e s wall, %M KiB peak resident' -o "$work/merge.time" \
  "$oae" merge $(for i in $(seq 0 $((n - 1))); do echo "$work/cells/$i"; done) --out "$work/merged" >/dev/null
echo "$n cells, $records records: cell runs ${cells_s} s in all ($(python3 -c "print(f'{$cells_s / $n:.2f}')") s per cell, replay included)"
echo "merge (scored run directory, scorecards and reports included): $(cat "$work/merge.time")"
