"""The wgmma path (csrc/lut_wgmma.cu) against what large M ran before it (dequantize once + cuBLAS,
the CUDA backend's and the Triton backend's) and fp16 cuBLAS, per (shape, M, bits), with an
accuracy check of every case. L2 flushed, median, eager or graph (bench_kernels.time_fn); the x
pre-pass is timed alone too (its share of the call).

    python benchmarks/debug/probe_wgmma.py --out DIR [--shapes 4096x12288 4096x4096] [--ms 128 256 512 1024 4096]
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
from quantdllm_kernels.backends import cuda_backend as cb  # noqa: E402
from quantdllm_kernels.testing import exact_matmul, kernel_tolerance, rel_error  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="*", default=["4096x12288", "4096x4096", "12288x4096"], help="KxN")
    ap.add_argument("--ms", nargs="*", type=int, default=[128, 256, 512, 1024, 2048, 4096])
    ap.add_argument("--bits", nargs="*", type=int, default=[4, 3, 2])
    ap.add_argument("--reps-ms", type=float, default=40)
    ap.add_argument("--bns", nargs="*", type=int, default=[], help="also time these forced tiles (QUANTDLLM_WGMMA_BN)")
    ap.add_argument("--kss", nargs="*", type=int, default=[], help="also time these forced K splits (QUANTDLLM_WGMMA_KSPLIT)")
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    gen = torch.Generator().manual_seed(0)
    rows = []
    for shape in a.shapes:
        K, N = map(int, shape.split("x"))
        W = torch.randn(N, K, generator=gen).half().cuda()
        for bits in a.bits:
            qw = qd.quantize_weight(W, bits=bits, group_size=128, method="rtn")
            mw = cb.mma_pack(qw, torch.float16)
            for M in a.ms:
                x = torch.randn(M, K, generator=gen).half().cuda()
                def op():
                    return torch.ops.quantdllm.lut_wgmma(x, mw.codes, mw.sz, N, K, bits, mw.group_shift, None, None,
                                                         None, None, None)
                y = op()
                err = rel_error(y, exact_matmul(x, qw)) if M * N <= 2**26 else float("nan")
                ok = not (err > kernel_tolerance(torch.float16, K))
                r = {"shape": shape, "M": M, "bits": bits, "rel_err": err, "ok": ok}
                r["wgmma"] = time_fn(op, a.reps_ms)["us"]
                for bn in a.bns:
                    os.environ["QUANTDLLM_WGMMA_BN"] = str(bn)
                    r[f"wgmma_bn{bn}"] = time_fn(op, a.reps_ms)["us"]
                    del os.environ["QUANTDLLM_WGMMA_BN"]
                for ks in a.kss:
                    os.environ["QUANTDLLM_WGMMA_KSPLIT"] = str(ks)
                    r[f"wgmma_ks{ks}"] = time_fn(op, a.reps_ms)["us"]
                    del os.environ["QUANTDLLM_WGMMA_KSPLIT"]
                os.environ["QUANTDLLM_WGMMA_MAX_M"] = "0"
                r["cuda_dequant_cublas"] = time_fn(lambda: qd.lut_matmul(x, qw, backend="cuda"), a.reps_ms)["us"]
                del os.environ["QUANTDLLM_WGMMA_MAX_M"]
                if bits == 4:
                    r["triton"] = time_fn(lambda: qd.lut_matmul(x, qw, backend="triton"), a.reps_ms)["us"]
                    r["fp16"] = time_fn(lambda: F.linear(x, W), a.reps_ms)["us"]
                    xp = torch.empty_like(x)
                    r["x_copy"] = time_fn(lambda: xp.copy_(x), a.reps_ms)["us"]  # ~ the pre-pass's traffic
                r["tflops_wgmma"] = 2.0 * M * N * K / (r["wgmma"] * 1e-6) / 1e12
                rows.append(r)
                print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()),
                      flush=True)
    os.makedirs(a.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
    meta = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "date": stamp}
    with open(os.path.join(a.out, f"probe_wgmma_{stamp}.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print(f"{'shape':>11} {'M':>5} {'b':>2} {'wgmma':>8} {'deq+cublas':>10} {'triton':>8} {'fp16':>8} "
          f"{'vs fp16':>7} {'TF/s':>6} ok")
    for r in rows:
        fp = r.get("fp16")
        print(f"{r['shape']:>11} {r['M']:5d} {r['bits']:2d} {r['wgmma']:8.1f} {r['cuda_dequant_cublas']:10.1f} "
              f"{r.get('triton', float('nan')):8.1f} {fp or float('nan'):8.1f} "
              f"{(fp / r['wgmma']) if fp else float('nan'):7.2f} {r['tflops_wgmma']:6.0f} {r['ok']}")


if __name__ == "__main__":
    main()
