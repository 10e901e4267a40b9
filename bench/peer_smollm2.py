"""SmolLM2-135M-Instruct decode/prefill speed: oae vs peer runtimes on the same machine.

Run by bench/peer-smollm2.sh, which installs the peers into private virtual environments
(never a project dependency) and calls this once per runtime, thread count and run
(`--only`), then once to summarise (`--summarize`). Every runtime gets the same prompt (128
tokens of the same text), the same number of compute threads, and decodes 64 tokens greedily
from it; each measurement is the median of `--reps` repetitions after one warm-up.

- oae: `oae models bench`, twice: `--weights as-file` (the file's Q4_1 / Q8_0 blocks, the
  same bytes llama.cpp reads) and `--weights f32` (dequantized, the same values PyTorch
  runs); with bandwidths, rooflines for the bytes each reads per token, and resident memory.
- PyTorch + transformers: the same GGUF loaded with transformers' GGUF reader (dequantized
  to F32), a manual KV-cache loop under torch.inference_mode().
- llama.cpp (llama-cpp-python built from source with the ISA options the script names): the
  Q4_1 file as shipped.
Ratios compare like with like: oae as-file ÷ llama.cpp, oae f32 ÷ PyTorch.
"""
import argparse, json, os, statistics, subprocess, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--gguf")
ap.add_argument("--oae")
ap.add_argument("--only", choices=["oae", "torch", "llama.cpp"])
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--weights", default="as-file", choices=["as-file", "f32"])
ap.add_argument("--run", type=int, default=1)
ap.add_argument("--reps", type=int, default=5)
ap.add_argument("--prompt-tokens", type=int, default=128)
ap.add_argument("--decode-tokens", type=int, default=64)
ap.add_argument("--summarize", help="a JSON-lines file of --only results")
ap.add_argument("--isa", default="", help="the llama.cpp build's ISA options, for the summary")
args = ap.parse_args()
TEXT = "The committee reviewed 42 proposals on energy use in small clinics and schools. "


def emit(runtime, version, prefill, decode, **extra):
    print(json.dumps({"run": args.run, "threads": args.threads, "runtime": runtime, "version": version,
                      "prefill_tok_s": statistics.median(prefill), "decode_tok_s": statistics.median(decode),
                      **extra}))


def oae():
    out = subprocess.run(
        [args.oae, "models", "bench", args.gguf, "--json", "--threads", str(args.threads),
         "--reps", str(args.reps), "--prompt-tokens", str(args.prompt_tokens),
         "--decode-tokens", str(args.decode_tokens), "--weights", args.weights],
        check=True, capture_output=True, text=True).stdout
    o = json.loads(out)
    types = "+".join(k for k in o["weight_types"] if k.startswith("q")) or "f32"
    kernels = f", {o['kernels']} kernels" if o.get("kernels") else ""
    mem = o.get("memory") or {}
    print(json.dumps({"run": args.run, "threads": args.threads, "runtime": "oae", "weights": args.weights,
                      "version": f"{args.weights} ({types}{kernels})",
                      "prefill_tok_s": o["prefill_tok_s"]["median"], "decode_tok_s": o["decode_tok_s"]["median"],
                      "copy_bandwidth_gb_s": o["copy_bandwidth_gb_s"], "read_bandwidth_gb_s": o["read_bandwidth_gb_s"],
                      "roofline_tok_s": o["decode_roofline_tok_s"], "bytes_per_token": o["weight_bytes_per_token"],
                      "roofline_fraction": o["decode_fraction_of_roofline"]["median"],
                      "weight_bytes": o["weight_bytes"], "rss_after_load_mib": mem.get("rss_after_load_mib"),
                      "rss_before_load_mib": mem.get("rss_before_load_mib"), "peak_rss_mib": mem.get("peak_rss_mib"),
                      "gguf_bytes": os.path.getsize(args.gguf)}))


def torch_run():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(args.threads)
    d, f = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    ids = tok(TEXT * (1 + args.prompt_tokens // 8), return_tensors="pt").input_ids[:, : args.prompt_tokens]
    pre, dec = [], []
    with torch.inference_mode():
        for _ in range(args.reps + 1):
            t = time.perf_counter()
            out = model(ids, use_cache=True)
            pre.append(ids.shape[1] / (time.perf_counter() - t))
            pkv, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            t = time.perf_counter()
            for _ in range(args.decode_tokens):
                out = model(nxt, past_key_values=pkv, use_cache=True)
                pkv, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            dec.append(args.decode_tokens / (time.perf_counter() - t))
    emit("PyTorch", f"{torch.__version__} + transformers (f32)", pre[1:], dec[1:])


def llama_run():
    import llama_cpp
    llm = llama_cpp.Llama(model_path=args.gguf, n_threads=args.threads, n_threads_batch=args.threads,
                          n_ctx=512, n_batch=512, verbose=False)
    ids = llm.tokenize((TEXT * (1 + args.prompt_tokens // 8)).encode(), add_bos=False)[: args.prompt_tokens]
    pre, dec = [], []
    for _ in range(args.reps + 1):
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        pre.append(len(ids) / (time.perf_counter() - t))
        nxt = int(llm.scores[llm.n_tokens - 1].argmax())
        t = time.perf_counter()
        for _ in range(args.decode_tokens):
            llm.eval([nxt])
            nxt = int(llm.scores[llm.n_tokens - 1].argmax())
        dec.append(args.decode_tokens / (time.perf_counter() - t))
    emit("llama.cpp", f"{llama_cpp.__version__} (Q4_1 as shipped)", pre[1:], dec[1:],
         system_info=llama_cpp.llama_print_system_info().decode(errors="replace").strip())


def spread(xs):
    return f"{statistics.median(xs):.2f} [{min(xs):.2f}–{max(xs):.2f}]"


def summarize(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    if not rows:
        sys.exit("no results to summarise")
    if args.isa:
        print(f"llama.cpp built with: {args.isa}")
    for r in rows:
        if "system_info" in r:
            print(f"llama.cpp system info: {r['system_info']}")
            break
    o = [r for r in rows if r["runtime"] == "oae"]
    read = {}
    if o:
        gguf = o[0]["gguf_bytes"]
        copy = [r["copy_bandwidth_gb_s"] for r in o]
        print(f"copy bandwidth {spread(copy)} GB/s (each byte copied counted once, one thread)")
        for t in sorted({r["threads"] for r in o}):
            xs = [r["read_bandwidth_gb_s"] for r in o if r["threads"] == t]
            read[t] = statistics.median(xs)
            print(f"read bandwidth, {t} thread(s): {spread(xs)} GB/s — the Q4_1 file read once per token: "
                  f"≤ {read[t] * 1e9 / gguf:.0f} tok/s")
        for w in sorted({r["weights"] for r in o}):
            mine = [r for r in o if r["weights"] == w]
            m = mine[0]
            if m.get("rss_after_load_mib") is not None:
                loaded = [(r["rss_after_load_mib"] - r["rss_before_load_mib"]) * 2**20 / gguf for r in mine]
                print(f"oae {w}: weights {m['weight_bytes'] / 2**20:.1f} MiB = {m['weight_bytes'] / gguf:.2f}× the file; "
                      f"resident set grew {spread(loaded)}× the file on loading; "
                      f"peak RSS {spread([r['peak_rss_mib'] for r in mine])} MiB "
                      f"(file {gguf / 2**20:.1f} MiB)")
    runs = sorted({r["run"] for r in rows})
    print(f"prompt {args.prompt_tokens} tokens, decode {args.decode_tokens} tokens; each figure the median of "
          f"{args.reps} repetitions; {len(runs)} runs, shown as median [min–max] over runs; "
          "ratios like with like: oae as-file ÷ llama.cpp, oae f32 ÷ PyTorch")
    same = {"llama.cpp": "as-file", "PyTorch": "f32"}
    for t in sorted({r["threads"] for r in rows}):
        at = [r for r in rows if r["threads"] == t]
        print(f"\nthreads {t}")
        print("| runtime | decode tok/s | prefill tok/s | oae ÷ it, decode | oae ÷ it, prefill |")
        print("|---|---:|---:|---:|---:|")
        for name, weights in [("oae", "as-file"), ("oae", "f32"), ("llama.cpp", None), ("PyTorch", None)]:
            mine = [r for r in at if r["runtime"] == name and (weights is None or r.get("weights") == weights)]
            if not mine:
                continue
            label = f"{name} {mine[0]['version']}"
            cells = ["", ""]
            if name in same:
                by_run = {r["run"]: r for r in at if r["runtime"] == "oae" and r.get("weights") == same[name]}
                ratio = lambda k: [by_run[r["run"]][k] / r[k] for r in mine if r["run"] in by_run]
                if by_run:
                    cells = [f"{spread(ratio('decode_tok_s'))}×", f"{spread(ratio('prefill_tok_s'))}×"]
            print(f"| {label} | {spread([r['decode_tok_s'] for r in mine])} | {spread([r['prefill_tok_s'] for r in mine])} "
                  f"| {cells[0]} | {cells[1]} |")
        for w in ["as-file", "f32"]:
            mine = [r for r in at if r["runtime"] == "oae" and r.get("weights") == w]
            if mine:
                # Each repetition against the read probe run right after it (oae pairs them).
                frac = [r["roofline_fraction"] * 100 for r in mine]
                print(f"oae {w} decode at {spread(frac)} % of its roofline "
                      f"({mine[0]['bytes_per_token'] / 2**20:.1f} MiB read per token)")
        ll = [r for r in at if r["runtime"] == "llama.cpp"]
        if ll and t in read:
            q = [r["decode_tok_s"] / (read[t] * 1e9 / o[0]["gguf_bytes"]) * 100 for r in ll]
            print(f"llama.cpp decode at {spread(q)} % of the Q4_1 file's roofline (whole file read per token)")


if args.summarize:
    summarize(args.summarize)
elif args.only == "oae":
    oae()
elif args.only == "torch":
    torch_run()
elif args.only == "llama.cpp":
    llama_run()
else:
    sys.exit("give --only RUNTIME or --summarize FILE (bench/peer-smollm2.sh runs them)")
