"""A/B of lut_mma launch plans through the benchmark knobs (QUANTDLLM_MMA_WN, QUANTDLLM_MMA_KSPLIT,
QUANTDLLM_MMA_MAX_NT, QUANTDLLM_MMA_CLUSTER: the K split's reduction, "-ws" / "-cl" plans force the workspace
form / a cluster), interleaved per (shape, M, bits) so clock drift hits every plan alike.
Timing as bench_kernels.py: median µs, L2 flushed, best of eager and graph replay; or, with
--rotating, as bench_rotating.py (weight copies rotated inside one CUDA graph, no flush: small M,
where the flush's write-back weighs most). Each plan is also run with a per-row timestep bias table
(T = 8), the issue-5 overhead under that plan (--no-ts skips it).

    python benchmarks/ab_mma_plan.py --out DIR [--shapes 4096x12288 4096x4096] [--ms 16 32 64]
    python benchmarks/ab_mma_plan.py --out DIR --ms 1 8 --rotating --no-ts --plans default wn2 ks2 ks3 ks4
    python benchmarks/ab_mma_plan.py --out DIR --ms 1 8 --no-ts --plans cl ws ks2-cl ks2-ws --rounds 3
"""
import argparse
import datetime
import json
import os

import torch

import quantdllm_kernels as qd
from bench_kernels import measure_bandwidth, time_fn, with_tables
from bench_rotating import graph_us

# name -> the knobs it sets; "default" sets none (mma_plan's own rule)
PLANS = {"default": {}, "nt4": {"QUANTDLLM_MMA_MAX_NT": "4"}, "nt2": {"QUANTDLLM_MMA_MAX_NT": "2"},
         "wn4": {"QUANTDLLM_MMA_WN": "4"}, "wn4-ks4": {"QUANTDLLM_MMA_WN": "4", "QUANTDLLM_MMA_KSPLIT": "4"},
         "wn2-ks4": {"QUANTDLLM_MMA_KSPLIT": "4"}, "wn2": {"QUANTDLLM_MMA_WN": "2"},
         "ks2": {"QUANTDLLM_MMA_KSPLIT": "2"}, "ks3": {"QUANTDLLM_MMA_KSPLIT": "3"},
         "wn1-ks4": {"QUANTDLLM_MMA_WN": "1", "QUANTDLLM_MMA_KSPLIT": "4"},
         "wn2-ks2": {"QUANTDLLM_MMA_WN": "2", "QUANTDLLM_MMA_KSPLIT": "2"},
         "wn2-ks3": {"QUANTDLLM_MMA_WN": "2", "QUANTDLLM_MMA_KSPLIT": "3"},
         "ks4": {"QUANTDLLM_MMA_KSPLIT": "4"}, "ks5": {"QUANTDLLM_MMA_KSPLIT": "5"},
         "ks8": {"QUANTDLLM_MMA_KSPLIT": "8"}}
# each plan with the K split's reduction forced: "-ws" the workspace form, "-cl" a cluster (<= 8 slices)
for _name, _knobs in list(PLANS.items()):
    for _tag, _v in (("ws", "0"), ("cl", "1")):
        PLANS[f"{_name}-{_tag}" if _name != "default" else _tag] = dict(_knobs, QUANTDLLM_MMA_CLUSTER=_v)
KNOBS = ("QUANTDLLM_MMA_WN", "QUANTDLLM_MMA_KSPLIT", "QUANTDLLM_MMA_MAX_NT", "QUANTDLLM_MMA_CLUSTER")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="*", default=["4096x12288", "4096x4096"], help="KxN")
    ap.add_argument("--ms", nargs="*", type=int, default=[16, 32, 64])
    ap.add_argument("--bits", nargs="*", type=int, default=[4, 2])
    ap.add_argument("--plans", nargs="*", default=["default", "nt4", "nt2", "wn4", "wn4-ks4", "wn2-ks4"],
                    choices=list(PLANS))
    ap.add_argument("--rotating", action="store_true", help="rotate weight copies in one graph, no flush")
    ap.add_argument("--no-ts", action="store_true", help="skip the timestep-table run of each plan")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds of every plan")
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    bw = measure_bandwidth()
    gen = torch.Generator().manual_seed(0)
    rows = []
    for shape in a.shapes:
        K, N = map(int, shape.split("x"))
        copies = max(8, -(-160 * 2**20 // (N * K // 2))) if a.rotating else 1  # >= 160 MB: well past L2
        Ws = [torch.randn(N, K, generator=gen).half() for _ in range(copies)]
        for bits in a.bits:
            qws = [qd.quantize_weight(W, bits=bits, group_size=128, method="rtn").to("cuda") for W in Ws]
            qw = qws[0]
            qts = None if a.no_ts else with_tables(qw, "ts")
            for M in a.ms:
                x = torch.randn(M, K, generator=gen).half().cuda()
                t = torch.rand(M, generator=gen).cuda()
                for rnd, plan in ((r, p) for r in range(a.rounds) for p in a.plans):
                    for k in KNOBS:
                        os.environ.pop(k, None)
                    os.environ.update(PLANS[plan])
                    if a.rotating:
                        plain = graph_us([lambda q=q: qd.lut_matmul(x, q, backend="cuda") for q in qws])
                    else:
                        plain = time_fn(lambda: qd.lut_matmul(x, qw, backend="cuda"))["us"]
                    ts = plain if a.no_ts else time_fn(lambda: qd.lut_matmul(x, qts, timestep=t, backend="cuda"))["us"]
                    roof = (qw.nbytes + 2 * M * (K + N)) / bw * 1e6
                    rows.append({"K": K, "N": N, "M": M, "bits": bits, "plan": plan, "round": rnd, "us": plain,
                                 "timing": "rotating" if a.rotating else "flushed", "ts_us": None if a.no_ts else ts,
                                 "ts_overhead_pct": 100 * (ts / plain - 1), "pct_hbm": 100 * roof / plain})
                    print(f"{K}x{N} M={M:4d} w{bits} {plan:8s} {plain:7.1f} us  +ts {ts:7.1f} us "
                          f"({100 * (ts / plain - 1):+5.1f}%)  {100 * roof / plain:5.1f}% HBM", flush=True)
    for k in KNOBS:
        os.environ.pop(k, None)
    name = torch.cuda.get_device_name().replace(" ", "_")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, f"ab_mma_plan_{name}_{datetime.date.today()}.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "copy_bw": bw, "torch": torch.__version__,
                   "plans": {p: PLANS[p] for p in a.plans}, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
