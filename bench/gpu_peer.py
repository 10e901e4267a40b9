"""Peer reference for oae's GPU decode: Hugging Face transformers generate() on a Llama of the
same shape as bench/gpu/dense.toml's synthetic model (hidden 1024 × 12 layers, heads 16/4, FFN
2816, vocab 32000, random weights), batch 1, greedy, 64-token prompt.

TPOT = (time for 65 new tokens − time for 1) / 64, median of 3 after two warm-up calls.
Prints one PEER line per (dtype, attention) pair.
"""
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

torch.manual_seed(0)
cfg = LlamaConfig(
    vocab_size=32000,
    hidden_size=1024,
    intermediate_size=2816,
    num_hidden_layers=12,
    num_attention_heads=16,
    num_key_value_heads=4,
    max_position_embeddings=2048,
)


def bench(dtype, attn):
    cfg._attn_implementation = attn
    model = LlamaForCausalLM(cfg).to("cuda", dtype=dtype).eval()
    ids = torch.randint(0, 32000, (1, 64), device="cuda")

    def generate(n):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad():
            model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    generate(8)
    generate(65)
    one = statistics.median(generate(1) for _ in range(3))
    many = statistics.median(generate(65) for _ in range(3))
    print(
        f"PEER transformers {__import__('transformers').__version__} torch {torch.__version__} "
        f"{str(dtype).removeprefix('torch.')} {attn}: tpot_ms={(many - one) / 64 * 1e3:.3f}",
        flush=True,
    )
    del model
    torch.cuda.empty_cache()


for dtype in (torch.float32, torch.bfloat16):
    for attn in ("eager", "sdpa"):
        try:
            bench(dtype, attn)
        except Exception as e:  # a missing kernel or an API change: say so, go on
            print(f"PEER failed {dtype} {attn}: {e!r}"[:300], flush=True)
