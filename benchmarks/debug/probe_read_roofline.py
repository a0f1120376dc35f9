"""What the bench's own method allows at M = 1: the fastest plain read of exactly the packed bytes.

Issue 4's M = 1 targets are a share of the HBM roofline, bytes / the measured copy bandwidth
(bench_kernels.measure_bandwidth). The bench times each call after an L2 flush (Triton's do_bench:
a 256 MB write just before it) in a CUDA graph. This probe times, the same way, kernels that do
nothing but read the same number of bytes -- a Triton streaming read (best of a few grid / block
shapes), torch's sum over the bytes, and half of a device copy of them -- so the ceiling the method
itself puts on "% of roofline" at each size is measured, not assumed.

    python benchmarks/debug/probe_read_roofline.py --out DIR [--sizes-mb 26.7 20.4 14.2 ...]
"""
import argparse
import json
import os
import sys

import torch
import triton
import triton.language as tl

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bench_kernels import measure_bandwidth, time_fn  # noqa: E402


@triton.jit
def _xor(a, b):
    return a ^ b


@triton.jit
def _read_kernel(src, out, n, BLOCK: tl.constexpr, ITERS: tl.constexpr):
    # each program reads ITERS consecutive blocks of int32 and keeps an xor, so no load is dead
    pid = tl.program_id(0)
    base = pid * BLOCK * ITERS
    acc = tl.zeros([BLOCK], dtype=tl.int32)
    for i in range(ITERS):
        offs = base + i * BLOCK + tl.arange(0, BLOCK)
        acc ^= tl.load(src + offs, mask=offs < n, other=0, eviction_policy="evict_first")
    tl.store(out + pid, tl.reduce(acc, 0, _xor))


def triton_read(buf, out, block, iters, warps):
    n = buf.numel()
    grid = (triton.cdiv(n, block * iters),)
    return lambda: _read_kernel[grid](buf, out, n, BLOCK=block, ITERS=iters, num_warps=warps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".")
    # packed bytes of the bench's M = 1 rows: (4096, 12288) w4 / w3 / w2 (4.25 / 3.25 / 2.25 bits
    # a weight), (4096, 4096) w4 / w2, and fp16 (4096, 12288)
    ap.add_argument("--sizes-mb", type=float, nargs="+", default=[26.74, 20.45, 14.16, 8.91, 4.72, 100.66])
    ap.add_argument("--reps-ms", type=float, default=40)
    args = ap.parse_args()
    bw = measure_bandwidth()
    dev = torch.cuda.get_device_name()
    print(f"device {dev} | measured copy bandwidth {bw / 1e12:.2f} TB/s")
    rows = []
    for mb in args.sizes_mb:
        nbytes = int(mb * 1e6) // 16 * 16
        buf = torch.randint(-2**31, 2**31 - 1, (nbytes // 4,), dtype=torch.int32, device="cuda")
        dst = torch.empty_like(buf)
        roof_us = nbytes / bw * 1e6
        cands = {}
        for block, iters, warps in [(1024, 8, 4), (2048, 8, 8), (4096, 4, 8), (1024, 16, 4), (2048, 16, 8),
                                    (4096, 16, 8), (8192, 8, 16)]:
            out = torch.empty(triton.cdiv(buf.numel(), block * iters), dtype=torch.int32, device="cuda")
            cands[f"triton read b{block} i{iters} w{warps}"] = triton_read(buf, out, block, iters, warps)
        cands["torch sum (int32 bytes)"] = lambda: buf.sum()
        res = {}
        for name, fn in cands.items():
            res[name] = time_fn(fn, args.reps_ms)["us"]
        copy_us = time_fn(lambda: dst.copy_(buf), args.reps_ms)["us"]
        best = min((v, k) for k, v in res.items() if k.startswith("triton"))
        row = {"mb": nbytes / 1e6, "roofline_us": roof_us, "copy_us": copy_us, "best_triton_read": best[1],
               "best_triton_read_us": best[0], "torch_sum_us": res["torch sum (int32 bytes)"], "all": res}
        rows.append(row)
        print(f"{nbytes / 1e6:8.2f} MB  roofline {roof_us:6.2f} us | best read {best[0]:6.2f} us "
              f"= {100 * roof_us / best[0]:5.1f}% ({best[1]}) | torch sum {row['torch_sum_us']:6.2f} us "
              f"= {100 * roof_us / row['torch_sum_us']:5.1f}% | copy {copy_us:6.2f} us (read + write "
              f"{200 * roof_us / copy_us:5.1f}%)")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "probe_read_roofline.json"), "w") as f:
        json.dump({"device": dev, "copy_bw": bw, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
