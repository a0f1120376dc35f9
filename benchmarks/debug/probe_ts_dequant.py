"""Issue 5 probe (GPU): the pieces of the per-row timestep bias on the Triton dequant + cuBLAS path
(M >= 256), each timed as the tables are (bench_kernels.time_fn: L2 flushed, best of eager / graph).

The whole path costs +5.3-5.4% at M = 256 on (4096, 12288) (77.8 -> 82.0 µs, H200) with the one-hot
columns written by their own launch and, as well, with them folded into the dequant launch
(HAS_XCAT): the folded launch did not move it. This splits it: dequant alone vs dequant + [x, onehot],
cuBLAS at K vs K + 64 / K + 128 one-hot columns, and the whole path plain vs +ts; since the
seventh session also the plain path's pieces (W (N, K), F.linear's orientation) beside them.

    cd benchmarks && python debug/probe_ts_dequant.py --out DIR
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
from quantdllm_kernels.backends.triton_backend import pack_for  # noqa: E402
from quantdllm_kernels.triton.ops import dequantize_t, triton_lut_matmul  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="*", default=["4096x12288", "4096x4096"], help="KxN")
    ap.add_argument("--ms", nargs="*", type=int, default=[256, 1024])
    ap.add_argument("--out", default="results")
    args = ap.parse_args()
    dt, rows = torch.float16, []
    cfg = dict(DEQUANT=1, BLOCK_N=128, BLOCK_K=64, SPLIT_K=1, num_warps=4, num_stages=1)
    for shape in args.shapes:
        K, N = map(int, shape.split("x"))
        W = torch.randn(N, K, device="cuda", dtype=dt) * 0.02
        qw = qd.quantize_weight(W, bits=4, group_size=128, method="rtn", lut_dtype=dt)
        qt = with_tables(qw, "ts")
        tw = pack_for(qw)
        bounds = qt.timestep.boundaries.float().contiguous()
        tb = qt.timestep.bias.contiguous()
        for M in args.ms:
            x = torch.randn(M, K, device="cuda", dtype=dt)
            t = torch.rand(M, device="cuda")
            ts = (t, bounds, tb)
            wt = dequantize_t(tw, dt, cfg)
            wnk = dequantize_t(tw, dt, cfg, rows_nk=True)
            wnk64 = torch.randn(N, K + 64, device="cuda", dtype=dt)
            xa64 = torch.randn(M, K + 64, device="cuda", dtype=dt)
            cases = {
                "path plain": lambda: triton_lut_matmul(x, tw, None, dt, config=cfg),
                "path +ts": lambda: triton_lut_matmul(x, tw, None, dt, config=cfg, ts=ts),
                "dequant (K, N)": lambda: dequantize_t(tw, dt, cfg),
                "mm K": lambda: torch.mm(x, wt),
                # the plain path's own pieces since the seventh session: W (N, K), F.linear's orientation
                "dequant (N, K)": lambda: dequantize_t(tw, dt, cfg, rows_nk=True),
                "mm K, W (N, K)": lambda: torch.mm(x, wnk),
                "mm K+64, W (N, K+64)": lambda: torch.mm(xa64, wnk64.t()),
            }
            for tp in (64, 128):
                wta = torch.empty((K + tp, N), device="cuda", dtype=dt)
                xa = torch.empty((M, K + tp), device="cuda", dtype=dt)
                dequantize_t(tw, dt, cfg, ts, out=wta, cat=(x, xa, tp))
                cases[f"dequant + cat K+{tp}"] = (lambda wta=wta, xa=xa, tp=tp:
                                                  dequantize_t(tw, dt, cfg, ts, out=wta, cat=(x, xa, tp)))
                cases[f"mm K+{tp}"] = lambda wta=wta, xa=xa: torch.mm(xa, wta)
            for name, fn in cases.items():
                r = time_fn(fn)
                rows.append(dict(shape=shape, M=M, case=name, **r))
                print(f"{shape:>10s} M={M:5d} {name:22s} {r['us']:8.2f} us (eager {r['eager_us']:.2f}, "
                      f"graph {r['graph_us'] or float('nan'):.2f})", flush=True)
    os.makedirs(args.out, exist_ok=True)
    dev = torch.cuda.get_device_name().replace(" ", "_")
    path = os.path.join(args.out, f"probe_ts_dequant_{dev}_{datetime.date.today()}.json")
    with open(path, "w") as fh:
        json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
