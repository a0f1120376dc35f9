"""lut_mma launch-plan knobs (QUANTDLLM_MMA_WN / _KSPLIT / _MAX_NT) at small M, timed like
bench_rotating.py (weight copies rotated inside one CUDA graph, no flush). The knobs are read per
launch, so one process sweeps them; each setting is captured in its own graph.

    python benchmarks/debug/probe_plan_knobs.py --out DIR [--ms 1 8] [--bits 4 2]
"""
import argparse
import datetime
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import quantdllm_kernels as qd  # noqa: E402
from bench_kernels import measure_bandwidth  # noqa: E402
from bench_rotating import graph_us  # noqa: E402

KNOBS = [{}, {"WN": "2"}, {"KSPLIT": "2"}, {"KSPLIT": "3"}, {"KSPLIT": "4"},
         {"WN": "2", "KSPLIT": "2"}, {"WN": "2", "KSPLIT": "3"}, {"WN": "2", "KSPLIT": "4"}, {"WN": "4"},
         {"WN": "4", "KSPLIT": "4"}]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="*", default=["4096x12288", "4096x4096"])
    ap.add_argument("--ms", nargs="*", type=int, default=[1, 8])
    ap.add_argument("--bits", nargs="*", type=int, default=[4, 2])
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    bw = measure_bandwidth()
    gen = torch.Generator().manual_seed(0)
    rows = []
    for shape in a.shapes:
        K, N = map(int, shape.split("x"))
        R = max(8, -(-160 * 2**20 // (N * K // 2)))  # copies: >= 160 MB of 4-bit weights, well past L2
        for bits in a.bits:
            qs = [qd.quantize_weight(torch.randn(N, K, generator=gen).cuda(), bits=bits, group_size=128, method="rtn")
                  for _ in range(R)]
            for M in a.ms:
                x = torch.randn(M, K, generator=gen).half().cuda()
                for knob in KNOBS:
                    for k in ("WN", "KSPLIT", "MAX_NT"):
                        os.environ.pop(f"QUANTDLLM_MMA_{k}", None)
                    for k, v in knob.items():
                        os.environ[f"QUANTDLLM_MMA_{k}"] = v
                    us = graph_us([lambda q=q: qd.lut_matmul(x, q, backend="cuda") for q in qs])
                    roof = (qs[0].nbytes + 2 * M * (K + N)) / bw * 1e6
                    label = ",".join(f"{k}={v}" for k, v in knob.items()) or "plan"
                    rows.append({"shape": shape, "bits": bits, "M": M, "knobs": label, "us": us,
                                 "pct_hbm": 100 * roof / us})
                    print(f"{shape:11s} w{bits} M={M:3d} {label:18s} {us:7.2f} us {100 * roof / us:5.1f}%", flush=True)
    for k in ("WN", "KSPLIT", "MAX_NT"):
        os.environ.pop(f"QUANTDLLM_MMA_{k}", None)
    name = torch.cuda.get_device_name().replace(" ", "_")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, f"probe_plan_knobs_{name}_{datetime.date.today()}.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "copy_bw": bw, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
