"""Where the large-M time goes (dequantize once, then cuBLAS): cuBLAS on W (N, K) as F.linear uses it
("TN") vs on W^T (K, N) as the Triton path feeds it ("NN"), the dequant launches alone, and both
backends' whole calls. L2 flushed, median (bench_kernels.time_fn).

    python benchmarks/debug/probe_large_m.py --out DIR [--ms 512 1024 4096]
"""
import argparse
import datetime
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import quantdllm_kernels as qd  # noqa: E402
from bench_kernels import time_fn  # noqa: E402
from quantdllm_kernels.triton.layout import pack_for_triton  # noqa: E402
from quantdllm_kernels.triton.ops import dequantize_t  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="4096x12288", help="KxN")
    ap.add_argument("--ms", nargs="*", type=int, default=[512, 1024, 4096])
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    K, N = map(int, a.shape.split("x"))
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(N, K, generator=gen).half().cuda()
    Wt = W.t().contiguous()
    qw = qd.quantize_weight(W, bits=4, group_size=128, method="rtn")
    tw = pack_for_triton(qw)
    rows = []

    def rec(name, M, fn):
        r = time_fn(fn)
        rows.append({"M": M, "what": name, "us": r["us"]})
        print(f"{a.shape} M={M:5d} {name:28s} {r['us']:8.1f} us", flush=True)

    rec("triton dequantize_t (K,N)", 0, lambda: dequantize_t(tw, torch.float16))
    for M in a.ms:
        x = torch.randn(M, K, generator=gen).half().cuda()
        rec("cublas F.linear W (N,K)", M, lambda: F.linear(x, W))
        rec("cublas mm W^T (K,N)", M, lambda: torch.mm(x, Wt))
        rec("triton lut_matmul", M, lambda: qd.lut_matmul(x, qw, backend="triton"))
        rec("cuda lut_matmul", M, lambda: qd.lut_matmul(x, qw, backend="cuda"))
    name = torch.cuda.get_device_name().replace(" ", "_")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, f"probe_large_m_{name}_{datetime.date.today()}.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "shape": [K, N], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
