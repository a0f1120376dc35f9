"""Probe: Triton binary 3-bit group 32 on the GPU (failing tests 2026-11-29). Prints per path/config
the error vs the reference, and for the dequant kernel which (k, n) entries differ."""
import torch
DEV = "cuda" if torch.cuda.is_available() else "cpu"
from quantdllm_kernels import dequantize
from quantdllm_kernels.backends.triton_backend import pack_for
from quantdllm_kernels.reference import lut_matmul_reference
from quantdllm_kernels.testing import random_qweight, rel_error
from quantdllm_kernels.triton.ops import dequantize_t, triton_lut_matmul

gen = torch.Generator().manual_seed(0)
for kind, bits, g in [("binary", 3, 32), ("binary", 3, 64), ("binary", 2, 32), ("binary", 4, 32), ("table", 3, 32)]:
    qw = random_qweight(40, 256, bits=bits, lut_kind=kind, group_size=g, generator=gen).to(DEV)
    tw = pack_for(qw)
    ref_w = dequantize(qw, torch.float32).T  # (K, N)
    print(f"== {kind} {bits}-bit g{g}: lut_mode {tw.lut_mode} b0 {tw.b0} b1 {tw.b1} Kp {tw.Kp} "
          f"scale {tuple(tw.scale.shape)} lut {tuple(tw.lut.shape)}")
    for bn, bk, w in [(32, 32, 1), (64, 32, 4), (128, 32, 4), (32, 32, 4), (256, 32, 4)]:
        wt = dequantize_t(tw, torch.float32, dict(BLOCK_N=bn, BLOCK_K=bk, num_warps=w))
        bad = (wt - ref_w).abs() > 1e-3 * ref_w.abs().max()
        ks = bad.nonzero()[:, 0].unique().tolist()
        print(f"  dequant bn{bn} bk{bk} w{w}: bad {int(bad.sum())}/{bad.numel()} k rows {ks[:12]}"
              f" (k%32 {sorted(set(k % 32 for k in ks))[:12]})")
    for M in (1, 7, 33):
        x = torch.randn(M, 256, generator=gen).half().to(DEV)
        ref = lut_matmul_reference(x.float(), qw)
        cfgs = ([dict(BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=sk, num_warps=w, num_stages=s)
                 for bn, bk, sk, w, s in [(32, 32, 1, 1, 1), (128, 32, 1, 4, 3), (128, 32, 8, 4, 3), (128, 32, 8, 4, 1), (64, 32, 4, 2, 3)]]
                if M == 1 else
                [dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=sk, num_warps=w, num_stages=s)
                 for bm, bn, bk, sk, w, s in [(16, 32, 32, 1, 1, 1), (16, 32, 32, 2, 1, 1), (64, 128, 32, 1, 4, 4),
                                              (16, 64, 32, 1, 4, 1), (16, 64, 32, 1, 4, 3), (64, 128, 32, 1, 4, 1)]])
        for c in cfgs:
            try:
                e = rel_error(triton_lut_matmul(x, tw, None, torch.float16, config=c), ref)
                print(f"  M={M} {c}: rel err {e:.2e}{'  <-- BAD' if e > 1e-2 else ''}")
            except Exception as ex:
                print(f"  M={M} {c}: {type(ex).__name__}: {str(ex)[:150]}")
