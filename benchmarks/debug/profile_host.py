"""The host (Python) time of one eager call, and where it goes: ``lut_matmul`` with the backend
named and chosen (backend=None), a ``QuantLinear`` forward, and the raw op, each enqueue-only timed
over many calls; then cProfile of the named-backend call (tottime order). An eager call whose host
time exceeds its kernel's leaves the GPU idle between layers (probe_op_gap: (4096, 4096) M = 256,
op eager 33.3 µs against 26.4 in graph replay; host 52 µs against the raw op's 14).

    python benchmarks/debug/profile_host.py [--shape 4096x4096] [--m 256] [--calls 2000]
"""
import argparse
import cProfile
import io
import os
import pstats
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import quantdllm_kernels as qd  # noqa: E402
from quantdllm_kernels.backends import cuda_backend  # noqa: E402
from probe_op_gap import host_us  # noqa: E402  (this directory: the script's own)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="4096x4096", help="KxN")
    ap.add_argument("--m", type=int, default=256)
    ap.add_argument("--calls", type=int, default=2000)
    a = ap.parse_args()
    K, N = map(int, a.shape.split("x"))
    W = torch.randn(N, K, device="cuda", dtype=torch.float16) * 0.02
    qw = qd.quantize_weight(W, bits=4, group_size=128, method="rtn", lut_dtype=torch.float16)
    x = torch.randn(a.m, K, device="cuda", dtype=torch.float16)
    lin = qd.QuantLinear(qw).to("cuda")
    mw = cuda_backend.mma_pack(qw, torch.float16)
    fns = {"lut_matmul cuda": lambda: qd.lut_matmul(x, qw, backend="cuda"),
           "lut_matmul None": lambda: qd.lut_matmul(x, qw),
           "raw lut_wgmma": lambda: torch.ops.quantdllm.lut_wgmma(x, mw.codes, mw.sz, mw.N, mw.K, mw.bits, mw.group_shift,
                                                                  mw.in_scale, None, None, None, None),
           "F.linear fp16": lambda: torch.nn.functional.linear(x, W)}
    fns["QuantLinear"] = lambda: lin(x)
    for name, f in fns.items():
        print(f"host µs per eager call, {name:18s}: {host_us(f, a.calls):7.2f}", flush=True)
    f = fns["lut_matmul cuda"]
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(a.calls):
        f()
    pr.disable()
    torch.cuda.synchronize()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(30)
    print(s.getvalue())


if __name__ == "__main__":
    main()
