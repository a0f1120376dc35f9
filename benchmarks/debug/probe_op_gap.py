"""Where the bench's large-M figure and the kernel's own time part: the op as the bench calls it
(``lut_matmul(backend="cuda")``), the raw ``torch.ops.quantdllm.lut_wgmma`` on the same packed
weight, and fp16 cuBLAS, timed in interleaved rounds (bench_kernels.time_fn: L2 flushed, eager and
CUDA-graph replay), plus the host time of one eager call (enqueue only) and the kernels one call
launches (torch.profiler, device durations). The sixteenth session's bench read 34.2 µs at (4096,
4096) M = 512 where debug/wgmma_waves.cu read 32.7 for the same launch.

    python benchmarks/debug/probe_op_gap.py --out DIR [--shapes 4096x4096 ...] [--ms 512 1024] [--rounds 3]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import quantdllm_kernels as qd  # noqa: E402
from bench_kernels import time_fn  # noqa: E402
from quantdllm_kernels.backends import cuda_backend  # noqa: E402


def kernels_of(fn):
    """(name, device µs) of each kernel one call of fn launches."""
    from torch.profiler import ProfilerActivity, profile
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        fn()
        torch.cuda.synchronize()
    out = []
    for e in p.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            out.append((e.name[:60], round(e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total, 2)))
    return out


def host_us(fn, n=200):
    """Mean host microseconds to enqueue one call (the GPU drained before and after)."""
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) / n * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="*", default=["4096x4096", "4096x12288", "12288x4096"], help="KxN")
    ap.add_argument("--ms", nargs="*", type=int, default=[512, 1024])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for shape in a.shapes:
        K, N = map(int, shape.split("x"))
        W = torch.randn(N, K, device="cuda", generator=gen, dtype=torch.float16) * 0.02
        qw = qd.quantize_weight(W, bits=4, group_size=128, method="rtn", lut_dtype=torch.float16)
        mw = cuda_backend.mma_pack(qw, torch.float16)
        for M in a.ms:
            x = torch.randn(M, K, device="cuda", generator=gen, dtype=torch.float16)
            fns = {
                "fp16": lambda: F.linear(x, W),
                "op": lambda: qd.lut_matmul(x, qw, backend="cuda"),
                "raw": lambda: torch.ops.quantdllm.lut_wgmma(x, mw.codes, mw.sz, mw.N, mw.K, mw.bits, mw.group_shift,
                                                             mw.in_scale, None, None, None, None),
            }
            t = {k: [] for k in fns}
            for _ in range(a.rounds):
                for k, f in fns.items():
                    t[k].append(time_fn(f, 40))
            row = {"shape": [K, N], "M": M}
            for k in fns:
                row[k] = {f: statistics.median(r[f] for r in t[k]) for f in ("us", "eager_us", "graph_us")}
                row[k]["host_us"] = host_us(fns[k])
            row["kernels_op"] = kernels_of(fns["op"])
            rows.append(row)
            r = row
            print(f"({K}, {N}) M = {M}: fp16 {r['fp16']['us']:.2f} | op {r['op']['us']:.2f} (eager {r['op']['eager_us']:.2f}, "
                  f"graph {r['op']['graph_us']:.2f}) | raw {r['raw']['us']:.2f} (eager {r['raw']['eager_us']:.2f}, graph "
                  f"{r['raw']['graph_us']:.2f}) | op/fp16 {r['fp16']['us'] / r['op']['us']:.3f}x raw/fp16 "
                  f"{r['fp16']['us'] / r['raw']['us']:.3f}x | host us fp16 / op / raw {r['fp16']['host_us']:.1f} / "
                  f"{r['op']['host_us']:.1f} / {r['raw']['host_us']:.1f}", flush=True)
            print("   kernels of one op call:", r["kernels_op"], flush=True)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "probe_op_gap.json"), "w") as fh:
        json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
