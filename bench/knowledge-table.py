#!/usr/bin/env python3
"""The README table of `suites/knowledge.toml` from a run directory (standard library only).

    bench/knowledge-table.py RUN_DIR [--oae target/release/oae] [--quality SCORER]...

Prints, per method: knowledge tokens, retrieval ms (embed + search + rerank + rewrite),
first-token and whole-query latency from the start of service (no queueing: what a sporadic
request sees), F1 / MiniLM / contains with 95 % CIs, recall of the gold paragraph, setup
seconds and joules; then CAG's break-even against each retriever of the same base (queries
after which the preload has paid for itself); then the OAE verdict against the suite's
baseline at 0.01, 0.1 and 1 req/s (`oae score RUN_DIR --rate R`, which rewrites the run's
scorecards.json) — with the default quality scorer, and again with each `--quality` given
(e.g. `f1`: partial credit, where right/wrong scorers find almost nothing right).
"""

import json

from oae_tables import num, run_args, stat, verdicts


def main():
    run, oae, sj = run_args(__doc__)
    rj = json.loads((run / "run.json").read_text())
    facts = {m["label"]: m for m in rj["methods"]}
    cells = {c["method"]: c for c in sj["cells"]}

    print("| method | knowledge tokens (chunks; CAG: cached prefix) | retrieval ms | TTFT ms p50 (service) | query s p50 (service) | F1 | MiniLM | contains | gold recall | setup s | setup J |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    per_query = {}
    for label, c in cells.items():
        m = facts[label]
        f = m["facts"]
        setup = (f.get("rag") or f.get("cag") or {}).get("setup") or {}
        tokens = setup.get("knowledge_tokens", 0) if label != "closed-book" else 0
        ph = c["phases_ms"]
        retrieval = sum(ph[p]["mean"]["value"] for p in ("embed", "search", "rerank", "rewrite") if p in ph)
        ok = max(c["ok"], 1)
        recall = c["counters"].get("recall_at_k")
        setup_j = (c.get("energy") or {}).get("setup_j")
        lat = c["latency"]
        q = c["quality"]
        per_query[label] = (
            lat["service_ms"]["mean"]["value"] / 1e3,
            ((c.get("energy") or {}).get("active_j_per_request") or {}).get("mean", {}).get("value"),
            m["setup_s"],
            setup_j,
        )
        print(
            f"| {label} | {tokens} | {num(retrieval)} | {stat(lat.get('service_ttft_ms'), 'p50')} | "
            f"{stat(lat['service_ms'], 'p50', 1e-3)} | {stat(q.get('f1'))} | {stat(q.get('minilm'))} | "
            f"{stat(q.get('contains'))} | {'—' if recall is None else f'{recall / ok:.2f}'} | "
            f"{m['setup_s']:.1f} | {'—' if setup_j is None else f'{setup_j:.0f}'} |"
        )
    for n in rj.get("not_applicable", []):
        print(f"| {n['label']} | — | — | — | — | — | — | — | — | not applicable | — |")
    for n in rj.get("not_applicable", []):
        print(f"\n{n['label']}: {n['reason']}")

    print("\nCAG break-even (queries after which the preload has paid for itself; mean service time and active energy per query):\n")
    print("| base | against | Δ setup s | Δ per query s | break-even queries (time) | break-even queries (energy) |")
    print("|---|---|---:|---:|---:|---:|")
    for label in per_query:
        if not label.startswith("cag-"):
            continue
        size = label.split("-", 1)[1]
        cs, cj, css, csj = per_query[label]
        for other in ("bm25", "dense", "complex", "full"):
            o = f"{other}-{size}"
            if o not in per_query:
                continue
            os_, oj, oss, osj = per_query[o]
            dsetup = css - oss
            dq = os_ - cs

            def be(ds, d):
                if d is None or ds is None:
                    return "—"
                if d <= 0:
                    return "never" if ds > 0 else "always"
                return f"{max(ds, 0) / d:.1f}"

            dj = None if (oj is None or cj is None) else oj - cj
            dsj = None if (csj is None or osj is None) else csj - osj
            print(f"| {size} | {o} | {dsetup:+.1f} | {dq:+.2f} | {be(dsetup, dq)} | {be(dsj, dj)} |")

    qualities = [None] + [args[i + 1] for i, a in enumerate(args) if a == "--quality"]
    for quality in qualities:
        verdicts(run, oae, quality)


if __name__ == "__main__":
    main()
