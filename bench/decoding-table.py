#!/usr/bin/env python3
"""The README tables of `suites/decoding.toml` from a run directory (standard library only).

    bench/decoding-table.py RUN_DIR [--oae target/release/oae]

Per method, on the QA workload (SQuAD with the gold paragraph): quality (contains, F1, EM) with
95 % CIs; on the GSM8K workloads (direct and chain of thought): accuracy (the final number)
with its CI, reasoning and answer tokens per request, the reasoning overhead (reasoning tokens
per answer token) and answers the budget cut short. On both: E2E from the start of service
(p50 [CI]: no queueing; beam search emits its answer when the search ends, so TTFT ≈ E2E),
service time per generated token (the TPOT a user of a beam sees), KV-cache bytes at peak
(mean over requests), active energy per request and per correct answer (QA: `contains`;
GSM8K: the run's `reasoning` summary). Then the OAE verdict against the suite's baseline on
each workload at 0.01, 0.1 and 1 req/s (`oae score RUN_DIR --rate R`, which rewrites the
run's scorecards.json).
"""

from oae_tables import num, run_args, stat, verdicts


def common(c):
    """E2E p50 (service), ms per generated token, KV MB at peak, active J per request."""
    ok = max(c["ok"], 1)
    lat = c["latency"]
    kv = c["counters"].get("kv_bytes_peak", 0.0) / ok / 1e6
    per_token = lat["service_ms"]["mean"]["value"] * ok / max(c["output_tokens"], 1)
    j = ((c.get("energy") or {}).get("active_j_per_request") or {}).get("mean", {}).get("value")
    return stat(lat["service_ms"], "p50", 1e-3), num(per_token), f"{kv:.1f}", j


def qa(cells):
    print("| method | contains | F1 | EM | E2E s p50 (service) | ms per token | KV MB peak | J per request | J per correct answer |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in cells:
        q = c["quality"]
        e2e, per_token, kv, j = common(c)
        right = q.get("contains", {}).get("mean", {}).get("value")
        per_right = "—" if not j or not right else num(j / right)
        print(
            f"| {c['method']} | {stat(q.get('contains'))} | {stat(q.get('f1'))} | {stat(q.get('em'))} | "
            f"{e2e} | {per_token} | {kv} | {'—' if j is None else num(j)} | {per_right} |"
        )


def math(cells):
    print("| method | answers | accuracy | reasoning tokens | answer tokens | overhead | no answer | E2E s p50 (service) | ms per token | KV MB peak | J per request | tokens per correct | J per correct |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in sorted(cells, key=lambda c: c["workload"] != "gsm8k-direct"):
        r = c.get("reasoning") or {}
        f = lambda k: "—" if r.get(k) is None else num(r[k])
        e2e, per_token, kv, j = common(c)
        print(
            f"| {c['method']} | {c['workload'].removeprefix('gsm8k-')} | {stat(c['quality'].get('numeric'))} | "
            f"{stat(r.get('reasoning_tokens'))} | {stat(r.get('answer_tokens'))} | {f('overhead')} | "
            f"{r.get('no_answer', '—')}/{r.get('measured', '—')} | {e2e} | {per_token} | {kv} | "
            f"{'—' if j is None else num(j)} | {f('tokens_per_correct')} | {f('energy_j_per_correct')} |"
        )


def main():
    run, oae, sj = run_args(__doc__)
    cells = sj["cells"]
    gsm8k = [c for c in cells if c["workload"].startswith("gsm8k")]
    others = [c for c in cells if c not in gsm8k]
    if others:
        qa(others)
    if gsm8k:
        if others:
            print()
        math(gsm8k)
    verdicts(run, oae, None)


if __name__ == "__main__":
    main()
