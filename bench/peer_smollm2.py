"""SmolLM2-135M-Instruct decode/prefill speed: oae vs peer runtimes on the same machine.

Run by bench/peer-smollm2.sh, which installs the peers into a private virtual environment
(never a project dependency). Every runtime gets the same prompt (128 tokens of the same
text), the same number of compute threads, and decodes 64 tokens greedily from it; each is
measured `--reps` times after one warm-up and the median is reported.

- oae: `oae models bench` (weights dequantized to F32).
- PyTorch + transformers: the same GGUF loaded with transformers' GGUF reader (dequantized
  to F32 — the same weights oae runs), a manual KV-cache loop under torch.inference_mode().
- llama.cpp (llama-cpp-python built from source): the Q4_1 file as shipped (its native,
  faster path: 4.5 bits per weight instead of 32).
"""
import argparse, json, os, statistics, subprocess, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--gguf", required=True)
ap.add_argument("--oae", required=True)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--reps", type=int, default=5)
ap.add_argument("--prompt-tokens", type=int, default=128)
ap.add_argument("--decode-tokens", type=int, default=64)
ap.add_argument("--skip", default="", help="comma-separated: torch,llama.cpp")
args = ap.parse_args()
skip = set(filter(None, args.skip.split(",")))
TEXT = "The committee reviewed 42 proposals on energy use in small clinics and schools. "
results = {}

# --- oae -------------------------------------------------------------------------------
out = subprocess.run(
    [args.oae, "models", "bench", args.gguf, "--json", "--threads", str(args.threads),
     "--reps", str(args.reps), "--prompt-tokens", str(args.prompt_tokens),
     "--decode-tokens", str(args.decode_tokens)],
    check=True, capture_output=True, text=True).stdout
o = json.loads(out)
results["oae (f32)"] = {"prefill_tok_s": o["prefill_tok_s"]["median"], "decode_tok_s": o["decode_tok_s"]["median"]}
roofline = o["decode_roofline_tok_s"]

# --- PyTorch + transformers -------------------------------------------------------------
if "torch" not in skip:
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
    results[f"PyTorch {torch.__version__} + transformers (f32)"] = {
        "prefill_tok_s": statistics.median(pre[1:]), "decode_tok_s": statistics.median(dec[1:])}

# --- llama.cpp --------------------------------------------------------------------------
if "llama.cpp" not in skip:
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
    results[f"llama.cpp {llama_cpp.__version__} (Q4_1, native)"] = {
        "prefill_tok_s": statistics.median(pre[1:]), "decode_tok_s": statistics.median(dec[1:])}

base = results["oae (f32)"]["decode_tok_s"]
print(f"threads {args.threads}, prompt {args.prompt_tokens} tokens, decode {args.decode_tokens} tokens, median of {args.reps}")
print(f"oae F32 decode roofline on this machine: {roofline:.1f} tok/s")
print(f"{'runtime':<48} {'prefill tok/s':>14} {'decode tok/s':>13} {'oae decode / this':>18}")
for name, r in results.items():
    print(f"{name:<48} {r['prefill_tok_s']:>14.1f} {r['decode_tok_s']:>13.1f} {base / r['decode_tok_s']:>17.2f}x")
print(json.dumps(results))
