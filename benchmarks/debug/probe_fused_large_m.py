"""Is a fused large-M GEMM worth building? Times, on one shape (4-bit rtn, g = 128), fp16 cuBLAS,
the shipped Triton path (the tuner's choice: dequantize once + cuBLAS), the package's fused
lut_gemm_kernel at fixed large tiles, and the swapped-operand probe kernels of swap_ab_kernels.py.
Each fused result is checked against F.linear on the dequantized weight first. L2 flushed, median.

    python benchmarks/debug/probe_fused_large_m.py --out DIR [--ms 256 512 1024 4096]
"""
import argparse
import datetime
import json
import os
import sys

import torch
import torch.nn.functional as F
import triton

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
import quantdllm_kernels as qd  # noqa: E402
from bench_kernels import time_fn  # noqa: E402
from quantdllm_kernels.triton.layout import pack_for_triton  # noqa: E402
from quantdllm_kernels.triton.ops import triton_lut_matmul  # noqa: E402
import swap_ab_kernels as sk  # noqa: E402

FUSED = [(128, 128, 64, 8, 3), (128, 256, 64, 8, 3), (256, 128, 64, 8, 3), (64, 256, 64, 8, 4), (128, 128, 64, 4, 4)]
SWAP = [(128, 128, 64, 8, 3), (128, 128, 64, 8, 4), (256, 128, 64, 8, 3), (128, 256, 64, 8, 2), (64, 128, 64, 4, 4),
        (128, 64, 64, 4, 4)]


def swap_call(kern, x, tw, bm, bn, bk, nw, ns):
    M, K = x.shape
    y = torch.empty(M, tw.N, dtype=x.dtype, device=x.device)
    grid = (triton.cdiv(tw.N, bn), triton.cdiv(M, bm))
    kern[grid](x, y, tw.plane0, tw.scale, tw.zero, tw.lut, M, tw.N, K, tw.group_size, BITS=4, BLOCK_M=bm,
               BLOCK_N=bn, BLOCK_K=bk, num_warps=nw, num_stages=ns)
    return y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="4096x12288", help="KxN")
    ap.add_argument("--ms", nargs="*", type=int, default=[256, 512, 1024, 4096])
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    K, N = map(int, a.shape.split("x"))
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(N, K, generator=gen).half().cuda()
    qw = qd.quantize_weight(W, bits=4, group_size=128, method="rtn")
    tw = pack_for_triton(qw)
    Wd = qd.dequantize(qw).half().cuda()
    rows = []

    def rec(name, M, fn, ref=None):
        if ref is not None:
            try:
                err = ((fn().float() - ref).abs().max() / ref.abs().max()).item()
            except Exception as e:  # a config that does not compile or fit
                print(f"M={M:5d} {name:34s} failed: {type(e).__name__}: {str(e)[:120]}", flush=True)
                rows.append({"M": M, "what": name, "error": str(e)[:300]})
                return
            if not err < 1e-2:
                print(f"M={M:5d} {name:34s} WRONG rel err {err:.3g}", flush=True)
                rows.append({"M": M, "what": name, "wrong": err})
                return
        r = time_fn(fn)
        rows.append({"M": M, "what": name, "us": r["us"]})
        print(f"{a.shape} M={M:5d} {name:34s} {r['us']:8.1f} us", flush=True)

    for M in a.ms:
        x = torch.randn(M, K, generator=gen).half().cuda()
        ref = F.linear(x, Wd).float()
        rec("fp16 F.linear", M, lambda: F.linear(x, W))
        rec("triton lut_matmul (tuned)", M, lambda: qd.lut_matmul(x, qw, backend="triton"))
        x2 = x.reshape(-1, K)
        for bm, bn, bk, nw, ns in FUSED:
            cfg = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=1, num_warps=nw, num_stages=ns)
            rec(f"fused {bm}x{bn}x{bk} w{nw} s{ns}", M,
                lambda cfg=cfg: triton_lut_matmul(x2, tw, None, torch.float16, config=cfg), ref)
        for kern in (sk.swap_gemm, sk.swap_gemm_t):
            for c in SWAP:
                rec(f"{kern.__name__} {c[0]}x{c[1]}x{c[2]} w{c[3]} s{c[4]}", M,
                    lambda c=c, kern=kern: swap_call(kern, x, tw, *c), ref)
    name = torch.cuda.get_device_name().replace(" ", "_")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, f"probe_fused_large_m_{name}_{datetime.date.today()}.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "shape": [K, N], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
