"""Issue 5's figure, measured so that run-to-run drift cancels: the dispatched call (backend=None)
without timestep tables, with a bias table and per-row t, and with the table and one scalar t,
timed in interleaved rounds (each round times all three, L2 flushed, bench_kernels.time_fn);
reported as the median over rounds and the overhead of each table form against the plain call.
One bench_kernels series per label times each once, minutes apart, and its rows drifted 2-5%.

    python benchmarks/debug/probe_ts_overhead.py --out DIR [--ms 1 32 256] [--rounds 5]
"""
import argparse
import datetime
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import quantdllm_kernels as qd  # noqa: E402
from bench_kernels import time_fn, with_tables  # noqa: E402
from quantdllm_kernels.backends.triton_backend import pack_for  # noqa: E402
from quantdllm_kernels.dispatch import select_backend  # noqa: E402
from quantdllm_kernels.triton.ops import triton_lut_matmul  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="*", default=["4096x12288", "4096x4096"], help="KxN")
    ap.add_argument("--ms", nargs="*", type=int, default=[1, 32, 256])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--direct", action="store_true", help="also the Triton op called directly, per-row t")
    ap.add_argument("--out", default="benchmarks/results")
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
            t_rows = torch.rand(M, generator=gen).cuda()
            t_one = torch.tensor(0.4).cuda()
            fns = {"plain": lambda: qd.lut_matmul(x, qw),
                   "per-row t": lambda: qd.lut_matmul(x, qts, timestep=t_rows),
                   "one t": lambda: qd.lut_matmul(x, qts, timestep=t_one)}
            if a.direct:   # the Triton op itself, the dispatch's Python around it bypassed (a bisection)
                tw = pack_for(qts)
                ts = (t_rows, qts.timestep.boundaries.float().contiguous(), qts.timestep.bias.contiguous())
                fns["per-row t, direct"] = lambda: triton_lut_matmul(x, tw, None, torch.float16, ts=ts)
            us = {k: [] for k in fns}
            for _ in range(a.rounds):
                for k, fn in fns.items():
                    us[k].append(time_fn(fn)["us"])
            med = {k: statistics.median(v) for k, v in us.items()}
            picked = {k: select_backend(q, x, None, tt).name
                      for k, q, tt in (("plain", qw, None), ("per-row t", qts, t_rows), ("one t", qts, t_one))}
            r = {"K": K, "N": N, "M": M, "backend": picked, "median_us": med, "rounds_us": us,
                 "overhead_pct": {k: 100 * (med[k] / med["plain"] - 1) for k in med if k != "plain"}}
            rows.append(r)
            print(f"{K}x{N} M={M:4d} plain {med['plain']:7.1f} µs | per-row t {med['per-row t']:7.1f} "
                  f"({r['overhead_pct']['per-row t']:+.1f}%) | one t {med['one t']:7.1f} "
                  f"({r['overhead_pct']['one t']:+.1f}%) | {picked}"
                  + (f" | direct per-row {med['per-row t, direct']:7.1f}" if a.direct else ""), flush=True)
    os.makedirs(a.out, exist_ok=True)
    name = torch.cuda.get_device_name().replace(" ", "_")
    with open(os.path.join(a.out, f"probe_ts_overhead_{name}_{datetime.date.today()}.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "rounds": a.rounds, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
