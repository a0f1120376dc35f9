"""Issue 5 probe: where do the 1.5-2.5 µs a timestep table costs lut_mma at M = 16-64 come from?
ncu (caches flushed per kernel, clocks locked) times the plain and +ts kernels equal; the benchmark
(one call per graph replay, L2 flushed before it) does not. This times both ways side by side:

- flushed: bench_kernels.time_fn (median, L2 flushed, best of eager / graph), as in the tables;
- back to back: one CUDA graph of R calls on the same weight, no flush (t, boundaries and the table
  stay in L2), µs per call.

If the gap stays back to back, it is in the kernel or its launch; if it goes, it is the first
dependent loads after the flush (t / boundaries / table from HBM).

    cd benchmarks && python debug/probe_ts_gap.py --out DIR
"""
import argparse
import datetime
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import quantdllm_kernels as qd  # noqa: E402
from bench_kernels import time_fn, with_tables  # noqa: E402
from bench_rotating import graph_us  # noqa: E402


def back_to_back_us(fn, R=20):
    return graph_us([fn] * R, reps=15)  # one graph of R calls, µs per call


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="*", default=["4096x12288", "4096x4096"], help="KxN")
    ap.add_argument("--ms", nargs="*", type=int, default=[1, 16, 32, 64])
    ap.add_argument("--out", default="results")
    a = ap.parse_args()
    gen = torch.Generator().manual_seed(0)
    rows = []
    for shape in a.shapes:
        K, N = map(int, shape.split("x"))
        qw = qd.quantize_weight(torch.randn(N, K, generator=gen).half(), bits=4, group_size=128,
                                method="rtn").to("cuda")
        qts = with_tables(qw, "ts")
        for M in a.ms:
            x = torch.randn(M, K, generator=gen).half().cuda()
            t = torch.rand(M, generator=gen).cuda()
            plain = lambda: qd.lut_matmul(x, qw, backend="cuda")  # noqa: E731
            ts = lambda: qd.lut_matmul(x, qts, timestep=t, backend="cuda")  # noqa: E731
            r = {"K": K, "N": N, "M": M,
                 "flushed_us": time_fn(plain)["us"], "flushed_ts_us": time_fn(ts)["us"],
                 "b2b_us": back_to_back_us(plain), "b2b_ts_us": back_to_back_us(ts)}
            rows.append(r)
            print(f"{K}x{N} M={M:3d}  flushed {r['flushed_us']:6.1f} -> {r['flushed_ts_us']:6.1f} "
                  f"({r['flushed_ts_us'] - r['flushed_us']:+.2f})   back-to-back {r['b2b_us']:6.1f} -> "
                  f"{r['b2b_ts_us']:6.1f} ({r['b2b_ts_us'] - r['b2b_us']:+.2f}) µs", flush=True)
    os.makedirs(a.out, exist_ok=True)
    name = torch.cuda.get_device_name().replace(" ", "_")
    with open(os.path.join(a.out, f"probe_ts_gap_{name}_{datetime.date.today()}.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
