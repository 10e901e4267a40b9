#!/usr/bin/env python3
"""The README table of `suites/reasoning.toml` from a run directory (standard library only).

    bench/reasoning-table.py RUN_DIR

Per (method, workload): accuracy (GSM8K final number) with its 95 % CI, reasoning and answer
tokens per request (mean [CI]), the reasoning overhead (reasoning tokens per answer token),
answers the budget cut short, service time p50, and tokens, energy and cost per correct answer
(cost from the run's scorecards.json at the replayed rate).
"""

import json

from oae_tables import num, run_args, stat


def main():
    run, _, sj = run_args(__doc__)
    cards = json.loads((run / "scorecards.json").read_text())
    cost = {(r["method"], r["workload"]): (r.get("per_correct") or {}).get("cost_usd") for r in cards["rows"]}
    print("| method | answers | accuracy | reasoning tokens | answer tokens | overhead | no answer | service s p50 | tokens per correct | J per correct | USD per 1k correct |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in sj["cells"]:
        r = c.get("reasoning") or {}
        f = lambda k: "—" if r.get(k) is None else num(r[k])
        usd = cost.get((c["method"], c["workload"]))
        print(
            f"| {c['method']} | {c['workload'].removeprefix('gsm8k-')} | {stat(c['quality'].get('numeric'))} | "
            f"{stat(r.get('reasoning_tokens'))} | {stat(r.get('answer_tokens'))} | {f('overhead')} | "
            f"{r.get('no_answer', '—')}/{r.get('measured', '—')} | {stat(c['latency']['service_ms'], 'p50', 1e-3)} | "
            f"{f('tokens_per_correct')} | {f('energy_j_per_correct')} | {'—' if usd is None else num(usd * 1e3)} |"
        )


if __name__ == "__main__":
    main()
