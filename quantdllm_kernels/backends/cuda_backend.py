"""The CUDA C++ backend: ``torch.ops.quantdllm.{lut_mma, lut_gemv, lut_dequant}`` from ``csrc/``.

Paths by weight and M:
* affine ``scaled`` weights (RTN), M below the wgmma range (<= ``MMA_MAX_M`` without sm_90a): the
  tensor-core kernel ``lut_mma`` on a
  fragment-order repack (``cuda_layout.pack_for_mma``), built once per (weight, activation dtype)
  and cached -- on QuantLinear as non-persistent buffers (so ``torch.compile`` sees them), else on
  the codes tensor;
* the same weights from M = 17-33 (``_wgmma_min_m``: by shape and width, measured) up to
  ``WGMMA_MAX_M`` on a compute capability 9.0 GPU (an
  extension built with 9.0a): the wgmma kernel ``lut_wgmma`` on the same repack (x permuted into
  the layout's k order by a pre-pass, in_scale folded there). Past it dequantize + cuBLAS (H200:
  lut_wgmma ~650-670 TFLOP/s with its pre-pass, cuBLAS fp16 ~680, and the dequant's cost shrinks
  with M);
* other kinds, M <= ``GEMV_MAX_M``: the LUT GEMV, which reads the canonical format as stored;
* otherwise dequantize once into fp16/bf16 and call cuBLAS. Timestep tables are fused: the kernels take
the timesteps ``t`` (1 or M fp32 values) and the boundaries, and compute each row's bucket on the
device -- the bias bucket per row (GEMV epilogue, or a one-kernel epilogue after cuBLAS) and a
uniform per-bucket LUT set in the dequant. Per-row mixed timesteps with LUT sets run one launch
per bucket and select rows on the device (the documented fallback; still no host sync).
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from ..dispatch import Backend, register_backend
from ..format import MixedQuantizedWeight, QuantizedWeight
from ..reference import timesteps_on_device
from .cuda_layout import MmaWeight, mma_support, pack_for_mma

try:
    from .. import _C  # noqa: F401  (loading it registers torch.ops.quantdllm.lut_gemv / lut_dequant)
    _IMPORT_ERROR = ""
except ImportError as e:  # pragma: no cover - depends on the build
    _IMPORT_ERROR = (f"the CUDA extension quantdllm_kernels._C is not built ({e}); build it on a CUDA machine "
                     "with `pip install --no-build-isolation -e .`")

GEMV_MAX_M = 16
MMA_MAX_M = 64
# The wgmma path up to this M (QUANTDLLM_WGMMA_MAX_M overrides, for benchmarks; 0 turns it off);
# its lower end is per shape (_wgmma_min_m: 17-33), QUANTDLLM_WGMMA_MIN_M overrides it.
# H200, w4, µs, lut_wgmma (eleventh session, probe_wgmma call 5) vs Triton / dequant + cuBLAS:
# (4096, 12288) M = 128 39.7 vs 73.3 / 81.7, M = 512 86.9 vs 110.5 / 118.7, M = 1024 153.7 vs
# 177.8 / 188.6, M = 4096 636.3 vs 607.0 / 629.2; (12288, 4096) M = 1024 156.1 vs 173.5 / 184.2.
WGMMA_MAX_M = 2048
_WGMMA_OK = {}  # device index -> torch.ops.quantdllm.wgmma_supported
_MMA_ATTR = "_quantdllm_mma_pack"  # eager cache slot on the codes tensor: {dtype: (fingerprint, MmaWeight|None)}
_SEMAPHORES = {}  # (device index, stream) -> zeroed int32; the kernel leaves them zeroed


def _fingerprint(qw: QuantizedWeight):
    return tuple((t.data_ptr(), t._version) for t in qw.tensors().values())


def mma_pack(qw: QuantizedWeight, dtype: torch.dtype):
    """The tensor-core layout of ``qw`` for activations of ``dtype``, or None if the path cannot
    take it. Packs provided by QuantLinear (``qw.kernel_packs``) win; else built once and cached on
    the codes tensor (rebuilt if any field changes)."""
    given = qw.kernel_packs
    if given is not None and dtype in given.get("mma", {}):
        return given["mma"][dtype]
    if torch.compiler.is_compiling():
        return None  # no packing inside a traced graph: QuantLinear prepares packs eagerly
    cache = getattr(qw.codes, _MMA_ATTR, None)
    if cache is None:
        cache = {}
        setattr(qw.codes, _MMA_ATTR, cache)
    fp = _fingerprint(qw)
    hit = cache.get(dtype)
    if hit is not None and hit[0] == fp:
        return hit[1]
    mw = None
    if qw.timestep is None or not qw.timestep.luts:
        ok, _ = mma_support(qw)
        if ok:
            mw = pack_for_mma(qw, dtype)
    cache[dtype] = (fp, mw)
    return mw


def attach_module_packs(module: torch.nn.Module, qw: QuantizedWeight, dtype: torch.dtype) -> None:
    """Hands ``qw`` the tensor-core pack kept on ``module`` as non-persistent buffers (moved by
    ``.to()``, absent from ``state_dict()``, visible to ``torch.compile``), building it on the
    first eager call and again whenever a canonical buffer changed (``load_state_dict``)."""
    key = "fp16" if dtype == torch.float16 else "bf16" if dtype == torch.bfloat16 else None
    if key is None or _IMPORT_ERROR:
        return
    meta = module.__dict__.get("_mma_meta")
    eager = not torch.compiler.is_compiling()
    if eager:
        if meta is None:
            meta = module.__dict__["_mma_meta"] = {}
        fp = _fingerprint(qw)
        if key not in meta or meta[key][0] != fp:
            mw = mma_pack(qw, dtype)
            meta[key] = (fp, None if mw is None else (mw.N, mw.K, mw.bits, mw.group_shift))
            if mw is not None:
                if qw.device.type == "cuda":
                    wgmma_supported(qw.device)  # cached for traced calls
                module.register_buffer(f"_mma_{key}_codes", mw.codes, persistent=False)
                module.register_buffer(f"_mma_{key}_sz", mw.sz, persistent=False)
                module.register_buffer(f"_mma_{key}_in_scale", mw.in_scale, persistent=False)
                if getattr(module, "_mma_semaphores", None) is None:
                    module.register_buffer("_mma_semaphores", torch.zeros(4096, dtype=torch.int32, device=qw.device),
                                           persistent=False)
    if meta is None or key not in meta or meta[key][1] is None:
        return
    N, K, bits, shift = meta[key][1]
    # eagerly straight from _buffers (Module.__getattr__ cost ~1 µs per name)
    get = module._buffers.__getitem__ if eager else (lambda n: getattr(module, n))
    mw = MmaWeight(get(f"_mma_{key}_codes"), get(f"_mma_{key}_sz"), N, K, bits, shift, get(f"_mma_{key}_in_scale"))
    qw.kernel_packs = {"mma": {dtype: mw}, "semaphores": get("_mma_semaphores")}


def _kernel_semaphores(qw: QuantizedWeight, device: torch.device) -> torch.Tensor:
    """The K split's semaphores: QuantLinear's buffer (seen by torch.compile), else this stream's."""
    sem = None if qw.kernel_packs is None else qw.kernel_packs.get("semaphores")
    return _semaphores(device) if sem is None else sem


def _semaphores(device: torch.device) -> torch.Tensor:
    key = (device.index, torch.cuda.current_stream(device).cuda_stream)
    sem = _SEMAPHORES.get(key)
    if sem is None:
        # the plan splits K only when the grid is smaller than its resident slots (<= 16 blocks of
        # 128 threads per SM), so 4096 covers GPUs of up to 256 SMs
        sem = _SEMAPHORES[key] = torch.zeros(4096, dtype=torch.int32, device=device)
    return sem
_KIND = {"table": 0, "scaled": 1, "binary": 2}
_FIELDS = {"table": ("table", None, None), "scaled": ("codebook", "scale", "zero"), "binary": ("alpha", "mu", None)}


def weight_support(qw: QuantizedWeight) -> Tuple[bool, str]:
    """Whether the CUDA kernels take this weight's shape (mirrors csrc/lut_common.cu)."""
    N, K = qw.shape
    if K % 128:
        return False, f"in_features ({K}) must be a multiple of 128 for the CUDA kernels"
    g = qw.group_size
    if g < 128 and 128 % g or g >= 128 and g % 128:
        return False, f"group_size {g} must be 32, 64 or a multiple of 128 for the CUDA kernels"
    if N * K >= 2**31 or N >= 2**31 // 32:
        return False, "the weight is too large for int32 row indexing"
    return True, ""


def _is_scalar_t(t) -> bool:
    return not isinstance(t, torch.Tensor) or t.dim() == 0


def _op_fields(qw: QuantizedWeight, use_ts_luts: bool):
    """(f0, f1, f2, bucket_strides, cb_per_row) for the op; timestep LUT sets replace their fields."""
    ts_luts = qw.timestep.luts if (use_ts_luts and qw.timestep is not None and qw.timestep.luts) else {}
    out: List[Optional[torch.Tensor]] = []
    strides = []
    for name in _FIELDS[qw.lut_kind]:
        t = None if name is None else getattr(qw, name)
        s = 0
        if name in ts_luts:
            t = ts_luts[name].contiguous()
            s = t.numel() // t.shape[0]
        elif t is not None:
            t = t.contiguous()
        out.append(t)
        strides.append(s)
    dt = out[0].dtype
    out = [None if t is None else t.to(dt) for t in out]  # one LUT dtype across fields
    cb_per_row = qw.lut_kind == "scaled" and qw.codebook.dim() == 2
    return out[0], out[1], out[2], strides, cb_per_row


def wgmma_supported(device: torch.device) -> bool:
    """Whether ``lut_wgmma`` can run on ``device`` (compute capability 9.0, sm_90a code built)."""
    idx = device.index if device.index is not None else torch.cuda.current_device()
    ok = _WGMMA_OK.get(idx)
    if ok is None:
        if torch.compiler.is_compiling():
            return False  # asked eagerly first by QuantLinear (attach_module_packs)
        ok = _WGMMA_OK[idx] = bool(torch.ops.quantdllm.wgmma_supported(idx))
    return ok


def _wgmma_max_m() -> int:
    v = os.environ.get("QUANTDLLM_WGMMA_MAX_M")
    return WGMMA_MAX_M if v is None else int(v)


def _wgmma_min_m(K: int, N: int, bits: int) -> int:
    """The smallest M that lut_matmul sends to lut_wgmma rather than lut_mma, from the thirteenth
    session's H200 runs (cuda w2/w3/w4, M = 16-64, four LLaDA shapes; benchmarks/NOTES.md):
    lut_wgmma (64-token tiles) wins at M >= 48 on every shape and width (the LM head at M = 64, w4:
    392 -> 165 µs), from M = 24 on the LM head (N >= 32768, where lut_mma's time jumps from M = 16
    to 24: w4 130.6 -> 186.4 µs; M = 17-23 were not timed), and at M = 32 for 3-bit with K <= 4096;
    lut_mma is faster below (no wgmma prologue, no x pre-pass). The sixteenth session (4-bit, x read
    as stored; bench_kernels at M = 16-64, `results/crossover_s16_call3.txt`) moved two ends: K >=
    8192 starts at 48 ((12288, 4096): lut_mma 36.2 µs at M = 32 against lut_wgmma's 47.5, whose 32
    row blocks fill only 64 SMs even split in two; 48.4 / 48.2 at M = 48), and 4-bit with K and N <=
    4096 at 25 ((4096, 4096): 20.9 / 20.8 at M = 24, 21.7 / 20.8 at M = 32). QUANTDLLM_WGMMA_MIN_M
    overrides (for benchmarks)."""
    v = os.environ.get("QUANTDLLM_WGMMA_MIN_M")
    if v is not None:
        return max(1, int(v))
    if N >= 32768:
        return GEMV_MAX_M + 1
    if K >= 8192:
        return 48
    if K <= 4096 and (bits == 3 or (bits == 4 and N <= 4096)):
        return 25
    return 33


def _run(x2, qw: QuantizedWeight, bias, t, bounds, ts_bias, lut_bucket, use_ts_luts: bool):
    M = x2.shape[0]
    if (_wgmma_min_m(qw.in_features, qw.out_features, qw.bits) <= M <= _wgmma_max_m() and not use_ts_luts
            and wgmma_supported(x2.device)):
        mw = mma_pack(qw, x2.dtype)
        if mw is not None:
            bias = None if bias is None else bias.contiguous()
            return torch.ops.quantdllm.lut_wgmma(x2.contiguous(), mw.codes, mw.sz, mw.N, mw.K, mw.bits,
                                                 mw.group_shift, mw.in_scale, bias, t, bounds, ts_bias)
    # 1-bit segments: the GEMV reads their codes as stored up to GEMV_MAX_M; past it the tensor-core
    # path (2-bit layout) instead of a dequantized copy and cuBLAS
    if x2.shape[0] <= MMA_MAX_M and not use_ts_luts and (qw.bits != 1 or x2.shape[0] > GEMV_MAX_M):
        mw = mma_pack(qw, x2.dtype)
        if mw is not None:
            bias = None if bias is None else bias.contiguous()
            sem = _kernel_semaphores(qw, x2.device)
            return torch.ops.quantdllm.lut_mma(x2, mw.codes, mw.sz, mw.N, mw.K, mw.bits, mw.group_shift,
                                               mw.in_scale, bias, t, bounds, ts_bias, sem)
    f0, f1, f2, strides, cb_per_row = _op_fields(qw, use_ts_luts)
    in_scale = None if qw.in_scale is None else qw.in_scale.contiguous()
    kind, bits, g = _KIND[qw.lut_kind], qw.bits, qw.group_size
    if x2.shape[0] <= GEMV_MAX_M:
        bias = None if bias is None else bias.contiguous()
        return torch.ops.quantdllm.lut_gemv(x2, qw.codes, f0, f1, f2, strides, lut_bucket, in_scale, bias,
                                            t, bounds, ts_bias, bits, kind, g, cb_per_row)
    w = torch.ops.quantdllm.lut_dequant(qw.codes, f0, f1, f2, strides, lut_bucket, in_scale, t, bounds, bits,
                                        kind, g, cb_per_row, x2.dtype)
    if ts_bias is not None and t.numel() == 1:
        # one timestep: its bias row joins the GEMM's own bias epilogue (an N-vector, not an M x N pass)
        tb = ts_bias.index_select(0, torch.searchsorted(bounds, t, right=True)).reshape(-1)
        bias = tb if bias is None else bias.to(tb.dtype) + tb
        ts_bias = None
    y = F.linear(x2, w, None if bias is None else bias.to(x2.dtype))
    if ts_bias is not None:
        torch.ops.quantdllm.ts_bias_add_(y, t, bounds, ts_bias)
    return y


def _matmul_one(x2, qw: QuantizedWeight, bias, timestep, lead):
    ts = qw.timestep if timestep is not None else None
    if ts is None:
        return _run(x2, qw, bias, None, None, None, None, False)
    t = timesteps_on_device(timestep, lead, x2.device)
    bounds = ts.boundaries.to(torch.float32).contiguous()
    ts_bias = None if ts.bias is None else ts.bias.contiguous()
    if not ts.luts or t.numel() == 1:  # buckets computed inside the kernels from t
        return _run(x2, qw, bias, t, bounds, ts_bias, None, bool(ts.luts))
    # per-row timesteps with per-bucket LUT sets: one launch per bucket, rows picked on the device
    b = torch.searchsorted(bounds, t, right=True)
    y = None
    for k in range(ts.num_buckets):
        lut_bucket = torch.full((1,), k, dtype=torch.int32, device=x2.device)
        yk = _run(x2, qw, bias, t, bounds, ts_bias, lut_bucket, True)
        y = yk if y is None else torch.where((b == k).unsqueeze(1), yk, y)
    return y


class CudaBackend(Backend):
    name = "cuda"
    priority = 20

    def availability(self):
        if _IMPORT_ERROR:
            return False, _IMPORT_ERROR
        if not torch.cuda.is_available():
            return False, "no CUDA GPU"
        return True, ""

    def can_implement(self, qw, x):
        if x.dtype not in (torch.float16, torch.bfloat16):
            return False, f"activations must be float16 or bfloat16, got {x.dtype}"
        if not x.is_cuda:
            return False, f"x is on {x.device}; the CUDA backend runs CUDA tensors"
        if x.device != qw.device:
            return False, f"x is on {x.device} but the weight is on {qw.device}"
        for s in (qw.segments if isinstance(qw, MixedQuantizedWeight) else [qw]):
            ok, why = weight_support(s)
            if not ok:
                return False, why
        M = x.numel() // max(1, x.shape[-1])
        if M * max(qw.shape) >= 2**31:
            return False, "x or y would exceed 2**31 elements (the kernels index rows with int32)"
        return True, ""

    def lut_matmul(self, x, qw, bias=None, timestep=None):
        return self.matmul_rows(x, qw, bias, timestep)

    def run_rows(self, x2, qw, bias, timestep, lead, out_dtype):
        return _matmul_one(x2, qw, bias, timestep, lead)  # in x's dtype; segments are summed in fp32


if not _IMPORT_ERROR:
    @torch.library.register_fake("quantdllm::lut_gemv")
    def _gemv_fake(x, codes, f0, f1, f2, bucket_strides, lut_bucket, in_scale, bias, t, boundaries, ts_bias,
                   bits, kind, group_size, cb_per_row):
        return x.new_empty(x.shape[0], codes.shape[0])

    @torch.library.register_fake("quantdllm::lut_dequant")
    def _dequant_fake(codes, f0, f1, f2, bucket_strides, lut_bucket, in_scale, t, boundaries, bits, kind,
                      group_size, cb_per_row, dtype):
        return codes.new_empty(codes.shape[0], codes.shape[1] // bits * 32, dtype=dtype)

    @torch.library.register_fake("quantdllm::lut_mma")
    def _mma_fake(x, codes, sz, N, K, bits, group_shift, in_scale, bias, t, boundaries, ts_bias, semaphores):
        return x.new_empty(x.shape[0], N)

    @torch.library.register_fake("quantdllm::lut_wgmma")
    def _wgmma_fake(x, codes, sz, N, K, bits, group_shift, in_scale, bias, t, boundaries, ts_bias):
        return x.new_empty(x.shape[0], N)

    @torch.library.register_fake("quantdllm::ts_bias_add_")
    def _ts_bias_add_fake(y, t, boundaries, ts_bias):
        return None

register_backend(CudaBackend())
