#!/usr/bin/env bash
# oae's own cost of timing a server over HTTP: the `openai` method against `oae fake-server`,
# whose first token comes exactly TTFT_MS after a request arrives and each later one ITL_MS
# after the previous. What oae measures beyond those is the harness's dispatch, the client
# (request, connection, SSE parsing) and the loopback — an upper bound on the client's
# overhead, since the fake server's own parsing and sleep overshoot are in it too.
#
#   bench/http-overhead.sh [path/to/oae] [REQUESTS]      (default: target/release/oae, 200: 100 s)
#
# Prints TTFT and ITL p50 / p99 minus the scripted values, and E2E minus the scripted total,
# from the run's records (standard-library Python).
set -euo pipefail
OAE="${1:-target/release/oae}"
N="${2:-200}"
TTFT_MS=50
ITL_MS=10
TOKENS=16
OAE="$(cd "$(dirname "$OAE")" && pwd)/$(basename "$OAE")"
dir="$(mktemp -d)"; trap 'rm -rf "$dir"' EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$dir/suite.toml" <<EOF
name = "http-overhead"
[run]
seed = 1
requests = $N
warmup_s = 0.0
[energy]
idle_baseline_s = 0.0
[[workloads]]
name = "every-500ms"
arrival = { process = "constant", rate_qps = 2.0 }   # one request every 500 ms: none waits for another
input_tokens = 32
output_tokens = $TOKENS
[[methods]]
id = "openai"
label = "fake"
base_url = "http://127.0.0.1:$port/v1"
model = "fake"
launch = { command = ["$OAE", "fake-server", "--listen", "127.0.0.1:$port", "--ttft-ms", "$TTFT_MS", "--itl-ms", "$ITL_MS"] }
EOF
"$OAE" run "$dir/suite.toml" --quiet --no-report --out "$dir/run" > /dev/null
python3 - "$dir/run/requests.jsonl" "$TTFT_MS" "$ITL_MS" "$TOKENS" <<'EOF'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ttft_s, itl_s, n = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
ok = [r for r in recs if r["outcome"] == "ok"]
def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]
ttft = [r["ttft_ms"] - ttft_s for r in ok]
itl = [x - itl_s for r in ok for x in r["itl_ms"]]
e2e = [r["service_ms"] - (ttft_s + itl_s * (n - 1)) for r in ok]
lag = [r["dispatch_lag_ms"] for r in ok]
print(f"{len(ok)}/{len(recs)} ok; scripted TTFT {ttft_s:g} ms, ITL {itl_s:g} ms, {n} tokens")
for name, xs in [("TTFT - scripted", ttft), ("ITL - scripted", itl), ("service - scripted", e2e), ("dispatch lag", lag)]:
    print(f"  {name:20s} p50 {q(xs, .5):.3f} ms   p99 {q(xs, .99):.3f} ms   (n = {len(xs)})")
EOF
