"""Issue 4 probe (GPU): the Triton large-M path, W^T dequantized whole then one cuBLAS GEMM, against
its chunked form (CHUNK_N: W^T chunk by chunk through an L2-sized buffer, each chunk's GEMM writing
its columns of y), beside fp16 cuBLAS on the same shape. Timed as the tables are
(bench_kernels.time_fn: L2 flushed, best of eager / graph), w4 rtn, g = 128.

    cd benchmarks && python debug/probe_chunked_dequant.py --out DIR
"""
import argparse
import datetime
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import quantdllm_kernels as qd  # noqa: E402
from bench_kernels import time_fn  # noqa: E402
from quantdllm_kernels.backends.triton_backend import pack_for  # noqa: E402
from quantdllm_kernels.triton.ops import CHUNK_BUFFER_MB, triton_lut_matmul  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="*", default=["4096x12288", "4096x4096", "12288x4096"], help="KxN")
    ap.add_argument("--ms", nargs="*", type=int, default=[512, 1024, 4096])
    ap.add_argument("--out", default="results")
    args = ap.parse_args()
    dt, rows = torch.float16, []
    for shape in args.shapes:
        K, N = map(int, shape.split("x"))
        W = torch.randn(N, K, device="cuda", dtype=dt) * 0.02
        tw = pack_for(qd.quantize_weight(W, bits=4, group_size=128, method="rtn", lut_dtype=dt))
        base = dict(DEQUANT=1, BLOCK_N=128, BLOCK_K=64, SPLIT_K=1, num_warps=4, num_stages=1)
        cfgs = {"whole": base}
        for mb in CHUNK_BUFFER_MB + (6, 36):
            nc = max(128, (mb << 20) // (2 * K) // 128 * 128)
            if nc < N:
                cfgs[f"chunk {nc} ({mb} MB)"] = dict(base, CHUNK_N=nc)
        wt = W.t().contiguous()
        for M in args.ms:
            x = torch.randn(M, K, device="cuda", dtype=dt)
            cases = {"fp16 cublas": lambda: torch.mm(x, wt)}
            for name, cfg in cfgs.items():
                cases[name] = lambda cfg=cfg: triton_lut_matmul(x, tw, None, dt, config=cfg)
            for name, fn in cases.items():
                r = time_fn(fn)
                rows.append(dict(shape=shape, M=M, case=name, **r))
                print(f"{shape:>10s} M={M:5d} {name:24s} {r['us']:8.1f} us", flush=True)
    os.makedirs(args.out, exist_ok=True)
    dev = torch.cuda.get_device_name().replace(" ", "_")
    with open(os.path.join(args.out, f"probe_chunked_dequant_{dev}_{datetime.date.today()}.json"), "w") as fh:
        json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
