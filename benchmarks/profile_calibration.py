"""Where DAQ and GPTQ spend their time on LLaDA-8B-shaped layers (GPU): torch.profiler table of
the top CUDA ops and the wall time per call. Random W, H from correlated random activations.

    python benchmarks/profile_calibration.py
"""
import time

import torch
from torch.profiler import ProfilerActivity, profile

from quantdllm_kernels.calibrate import damped_hessian, daq_quantize, gptq_quantize


def layer(N, K, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    X = torch.randn(8192, K, device="cuda", generator=g)
    X = X * torch.exp(torch.randn(K, device="cuda", generator=g))
    return torch.randn(N, K, device="cuda", generator=g) * 0.02, damped_hessian(X)


def main():
    for N, K in ((12288, 4096), (4096, 12288)):
        W, H = layer(N, K)
        for name, fn in (("daq", lambda: daq_quantize(W, H, bits=2, group_size=128, history=hist)),
                         ("gptq", lambda: gptq_quantize(W, H, bits=2, group_size=128))):
            hist = []
            fn()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                hist = []
                fn()
                torch.cuda.synchronize()
            print(f"\n{name} ({N}, {K}): {time.perf_counter() - t0:.2f} s (profiled), sweeps {max(len(hist) - 1, 0)}")
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=50))
            print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=8, max_name_column_width=50))


if __name__ == "__main__":
    main()
