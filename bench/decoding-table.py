#!/usr/bin/env python3
"""The README table of `suites/decoding.toml` from a run directory (standard library only).

    bench/decoding-table.py RUN_DIR [--oae target/release/oae]

Per method: quality (contains, F1, EM) with 95 % CIs, latency from the start of service
(p50 [CI]: no queueing), service time per answer token, KV-cache bytes at peak (mean over
requests), active energy per request and per correct answer (`contains`); then the OAE verdict
against the suite's baseline at 0.01, 0.1 and 1 req/s (`oae score RUN_DIR --rate R`, which
rewrites the run's scorecards.json).
"""

from oae_tables import run_args, stat, verdicts


def main():
    run, oae, sj = run_args(__doc__)
    print("| method | contains | F1 | EM | service s p50 | ms per answer token | KV MB peak | J per request | J per correct answer |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in sj["cells"]:
        q, lat = c["quality"], c["latency"]
        ok = max(c["ok"], 1)
        kv = c["counters"].get("kv_bytes_peak", 0.0) / ok / 1e6
        per_token = lat["service_ms"]["mean"]["value"] * ok / max(c["output_tokens"], 1)
        j = ((c.get("energy") or {}).get("active_j_per_request") or {}).get("mean", {}).get("value")
        right = q.get("contains", {}).get("mean", {}).get("value")
        per_right = "—" if not j or not right else f"{j / right:.0f}"
        print(
            f"| {c['method']} | {stat(q.get('contains'))} | {stat(q.get('f1'))} | {stat(q.get('em'))} | "
            f"{stat(lat['service_ms'], 'p50', 1e-3)} | {per_token:.0f} | {kv:.1f} | "
            f"{'—' if j is None else f'{j:.1f}'} | {per_right} |"
        )
    verdicts(run, oae, None)


if __name__ == "__main__":
    main()
