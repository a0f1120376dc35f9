"""Cross-check of bench_kernels.py's L2-flush timing: rotate over R copies of the weight (R x bytes
well above the 50 MB L2) inside one CUDA graph, no flush kernel, so each call streams its weight
from HBM and no dirty flush lines are written back during the timed kernel (METHOD.md: rotate
among input sets). Prints µs per call and % of the measured copy bandwidth on the packed bytes.

    python benchmarks/bench_rotating.py --out DIR
"""
import argparse
import datetime
import json
import os

import torch
import torch.nn.functional as F

import quantdllm_kernels as qd


def graph_us(fns, reps=20):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for f in fns:
            f()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for f in fns:
            f()
    g.replay()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) * 1e3 / len(fns))
    return sorted(ts)[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--K", type=int, default=4096)
    ap.add_argument("--N", type=int, default=12288)
    ap.add_argument("--ms", nargs="*", type=int, default=[1, 16, 32])
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    K, N, R = a.K, a.N, a.copies
    # The same eager copy figure as bench_kernels.py: a copy captured in a graph becomes a memcpy node
    # (copy engine, 2.67 TB/s on the H200 against 4.22 for the eager copy), which inflated every %.
    from bench_kernels import measure_bandwidth
    bw = measure_bandwidth()
    gen = torch.Generator().manual_seed(0)
    W = [torch.randn(N, K, generator=gen).half().cuda() for _ in range(R)]
    rows = []
    series = {"fp16-cublas": None}
    for bits in (4, 2):
        series[f"cuda-w{bits}-rtn"] = [qd.quantize_weight(w, bits=bits, group_size=128, method="rtn") for w in W]
    packed_int4 = []
    try:
        for w in W:
            wq = torch.randint(0, 16, (N, K), device="cuda", dtype=torch.int32)
            packed_int4.append((torch.ops.aten._convert_weight_to_int4pack(
                (wq[:, ::2] << 4 | wq[:, 1::2]).to(torch.uint8), 8), torch.randn(K // 128, N, 2, device="cuda").bfloat16()))
        series["torch-int4pack-w4"] = packed_int4
    except Exception as e:  # pragma: no cover
        print("torch int4 unavailable:", e)
    for M in a.ms:
        x = torch.randn(M, K, generator=gen).half().cuda()
        xb = x.bfloat16()
        for name, ws in series.items():
            if name == "fp16-cublas":
                fns = [lambda w=w: F.linear(x, w) for w in W]
                nbytes = N * K * 2
            elif name.startswith("cuda"):
                fns = [lambda q=q: qd.lut_matmul(x, q, backend="cuda") for q in ws]
                nbytes = ws[0].nbytes
            else:
                fns = [lambda p=p: torch.ops.aten._weight_int4pack_mm(xb, p[0], 128, p[1]) for p in ws]
                nbytes = N * K // 2 + p_bytes(ws[0][1])
            us = graph_us(fns)
            roof = (nbytes + 2 * M * (K + N)) / bw * 1e6
            rows.append({"M": M, "series": name, "us": us, "bytes": nbytes, "roofline_us": roof, "pct_hbm": 100 * roof / us})
            print(f"{K}x{N} M={M:5d} {name:20s} {us:8.1f} us  {100 * roof / us:5.1f}% of HBM roofline", flush=True)
    name = torch.cuda.get_device_name().replace(" ", "_")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, f"rotating_{name}_{datetime.date.today()}.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "copy_bw": bw, "K": K, "N": N, "copies": R, "rows": rows}, f,
                  indent=1)


def p_bytes(t):
    return t.numel() * t.element_size()


if __name__ == "__main__":
    main()
