"""Shared pieces of the bench/*-table.py scripts (standard library only): number and
statistic formatting, and OAE verdicts at a site's request rates via `oae score --rate`."""

import json
import subprocess
import sys
from pathlib import Path


def run_args(doc):
    """`SCRIPT RUN_DIR [--oae PATH]`: the run directory, the oae binary and its summary.json
    (exits with the script's docstring when RUN_DIR is missing)."""
    args = sys.argv[1:]
    if not args:
        sys.exit(doc)
    run = Path(args[0])
    oae = args[args.index("--oae") + 1] if "--oae" in args else "oae"
    return run, oae, json.loads((run / "summary.json").read_text())


def num(x, digits=3):
    """Plain notation: whole numbers from 100 up, else `digits` significant figures."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.{digits}g}"


def stat(s, key="mean", scale=1.0, digits=3):
    if not s:
        return "—"
    v = s[key]
    lo, hi = v.get("ci_lo"), v.get("ci_hi")
    f = lambda x: num(x * scale, digits)
    if lo is None or hi is None:
        return f(v["value"]) + "*"
    return f"{f(v['value'])} [{f(lo)}, {f(hi)}]"


def verdicts(run, oae, quality):
    name = f"quality = {quality}" if quality else "quality = the default scorer"
    print(f"\nOAE verdict against the baseline at a site's request rate ({name}; `oae score RUN --rate R`):\n")
    rates = [0.01, 0.1, 1.0]
    table = {}
    for r in rates:
        cmd = [oae, "score", str(run), "--rate", str(r)] + (["--quality", quality] if quality else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}{out.stderr}")
        cards = json.loads((run / "scorecards.json").read_text())
        for row in cards["rows"]:
            ratio = row.get("oae_ratio")
            text = row["verdict"]
            # JSON has no infinity: a ratio against a baseline with no good request (infinite
            # cost) is null; with a lower bound it is +∞, not unknown.
            num = lambda x: "∞" if x is None else f"{x:.2f}"
            if ratio and (ratio.get("value") is not None or ratio.get("ci_lo") is not None):
                text += f" {num(ratio['value'])} [{num(ratio.get('ci_lo'))}, {num(ratio.get('ci_hi'))}]"
            table.setdefault((row["workload"], row["method"]), {})[r] = text
    # One workload: a method per row; several: a (workload, method) per row, each workload
    # judged against the baseline on that workload.
    several = len({w for w, _ in table}) > 1
    print(("| workload " if several else "") + "| method | " + " | ".join(f"{r:g} req/s" for r in rates) + " |")
    print(("|---" if several else "") + "|---|" + "---|" * len(rates))
    for (workload, label), v in table.items():
        print((f"| {workload} " if several else "") + f"| {label} | " + " | ".join(v.get(r, "—") for r in rates) + " |")
