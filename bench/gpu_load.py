"""Run a command while loading the GPU in bursts, and read NVML's energy counter around it.

    python3 bench/gpu_load.py CMD ARGS...

2 s of back-to-back bf16 8192² matmuls, then 2 s idle, until CMD exits. pynvml's
total-energy counter is read just before CMD starts and just after it ends, so oae's own
gpu:0 energy over its run (its timeline) can be compared with an independent reading of the
same counter over a slightly longer window. Prints one line starting with GPULOAD.
Needs torch and pynvml (bench/gpu-validate.sh skips the load without them).
"""
import subprocess
import sys
import time

import pynvml
import torch

pynvml.nvmlInit()
handle = pynvml.nvmlDeviceGetHandleByIndex(0)
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn_like(a)
torch.cuda.synchronize()
t0, e0 = time.monotonic(), pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
child = subprocess.Popen(sys.argv[1:])
bursts = 0
while child.poll() is None:
    start = time.monotonic()
    while time.monotonic() - start < 2.0 and child.poll() is None:
        for _ in range(10):
            a @ b
        torch.cuda.synchronize()
    bursts += 1
    time.sleep(2.0)
t1, e1 = time.monotonic(), pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
joules = (e1 - e0) / 1000
print(
    f"GPULOAD rc={child.returncode} window_s={t1 - t0:.3f} bursts={bursts} "
    f"pynvml_j={joules:.1f} mean_w={joules / (t1 - t0):.1f}",
    flush=True,
)
sys.exit(child.returncode)
