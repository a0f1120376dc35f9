"""One launch of each CUDA kernel path on the (4096, 12288) 4-bit rtn weight, for Nsight Compute:

    ncu --section SpeedOfLight --section Occupancy --section WarpStateStats -k regex:lut_ \\
        python benchmarks/profile_cuda.py
"""
import torch

import quantdllm_kernels as qd


def main():
    W = torch.randn(12288, 4096, device="cuda", dtype=torch.float16) * 0.02
    qw = qd.quantize_weight(W, bits=4, group_size=128, method="rtn", lut_dtype=torch.float16)
    for M in (1, 4, 64):  # GEMV MT=1, GEMV MT=4, dequant + cuBLAS
        qd.lut_matmul(torch.randn(M, 4096, device="cuda", dtype=torch.float16), qw, backend="cuda")
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
