"""One launch of each requested CUDA kernel case on the (4096, 12288) rtn weight, for Nsight Compute:

    ncu --set full -k regex:lut_ -o rep python benchmarks/profile_cuda.py --ms 1 32 --bits 4 2
    ncu -i rep.ncu-rep --page source --csv --print-source sass > sass.csv   # stalls per instruction
    python benchmarks/profile_cuda.py --ms 32 --ts     # the same call with and without timestep
                                                      # bias tables (T = 8, per-row t), for an ncu diff

Each case runs twice (the first call packs the weight and may pick a plan); profile with
``--launch-skip`` / ``-c`` or filter on the second launch.
"""
import argparse

import torch

import quantdllm_kernels as qd
from bench_kernels import with_tables


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ms", nargs="*", type=int, default=[1, 4, 64])
    ap.add_argument("--bits", nargs="*", type=int, default=[4])
    ap.add_argument("--shape", default="4096x12288", help="KxN")
    ap.add_argument("--ts", action="store_true", help="also run each case with timestep bias tables, per-row t")
    args = ap.parse_args()
    K, N = map(int, args.shape.split("x"))
    W = torch.randn(N, K, device="cuda", dtype=torch.float16) * 0.02
    for bits in args.bits:
        qw = qd.quantize_weight(W, bits=bits, group_size=128, method="rtn", lut_dtype=torch.float16)
        for M in args.ms:
            x = torch.randn(M, K, device="cuda", dtype=torch.float16)
            for _ in range(2):
                qd.lut_matmul(x, qw, backend="cuda")
            if args.ts:
                qt, t = with_tables(qw, "ts"), torch.rand(M, device="cuda")
                for _ in range(2):
                    qd.lut_matmul(x, qt, backend="cuda", timestep=t)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
