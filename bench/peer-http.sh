#!/usr/bin/env bash
# oae against a peer harness on the same server and load: llama.cpp's OpenAI-compatible server
# (llama-cpp-python, scripts/llama-server.sh) serving SmolLM2-135M, replayed at a constant rate
# by AIPerf and then by oae's `openai` method; prints TTFT and ITL medians side by side.
#
#   bench/peer-http.sh [path/to/oae] [RATE] [REQUESTS]      (default: target/release/oae, 0.5, 40)
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

"$AIPERF" profile --model smollm2 --url "http://127.0.0.1:$port" --endpoint-type chat --streaming \
  --arrival-pattern constant --request-rate "$RATE" --request-count "$N" \
  --synthetic-input-tokens-mean 32 --synthetic-input-tokens-stddev 0 \
  --output-tokens-mean 16 --output-tokens-stddev 0 --extra-inputs max_tokens:16 temperature:0 \
  --tokenizer "$dir/tokenizer" --artifact-dir "$dir/aiperf" --export-level records --no-auto-plot \
  > "$dir/aiperf.log" 2>&1 || { tail -20 "$dir/aiperf.log" >&2; exit 1; }

# oae asks AIPerf's very prompts, in its order (llama.cpp reuses a cached common prefix, so
# different prompts would time different prefills).
python3 - "$dir/aiperf/inputs.json" "$dir/prompts.jsonl" <<'PY'
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
"$OAE" run "$dir/suite.toml" --quiet --no-report --out "$dir/oae" > /dev/null

python3 - "$dir/aiperf/profile_export.jsonl" "$dir/oae/requests.jsonl" "$("$AIPERF" --version 2>/dev/null | tail -1)" <<'PY'
import json, statistics, sys
def med(xs):
    return statistics.median(xs) if xs else float("nan")
a_ttft, a_itl, a_err, a_out = [], [], 0, []
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("error"):
        a_err += 1
        continue
    m = r["metrics"]
    a_ttft.append(m["time_to_first_token"]["value"])
    if "inter_token_latency" in m:
        a_itl.append(m["inter_token_latency"]["value"])
    if "output_sequence_length" in m:
        a_out.append(m["output_sequence_length"]["value"])
recs = [json.loads(l) for l in open(sys.argv[2])]
ok = [r for r in recs if r["outcome"] == "ok"]
o_ttft = [r["ttft_ms"] for r in ok]
o_tpot = [r["tpot_ms"] for r in ok if r["tpot_ms"] is not None]
o_chunk = [x for r in ok for x in r["itl_ms"]]
print(f"AIPerf {sys.argv[3]}: {len(a_ttft)} ok, {a_err} errors; oae: {len(ok)} ok of {len(recs)}")
print(f"output tokens median: AIPerf {med(a_out):.0f}, oae {med([r['output_tokens'] for r in ok]):.0f}; "
      f"oae input tokens median {med([r['input_tokens'] for r in ok if r['input_tokens']]):.0f}")
print("| metric (median, ms) | AIPerf | oae | oae − AIPerf |")
print("|---|---:|---:|---:|")
for name, a, o in [("TTFT", med(a_ttft), med(o_ttft)), ("ITL (per request: (E2E − TTFT) / (tokens − 1))", med(a_itl), med(o_tpot))]:
    print(f"| {name} | {a:.2f} | {o:.2f} | {o - a:+.2f} ({(o - a) / a * 100:+.1f} %) |")
print(f"| oae ITL per chunk | — | {med(o_chunk):.2f} | |")
PY
