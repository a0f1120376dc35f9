"""The Triton backend: LUT GEMV / tensor-core GEMM kernels in ``quantdllm_kernels.triton``.

Runs on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1`` (only when asked for by
name: the interpreter is for correctness tests, not speed). fp16/bf16 activations; fp32
activations go to another backend. Each weight is repacked once (``pack_for("triton")``) and
cached against its tensors (a changed tensor, in place or replaced, triggers a repack).
Timestep tables are fused: bias rows in the epilogue, per-bucket LUT sets by pointer offset, with
rows of different buckets in one launch taken bucket by bucket inside the GEMM kernel.
"""
from __future__ import annotations

import os

import torch

from ..dispatch import Backend, register_backend
from ..format import QuantizedWeight
from ..reference import timesteps_on_device

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
try:
    import triton  # noqa: F401  (import check: the backend needs it)

    from ..triton.layout import pack_for_triton
    from ..triton.ops import triton_lut_matmul
    _IMPORT_ERROR = ""
except Exception as e:  # pragma: no cover - depends on the environment
    _IMPORT_ERROR = f"triton is not importable ({type(e).__name__}: {e})"

_ATTR = "_quantdllm_triton_pack"  # cache slot on the codes tensor: lives and dies with it


def _fingerprint(qw: QuantizedWeight):
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in qw.tensors().values())


def pack_for(qw: QuantizedWeight):
    """The Triton layout of ``qw``, built once and cached on its codes tensor."""
    fp = _fingerprint(qw)
    hit = getattr(qw.codes, _ATTR, None)
    if hit is not None and hit[0] == fp:
        return hit[1]
    tw = pack_for_triton(qw)
    setattr(qw.codes, _ATTR, (fp, tw))
    return tw


class TritonBackend(Backend):
    name = "triton"
    priority = 10

    def availability(self):
        if _IMPORT_ERROR:
            return False, _IMPORT_ERROR
        if not torch.cuda.is_available() and not _INTERPRET:
            return False, "no CUDA GPU (set TRITON_INTERPRET=1 before import to run the CPU interpreter)"
        return True, ""

    def preferred_for(self, x) -> bool:
        return x.is_cuda

    def can_implement(self, qw, x):
        if x.dtype not in (torch.float16, torch.bfloat16):
            return False, f"activations must be float16 or bfloat16, got {x.dtype}"
        if not x.is_cuda and not _INTERPRET:
            return False, f"x is on {x.device}; the Triton backend runs CUDA tensors"
        if x.device != qw.device:
            return False, f"x is on {x.device} but the weight is on {qw.device}"
        N, K = qw.shape
        M = x.numel() // max(1, x.shape[-1])
        if max(N * K, M * K, M * N) >= 2**31:
            return False, "a tensor would exceed 2**31 elements (the kernels index with int32)"
        return True, ""

    def lut_matmul(self, x, qw, bias=None, timestep=None):
        return self.matmul_rows(x, qw, bias, timestep)

    def run_rows(self, x2, qw, bias, timestep, lead, out_dtype):
        ts = None
        if qw.timestep is not None and timestep is not None:
            tb = qw.timestep.bias
            ts = (timesteps_on_device(timestep, lead, x2.device),
                  qw.timestep.boundaries.to(torch.float32).contiguous(), tb.contiguous() if tb is not None else None)
        return triton_lut_matmul(x2, pack_for(qw), bias, out_dtype, ts=ts)


register_backend(TritonBackend())
