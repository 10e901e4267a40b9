"""The GPU validation table from bench/gpu-validate.sh's output folder.

    python3 bench/gpu_report.py OUT_DIR

Reads OUT_DIR/runs/{nvml,gpu-cold,gpu-warm,cpu}, nvml.log and peer.log; writes
OUT_DIR/gpu-validation.json (every figure) and OUT_DIR/gpu-validation.md (the table
docs/energy-validation.md records), and prints the Markdown. Missing parts are reported as
missing, never guessed.
"""
import csv
import json
import os
import re
import sys

OUT = sys.argv[1]


def load(*parts):
    path = os.path.join(OUT, *parts)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def records(run):
    path = os.path.join(OUT, "runs", run, "requests.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def est(stat, key="p50"):
    """'value [lo, hi] (n)' of a summary statistic."""
    if not stat:
        return "—"
    e = stat.get(key) or {}
    v, lo, hi = e.get("value"), e.get("ci_lo"), e.get("ci_hi")
    if v is None:
        return "—"
    ci = f" [{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None else ""
    return f"{v:.3g}{ci} (n={stat.get('n')})"


fig = {}
md = ["# GPU validation", ""]

# --- the machine
log = open(os.path.join(OUT, "validate.log")).read() if os.path.exists(os.path.join(OUT, "validate.log")) else ""
m = re.search(r"name, driver_version.*\n(.+)\n", log)
fig["gpu"] = m.group(1).strip() if m else None
md += [f"GPU: `{fig['gpu']}`", ""]

# --- NVML under load
nvml = load("runs", "nvml", "run.json")
md += ["## NVML (meters every 5 ms, bursty external load)", ""]
if nvml:
    v = nvml["energy"]["validity"]
    fig["nvml"] = {
        "observed_update_ms": {f"{r['source']}@{r['domain']}": r.get("observed_update_ms") for r in v["source_resolution_ms"]},
        "counter_vs_power_ratio": v.get("counter_vs_power_ratio"),
        "read_errors": v.get("read_errors"),
        "read_errors_by_kind": v.get("read_errors_by_kind"),
        "meter_failures": v.get("meter_failures"),
    }
    rows = list(csv.DictReader(open(os.path.join(OUT, "runs", "nvml", "timeline.csv"))))
    ctr = [r for r in rows if r["source"] == "nvml-counter" and r["domain"] == "gpu:0" and r["energy_j"]]
    if ctr:
        t = float(ctr[-1]["t_s"]) - float(ctr[0]["t_s"])
        j = float(ctr[-1]["energy_j"]) - float(ctr[0]["energy_j"])
        fig["nvml"]["oae_gpu0"] = {"j": j, "s": t, "mean_w": j / t if t else None}
    load_line = open(os.path.join(OUT, "nvml.log")).read() if os.path.exists(os.path.join(OUT, "nvml.log")) else ""
    g = re.search(r"GPULOAD rc=(\S+) window_s=(\S+) bursts=(\S+) pynvml_j=(\S+) mean_w=(\S+)", load_line)
    if g:
        fig["nvml"]["pynvml"] = {"j": float(g.group(4)), "s": float(g.group(2)), "mean_w": float(g.group(5))}
    n = fig["nvml"]
    md += [
        "| figure | value |",
        "|---|---|",
        *[f"| observed update period, {k} | {v:.1f} ms |" if v is not None else f"| observed update period, {k} | — |" for k, v in n["observed_update_ms"].items()],
        f"| counter vs integrated power | {n['counter_vs_power_ratio']} |",
        f"| read errors | {n['read_errors']} {json.dumps(n['read_errors_by_kind'])} |",
        f"| meters given up | {len(n['meter_failures'] or [])} |",
    ]
    if "oae_gpu0" in n:
        o = n["oae_gpu0"]
        md.append(f"| oae gpu:0 over its run | {o['j']:.1f} J / {o['s']:.1f} s = {o['mean_w']:.1f} W |")
    if "pynvml" in n:
        p = n["pynvml"]
        md.append(f"| pynvml counter around the process | {p['j']:.1f} J / {p['s']:.1f} s = {p['mean_w']:.1f} W |")
    md.append("")
else:
    md += ["(no NVML run)", ""]


# --- dense on the GPU and the CPU
def methods(run):
    r = load("runs", run, "run.json")
    return {m["label"]: m for m in (r or {}).get("methods", [])}


def cells(run):
    s = load("runs", run, "summary.json")
    return {c["method"]: c for c in (s or {}).get("cells", [])}


cold, warm, cpu = methods("gpu-cold"), methods("gpu-warm"), methods("cpu")
ccold, cwarm, ccpu = cells("gpu-cold"), cells("gpu-warm"), cells("cpu")
fig["dense"] = {}
md += ["## Dense decode, synthetic 1024×12 (≈ 200M parameters)", ""]
md += [
    "| device | method | TPOT p50 ms [95% CI] (n) | TTFT p50 ms | setup s | cold start s (first pass s, JIT cache) | setup J by domain | loaded idle W (drift %) |",
    "|---|---|---|---|---|---|---|---|",
]
for device, ms, cs in (("cuda:0 cold", cold, ccold), ("cuda:0 warm", warm, cwarm), ("cpu", cpu, ccpu)):
    for label, m in ms.items():
        c = cs.get(label, {})
        cs_f = (m.get("facts") or {}).get("cold_start") or {}
        jit = (cs_f.get("jit_cache") or {}).get("state", "—")
        idle = []
        for meter in (m.get("idle_baseline") or {}).get("meters", []):
            w = meter.get("idle_w")
            if w is not None:
                d = meter.get('idle_drift_pct')
                idle.append(f"{meter.get('source')}@{meter.get('domain')} {w:.1f} ({'—' if d is None else round(d, 1)})")
        setup_dom = m.get("setup_energy_by_domain") or {}
        entry = {
            "tpot_ms": (c.get("latency") or {}).get("tpot_ms"),
            "ttft_ms_p50": ((c.get("latency") or {}).get("ttft_ms") or {}).get("p50", {}).get("value"),
            "setup_s": m.get("setup_s"),
            "cold_start_s": m.get("cold_start_s"),
            "cold_start": cs_f,
            "setup_energy_j": m.get("setup_energy_j"),
            "setup_energy_by_domain": setup_dom,
            "idle": idle,
            "energy": c.get("energy"),
        }
        fig["dense"][f"{device} {label}"] = entry
        ttft = entry["ttft_ms_p50"]
        md.append(
            f"| {device} | {label} | {est(entry['tpot_ms'])} | {ttft:.1f} |" if ttft is not None else f"| {device} | {label} | {est(entry['tpot_ms'])} | — |"
        )
        md[-1] += (
            f" {m.get('setup_s', 0):.2f} | {m.get('cold_start_s') or 0:.2f} ({cs_f.get('first_pass_s', 0):.2f}, {jit}) |"
            f" {', '.join(f'{k} {v:.0f}' if v is not None else f'{k} —' for k, v in setup_dom.items()) or '—'} | {'; '.join(idle) or '—'} |"
        )
md.append("")

md += ["## Energy per request by domain (cuda:0, cold run)", ""]
md += ["| method | domain | meter (kind) | active J/request mean [95% CI] | amortized J/request mean | idle W |", "|---|---|---|---|---|---|"]
for label, c in ccold.items():
    e = c.get("energy") or {}
    for d in e.get("domains", []):
        md.append(
            f"| {label} | {d['domain']} | {d['source']} ({d['kind']}) | {est(d.get('active_j_per_request'), 'mean')} |"
            f" {est(d.get('amortized_j_per_request'), 'mean')} | {d.get('idle_w') and round(d['idle_w'], 1)} |"
        )
    md.append(f"| {label} | total | {e.get('source')} | {est(e.get('active_j_per_request'), 'mean')} | {est(e.get('amortized_j_per_request'), 'mean')} | estimated parts: {', '.join(e.get('estimated_domains', [])) or 'none'} |")
md.append("")

# --- dtype agreement: greedy answers, GPU dtypes vs the CPU in f32
md += ["## Greedy answers: agreement with the CPU in f32 (same requests)", ""]
ref = {r["request_id"]: r.get("output_text") or "" for r in records("cpu") if r.get("outcome") == "ok"}
fig["agreement"] = {}
if ref:
    md += ["| method on cuda:0 | requests compared | identical answers | mean common prefix (chars of 64 tokens) |", "|---|---|---|---|"]
    by = {}
    for r in records("gpu-cold"):
        if r.get("outcome") == "ok" and r["request_id"] in ref:
            by.setdefault(r["method"], []).append(r)
    for label, rs in sorted(by.items()):
        same = sum((r.get("output_text") or "") == ref[r["request_id"]] for r in rs)
        pref = []
        for r in rs:
            a, b = r.get("output_text") or "", ref[r["request_id"]]
            k = 0
            while k < min(len(a), len(b)) and a[k] == b[k]:
                k += 1
            pref.append(k)
        mean_ref = sum(len(ref[r["request_id"]]) for r in rs) / len(rs)
        fig["agreement"][label] = {"n": len(rs), "identical": same, "mean_prefix_chars": sum(pref) / len(pref), "mean_answer_chars": mean_ref}
        md.append(f"| {label} | {len(rs)} | {same} | {sum(pref) / len(pref):.1f} of {mean_ref:.1f} |")
else:
    md.append("(no CPU reference answers)")
md.append("")

# --- peer
peer = open(os.path.join(OUT, "peer.log")).read() if os.path.exists(os.path.join(OUT, "peer.log")) else ""
fig["peer"] = re.findall(r"^PEER .*$", peer, re.M)
if fig["peer"]:
    md += ["## Peer: transformers generate(), same shape, same GPU", ""] + [f"- `{p}`" for p in fig["peer"]] + [""]

with open(os.path.join(OUT, "gpu-validation.json"), "w") as f:
    json.dump(fig, f, indent=1, default=str)
with open(os.path.join(OUT, "gpu-validation.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
