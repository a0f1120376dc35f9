"""Small CUDA-backend cases for ``compute-sanitizer --tool memcheck`` (run_device.sh runs it):
every kernel path once -- GEMV with and without the K split, dequant + cuBLAS, each LUT kind,
3-bit straddling codes, group sizes 32 and per-row, timestep bias and LUT sets, and the tensor-core
path (lut_mma) with and without its K split (both of its reductions), and the wgmma path
(lut_wgmma) at every token tile and with K splits, x permuted by the pre-pass and read as stored."""
import itertools
import os

import torch

import quantdllm_kernels as qd
from quantdllm_kernels.testing import random_qweight, rel_error


def main():
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    cases = [(77, 384, 3, "table", 32, 1), (200, 512, 2, "binary", 64, 3), (64, 4608, 4, "scaled", 128, 5),
             (96, 256, 3, "scaled", None, 40), (8, 128, 4, "table", 128, 17)]
    for N, K, bits, kind, g, M in cases:
        qw = random_qweight(N, K, bits=bits, lut_kind=kind, group_size=g, in_scale=True, generator=gen).to("cuda")
        if kind == "scaled":
            T = 3
            qw = qw.with_timestep_tables(qd.TimestepTables(
                torch.tensor([0.3, 0.7], device="cuda"), torch.randn(T, N, device="cuda").half(),
                {"scale": torch.stack([qw.scale] * T)}))
        x = torch.randn(M, K, generator=gen).half().cuda()
        for t in (None, 0.5, torch.rand(M, device="cuda")):
            y = qd.lut_matmul(x, qw, timestep=t, backend="cuda")
            ref = qd.lut_matmul(x, qw, timestep=t, backend="torch")
            worst = max(worst, rel_error(y, ref))
    # the tensor-core path (affine scaled = RTN): K split (a cluster on sm_90; then again by
    # semaphores), padded rows and 3-bit K tail (M = 12: the 3-bit chunk ring, tokens past M),
    # in_scale, bias and per-row timestep bias, several token tiles
    for (N, K, bits, g, M), cl in itertools.product(
            [(77, 640, 3, 64, 1), (77, 640, 3, 64, 12), (300, 4480, 4, 128, 5), (96, 512, 2, None, 70)], ("1", "0")):
        os.environ["QUANTDLLM_MMA_CLUSTER"] = cl
        qw = qd.quantize_weight(torch.randn(N, K, generator=gen), bits=bits, group_size=g, method="rtn")
        qw = qw._replace(in_scale=(torch.rand(K, generator=gen) + 0.5).half()).to("cuda")
        qw = qw.with_timestep_tables(qd.TimestepTables(torch.tensor([0.5], device="cuda"),
                                                       torch.randn(2, N, device="cuda").half()))
        x = torch.randn(M, K, generator=gen).half().cuda()
        bias = torch.randn(N, device="cuda").half()
        t = torch.rand(M, device="cuda")
        y = qd.lut_matmul(x, qw, bias, timestep=t, backend="cuda")
        worst = max(worst, rel_error(y, qd.lut_matmul(x, qw, bias, timestep=t, backend="torch")))
    del os.environ["QUANTDLLM_MMA_CLUSTER"]
    # the wgmma path (sm_90a): every token tile, partial row block and token tile, in_scale, bias and
    # per-row timestep bias
    from quantdllm_kernels.backends import cuda_backend as cb
    if cb.wgmma_supported(torch.device("cuda")):
        qw = qd.quantize_weight(torch.randn(200, 640, generator=gen), bits=3, group_size=64, method="rtn")
        qw = qw._replace(in_scale=(torch.rand(640, generator=gen) + 0.5).half()).to("cuda")
        mw = cb.mma_pack(qw, torch.float16)
        bounds, ts_bias = torch.tensor([0.5], device="cuda"), torch.randn(2, 200, device="cuda").half()
        bias = torch.randn(200, device="cuda").half()
        # + K splits (clusters of 2 and 3 blocks): every tile, and the tiles from the third on (of 10)
        for bn, ks, fr in (("64", "1", "0"), ("128", "1", "0"), ("256", "1", "0"), ("64", "2", "0"), ("256", "3", "0"),
                           ("64", "2", "2")):
            os.environ["QUANTDLLM_WGMMA_BN"], os.environ["QUANTDLLM_WGMMA_KSPLIT"] = bn, ks
            os.environ["QUANTDLLM_WGMMA_SPLIT_FROM"] = fr
            x = torch.randn(300, 640, generator=gen).half().cuda()
            t = torch.rand(300, device="cuda")
            y = torch.ops.quantdllm.lut_wgmma(x, mw.codes, mw.sz, mw.N, mw.K, mw.bits, mw.group_shift, mw.in_scale,
                                              bias, t, bounds, ts_bias)
            qt = qw.with_timestep_tables(qd.TimestepTables(bounds, ts_bias))
            worst = max(worst, rel_error(y, qd.lut_matmul(x, qt, bias, timestep=t, backend="torch")))
        # 64 buckets (the timestep chunk's four k16 steps), fp16 and fp32 tables, 256- and 64-token tiles
        os.environ["QUANTDLLM_WGMMA_KSPLIT"], os.environ["QUANTDLLM_WGMMA_SPLIT_FROM"] = "1", "0"
        bounds = torch.sort(torch.rand(63, device="cuda")).values
        for bn, dt in (("256", torch.float16), ("64", torch.float32)):
            os.environ["QUANTDLLM_WGMMA_BN"] = bn
            ts_bias = torch.randn(64, 200, device="cuda").to(dt)
            x = torch.randn(300, 640, generator=gen).half().cuda()
            t = torch.rand(300, device="cuda")
            y = torch.ops.quantdllm.lut_wgmma(x, mw.codes, mw.sz, mw.N, mw.K, mw.bits, mw.group_shift, mw.in_scale,
                                              bias, t, bounds, ts_bias)
            want = qd.lut_matmul(x, qw, bias, backend="torch").double()
            want += ts_bias[torch.searchsorted(bounds, t, right=True)].double()
            worst = max(worst, rel_error(y, want))
        # x as stored (no in_scale): 2/3-bit codes exchanged inside each lane quad, 4-bit reordered;
        # a partial last super-chunk (K = 704), whole tiles and a K split
        os.environ["QUANTDLLM_WGMMA_PREPASS"] = "0"
        for bits in (2, 3, 4):
            qn = qd.quantize_weight(torch.randn(200, 704, generator=gen), bits=bits, group_size=64, method="rtn").to("cuda")
            mn = cb.mma_pack(qn, torch.float16)
            for bn, ks in (("256", "1"), ("64", "2")):
                os.environ["QUANTDLLM_WGMMA_BN"], os.environ["QUANTDLLM_WGMMA_KSPLIT"] = bn, ks
                x = torch.randn(300, 704, generator=gen).half().cuda()
                y = torch.ops.quantdllm.lut_wgmma(x, mn.codes, mn.sz, mn.N, mn.K, mn.bits, mn.group_shift, None,
                                                  bias, None, None, None)
                worst = max(worst, rel_error(y, qd.lut_matmul(x, qn, bias, backend="torch")))
        del os.environ["QUANTDLLM_WGMMA_BN"], os.environ["QUANTDLLM_WGMMA_KSPLIT"], os.environ["QUANTDLLM_WGMMA_SPLIT_FROM"]
        del os.environ["QUANTDLLM_WGMMA_PREPASS"]
    torch.cuda.synchronize()
    print(f"sanitize cases done, worst rel error {worst:.2e}")
    assert worst < 1e-2


if __name__ == "__main__":
    main()
