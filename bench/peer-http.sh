#!/usr/bin/env bash
# oae against a peer harness on the same server and load: llama.cpp's OpenAI-compatible server
# (llama-cpp-python, scripts/llama-server.sh) serving SmolLM2-135M, replayed at a constant rate
# by AIPerf and by oae's `openai` method in interleaved rounds — AIPerf, oae, oae, AIPerf, then
# again — so that the machine's drift over the session falls on both alike; prints each run's
# TTFT and ITL medians, then the pooled medians side by side with a bootstrap 95 % interval of
# their difference.
#
#   bench/peer-http.sh [path/to/oae] [RATE] [REQUESTS] [ROUNDS]   (default: target/release/oae, 0.5, 40, 2)
#
# Needs: the cached model (`oae models fetch smollm2-135m-instruct`), and AIPerf in a venv:
#   python3 -m venv ~/.cache/oae/aiperf-venv && ~/.cache/oae/aiperf-venv/bin/pip install aiperf==0.13.0
# (or AIPERF=path/to/aiperf). AIPerf counts tokens with SmolLM2's tokenizer, written from the
# GGUF by `oae models tokenizer` (no model hub is reached). Both clients ask for 16 tokens
# (`max_tokens`; llama-cpp-python ignores AIPerf's own `max_completion_tokens`), greedy, for
# the same 32-token prompts (AIPerf's, replayed by oae in its order), one request at a time
# (the rate leaves the server idle between requests).
set -euo pipefail
OAE="${1:-target/release/oae}"
RATE="${2:-0.5}"
N="${3:-40}"
ROUNDS="${4:-2}"
AIPERF="${AIPERF:-$HOME/.cache/oae/aiperf-venv/bin/aiperf}"
OAE="$(cd "$(dirname "$OAE")" && pwd)/$(basename "$OAE")"
PY="$(scripts/llama-server.sh)"
GGUF="$("$OAE" models list | awk '$1 == "smollm2-135m-instruct" && $2 == "cached" {print "ok"}')"
[ "$GGUF" = ok ] || { echo "fetch the model first: $OAE models fetch smollm2-135m-instruct" >&2; exit 1; }
GGUF="${OAE_MODELS_DIR:-$HOME/.cache/oae/models}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -x "$AIPERF" ] || { echo "AIPerf not found at $AIPERF (see the header)" >&2; exit 1; }
dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$PY" -m llama_cpp.server --model "$GGUF" --model_alias smollm2 --host 127.0.0.1 --port "$port" \
  --n_ctx 1024 --n_threads 2 > "$dir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v1/models" > /dev/null && break; sleep 0.2; done
"$OAE" models tokenizer smollm2-135m-instruct --out "$dir/tokenizer" > /dev/null

aiperf_run() { # $1: output directory
  "$AIPERF" profile --model smollm2 --url "http://127.0.0.1:$port" --endpoint-type chat --streaming \
    --arrival-pattern constant --request-rate "$RATE" --request-count "$N" --random-seed 1 \
    --synthetic-input-tokens-mean 32 --synthetic-input-tokens-stddev 0 \
    --output-tokens-mean 16 --output-tokens-stddev 0 --extra-inputs max_tokens:16 temperature:0 \
    --tokenizer "$dir/tokenizer" --artifact-dir "$1" --export-level records --no-auto-plot \
    > "$1.log" 2>&1 || { tail -20 "$1.log" >&2; exit 1; }
}

oae_run() { # $1: output directory; asks AIPerf's very prompts, in its order (llama.cpp reuses a
  # cached common prefix, so different prompts would time different prefills)
  if [ ! -f "$dir/prompts.jsonl" ]; then
    python3 - "$dir/aiperf-1/inputs.json" "$dir/prompts.jsonl" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))["data"]
with open(sys.argv[2], "w") as out:
    for i, d in enumerate(data):
        prompt = d["payloads"][0]["messages"][-1]["content"]
        out.write(json.dumps({"id": f"p{i}", "prompt": prompt, "references": ["-"]}) + "\n")
PY
    cat > "$dir/suite.toml" <<TOML
name = "peer-http"
[run]
seed = 1
requests = $N
warmup_s = 0.0
[energy]
idle_baseline_s = 0.0
[[workloads]]
name = "constant"
arrival = { process = "constant", rate_qps = $RATE }
task = { path = "prompts.jsonl", shuffle = false, max_new_tokens = 16, scorers = ["contains"] }
[[methods]]
id = "openai"
label = "oae"
base_url = "http://127.0.0.1:$port/v1"
model = "smollm2"
tokenizer = "$GGUF"
TOML
  fi
  "$OAE" run "$dir/suite.toml" --quiet --no-report --out "$1" > /dev/null
}

# Rounds of A B B A: AIPerf first (its inputs.json gives oae the prompts; its seed makes every
# AIPerf run ask the same ones).
a=0; o=0
for _ in $(seq "$ROUNDS"); do
  for tool in aiperf oae oae aiperf; do
    if [ "$tool" = aiperf ]; then a=$((a + 1)); aiperf_run "$dir/aiperf-$a"; else o=$((o + 1)); oae_run "$dir/oae-$o"; fi
    echo "$tool run done ($(date -u +%H:%M:%S))" >&2
  done
done

python3 - "$dir" "$("$AIPERF" --version 2>/dev/null | tail -1)" <<'PY'
import glob, json, random, statistics, sys
d, version = sys.argv[1], sys.argv[2]
def med(xs):
    return statistics.median(xs) if xs else float("nan")
def aiperf(run):
    ttft, itl, err = [], [], 0
    for line in open(f"{run}/profile_export.jsonl"):
        r = json.loads(line)
        if r.get("error"):
            err += 1
            continue
        m = r["metrics"]
        ttft.append(m["time_to_first_token"]["value"])
        if "inter_token_latency" in m:
            itl.append(m["inter_token_latency"]["value"])
    return ttft, itl, err
def oae(run):
    recs = [json.loads(l) for l in open(f"{run}/requests.jsonl")]
    ok = [r for r in recs if r["outcome"] == "ok"]
    return [r["ttft_ms"] for r in ok], [r["tpot_ms"] for r in ok if r["tpot_ms"] is not None], len(recs) - len(ok)
runs = {"AIPerf": sorted(glob.glob(f"{d}/aiperf-*[0-9]")), "oae": sorted(glob.glob(f"{d}/oae-*[0-9]"))}
pooled = {}
print(f"AIPerf {version}; runs in the order AIPerf, oae, oae, AIPerf per round")
print("| run | TTFT median ms | ITL median ms | ok | failed |")
print("|---|---:|---:|---:|---:|")
for tool, read in (("AIPerf", aiperf), ("oae", oae)):
    t_all, i_all = [], []
    for run in runs[tool]:
        t, i, err = read(run)
        t_all += t; i_all += i
        print(f"| {tool} {run.rsplit('-', 1)[1]} | {med(t):.2f} | {med(i):.2f} | {len(t)} | {err} |")
    pooled[tool] = (t_all, i_all)
def boot(a, b, draws=2000, seed=1):
    rng = random.Random(seed)
    diffs = []
    for _ in range(draws):
        ra = [rng.choice(a) for _ in a]; rb = [rng.choice(b) for _ in b]
        ma = statistics.median(ra)
        diffs.append((statistics.median(rb) - ma) / ma * 100)
    diffs.sort()
    return diffs[int(0.025 * draws)], diffs[int(0.975 * draws) - 1]
print()
print("| metric (pooled median, ms) | AIPerf | oae | oae − AIPerf [95 % CI] |")
print("|---|---:|---:|---:|")
for k, name in ((0, "TTFT"), (1, "ITL per request: (E2E − TTFT) / (tokens − 1)")):
    a, o = pooled["AIPerf"][k], pooled["oae"][k]
    lo, hi = boot(a, o)
    print(f"| {name} | {med(a):.2f} (n={len(a)}) | {med(o):.2f} (n={len(o)}) | {(med(o) - med(a)) / med(a) * 100:+.1f} % [{lo:+.1f}, {hi:+.1f}] |")
PY
