"""Probe (GPU): what a per-row timestep bias costs on the dequant + cuBLAS path, by variant.

Times the pieces at (K, N) = (4096, 12288), M = 256, fp16, CUDA-graph replay with the L2 flushed:
the GEMM alone in both weight orientations, with K padded by 8 / 64 one-hot columns, with a
gathered (M, N) bias as addmm's C, and the standalone passes (ts_bias_add_, the one-hot concat,
timestep_lookup). Decides how the bias joins the cuBLAS path (benchmarks/NOTES.md, issue 5)."""
import argparse
import json

import torch
import torch.nn.functional as F

import quantdllm_kernels as qd
from quantdllm_kernels.timing import median_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ms", type=int, nargs="*", default=[256, 1024])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    K, N, T = 4096, 12288, 8
    dev, dt = "cuda", torch.float16
    bounds = torch.linspace(0, 1, T + 1, device=dev)[1:-1].contiguous()
    tb = torch.randn(T, N, device=dev, dtype=dt) * 1e-3
    rows = []
    for M in args.ms:
        x = torch.randn(M, K, device=dev, dtype=dt)
        t = torch.rand(M, device=dev)
        wt = torch.randn(K, N, device=dev, dtype=dt) * 0.02
        w = wt.t().contiguous()
        cases = {"mm x@Wt (K,N)": lambda: torch.mm(x, wt), "linear x,W (N,K)": lambda: F.linear(x, w)}
        for pad in (8, 64):
            xa = torch.randn(M, K + pad, device=dev, dtype=dt)
            wta = torch.randn(K + pad, N, device=dev, dtype=dt)
            wa = wta.t().contiguous()
            cases[f"mm K+{pad} (K,N)"] = lambda xa=xa, wta=wta: torch.mm(xa, wta)
            cases[f"linear K+{pad} (N,K)"] = lambda xa=xa, wa=wa: F.linear(xa, wa)
        G = torch.randn(M, N, device=dev, dtype=dt)
        cases["addmm G + x@Wt"] = lambda: torch.addmm(G, x, wt)
        cases["addmm G + x@W^T (N,K)"] = lambda: torch.addmm(G, x, w.t())
        y = torch.randn(M, N, device=dev, dtype=dt)
        if hasattr(torch.ops.quantdllm, "ts_bias_add_"):
            cases["ts_bias_add_ pass"] = lambda: torch.ops.quantdllm.ts_bias_add_(y, t, bounds, tb)
        cases["timestep_lookup gather"] = lambda: qd.timestep_lookup(tb, t, bounds)
        cases["tb[searchsorted] torch"] = lambda: tb.index_select(0, torch.searchsorted(bounds, t, right=True))
        # the "onehot cat K+8 / K+64" rows of results/probe_ts_cublas_* timed ts_onehot_cat_kernel, since
        # folded into lut_dequant_kernel's launch (HAS_XCAT); the rows above still time the GEMM's side
        for name, fn in cases.items():
            us = median_ms(fn, 40, 10, graph=True)[0] * 1e3
            rows.append({"M": M, "case": name, "us": us})
            print(f"M={M:5d} {name:28s} {us:8.2f} us", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"device": torch.cuda.get_device_name(), "K": K, "N": N, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
