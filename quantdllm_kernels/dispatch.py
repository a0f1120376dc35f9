"""Backend registry and the public ``lut_matmul``.

Each backend says whether it exists here (``availability``) and whether it can run a given
weight and input (``can_implement``); ``lut_matmul(backend=None)`` takes, among the backends that
can run, the one measured fastest for the nearest benchmarked (shape, bits, LUT kind, M) on the
same GPU model where that GPU was measured, else on any (``measured_dispatch.json``, built by
``benchmarks/make_dispatch_table.py`` from GPU runs; ``load_dispatch_table`` or
``QUANTDLLM_DISPATCH_TABLE=path`` use a table of one's own), and falls back to backend priority
where nothing was measured. Asking for a backend by name that cannot run raises :class:`BackendUnavailableError`
with the reason.
"""
from __future__ import annotations

import functools
import json
import math
import os
from typing import Dict, List, Optional, Tuple

import torch

from .errors import BackendUnavailableError
from .format import MixedQuantizedWeight, QuantizedWeight
from .reference import broadcast_timestep

__all__ = ["Backend", "register_backend", "available_backends", "select_backend", "lut_matmul", "KNOWN_BACKENDS",
           "load_dispatch_table"]

KNOWN_BACKENDS = ("cuda", "triton", "torch")
_REGISTRY: Dict[str, "Backend"] = {}


class Backend:
    """Interface of a kernel backend."""

    name: str = ""
    priority: int = 0  # higher is preferred when several can run

    def availability(self) -> Tuple[bool, str]:
        """(True, "") if the backend can run in this process, else (False, why not)."""
        raise NotImplementedError

    def can_implement(self, qw, x: torch.Tensor) -> Tuple[bool, str]:
        """(True, "") if this backend runs ``lut_matmul(x, qw)``, else (False, why not)."""
        raise NotImplementedError

    def lut_matmul(self, x, qw, bias=None, timestep=None) -> torch.Tensor:
        raise NotImplementedError

    def run_rows(self, x2, qw, bias, timestep, lead, out_dtype) -> torch.Tensor:
        """Kernel backends implement this: one QuantizedWeight, ``x2`` contiguous ``(M, K)``."""
        raise NotImplementedError

    def matmul_rows(self, x, qw, bias=None, timestep=None) -> torch.Tensor:
        """The frame kernel backends share: the reference's argument errors, x flattened to
        contiguous rows, and mixed-precision segments summed with fp32 accumulation (bias added
        once, by the first segment's kernel)."""
        from .reference import _check_bias, _check_x
        N, K = qw.shape
        _check_x(x, K, qw.device)
        _check_bias(bias, N, qw.device)
        lead = x.shape[:-1]
        flat = x.dim() == 2  # rows already: no reshape either way (each cost ~2-3 µs of host time)
        x2 = x if flat else x.reshape(-1, K)
        if not x2.is_contiguous():
            x2 = x2.contiguous()
        if x2.shape[0] == 0:
            return x.new_empty(*lead, N)
        if isinstance(qw, MixedQuantizedWeight):
            # One launch per segment, the bias fused into the first (segments[0] also holds any
            # timestep bias); the partial products, in x's dtype, summed by one reduction that
            # accumulates in fp32. That is S gathers + S GEMMs + 2 launches per layer: converting
            # and adding each partial in fp32 took 2S + 1 more, each a graph node of a few µs at
            # M = 32 (mixed 2.0 ran a denoising step 2x slower than uniform 2-bit).
            ys = [self.run_rows(x2.index_select(1, idx), seg, bias if i == 0 else None, timestep, lead, x.dtype)
                  for i, (seg, idx) in enumerate(qw.segment_slices())]
            y = ys[0] if len(ys) == 1 else torch.stack(ys).sum(0)
            return y.to(x.dtype).reshape(*lead, N)
        y = self.run_rows(x2, qw, bias, timestep, lead, x.dtype)
        return y if flat else y.reshape(*lead, N)

    def preferred_for(self, x: torch.Tensor) -> bool:
        """Whether automatic selection may pick this backend for ``x`` (a CPU interpreter may
        run when named, but is never picked for speed)."""
        return True


def register_backend(backend: Backend) -> None:
    if backend.name not in KNOWN_BACKENDS:
        raise ValueError(f"backend name must be one of {KNOWN_BACKENDS}, got {backend.name!r}")
    global _AVAILABLE
    _REGISTRY[backend.name] = backend
    _AVAILABLE = None


_LOADED = False


def _ensure_loaded() -> None:
    # Importing the backend modules registers them; a backend whose dependencies are missing
    # registers itself as unavailable with the reason. (Once: the import statement alone cost
    # ~2 µs of every call's host time.)
    global _LOADED
    if not _LOADED:
        from .backends import cuda_backend, torch_backend, triton_backend  # noqa: F401
        _LOADED = True


_AVAILABILITY: dict = {}  # backend object -> availability(), computed once per object


def _availability(b) -> Tuple[bool, str]:
    """``b.availability()``, once per backend object: it does not change within a process (as
    available_backends assumes), and torch.cuda.is_available() inside it cost every call ~1.5 µs."""
    got = _AVAILABILITY.get(b)
    if got is None:
        got = _AVAILABILITY[b] = b.availability()
    return got


_AVAILABLE: Optional[List[str]] = None


def available_backends() -> List[str]:
    """Names of the backends that can run in this process, preferred first (computed once:
    availability does not change within a process)."""
    global _AVAILABLE
    if _AVAILABLE is None:
        _ensure_loaded()
        ok = [b for b in _REGISTRY.values() if b.availability()[0]]
        _AVAILABLE = [b.name for b in sorted(ok, key=lambda b: -b.priority)]
    return list(_AVAILABLE)


_METHOD_OF_KIND = {"scaled": "rtn", "binary": "binary", "table": "kmeans"}


_PACKAGED_TABLE = os.path.join(os.path.dirname(__file__), "measured_dispatch.json")
_table_path = os.environ.get("QUANTDLLM_DISPATCH_TABLE") or _PACKAGED_TABLE


def _read_table(path: str) -> tuple:
    """Rows of a dispatch table; each carries the GPU it was measured on (``device``: older tables
    name their GPUs once, at the top)."""
    with open(path) as fh:
        data = json.load(fh)
    rows, devices = data["rows"], data.get("devices") or []
    default = devices[0] if len(devices) == 1 else ""
    return tuple(dict(r, device=r.get("device", default)) for r in rows)


@functools.lru_cache(maxsize=1)
def _measured_rows() -> tuple:
    try:
        return _read_table(_table_path)
    except (OSError, ValueError, KeyError, TypeError):
        return ()


def load_dispatch_table(path: Optional[str] = None) -> int:
    """Make ``lut_matmul(backend=None)`` choose from the dispatch table at ``path`` (one built by
    ``benchmarks/make_dispatch_table.py --out PATH`` from benchmarks run on one's own GPU); None
    goes back to the packaged table. Returns the number of rows; a bad file raises here, not later."""
    global _table_path
    new = path or _PACKAGED_TABLE
    rows = _read_table(new)
    for i, r in enumerate(rows):
        missing = {"K", "N", "bits", "method", "M", "backend"} - set(r)
        if missing:
            raise ValueError(f"{new}: row {i} lacks {sorted(missing)}")
    _table_path = new
    _measured_rows.cache_clear()
    measured_choice.cache_clear()
    return len(rows)


@functools.lru_cache(maxsize=16)
def _gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else ""


def _shape_distance(N: int, K: int, r) -> float:
    """Log-distance between (N, K) and a row's shape, per dimension: (4096, 12288) and (12288, 4096)
    split K differently, so they are not one point."""
    return abs(math.log2(N / r["N"])) + abs(math.log2(K / r["K"]))


@functools.lru_cache(maxsize=4096)
def measured_choice(names: tuple, N: int, K: int, bits: int, lut_kind: str, M: int, gpu: str = "") -> Optional[str]:
    """The backend in ``names`` measured fastest at the nearest benchmarked point (log-distance in
    M, N and K; same bits and LUT kind preferred), or None without measurements. Rows measured on
    ``gpu`` (a device name) are used alone when they hold this LUT kind at a shape within 2x
    (distance <= 1): the fastest backend differs between GPU models. Otherwise every GPU's rows
    serve: a kind runs different kernels (CUDA's tensor-core path takes affine weights only), and
    the backends' order moves with the shape (on the H200, M = 32: CUDA wins (4096, 12288) and
    Triton (4096, 4096)), so another GPU's rows of the same kind and shape say more."""
    best, best_d = None, math.inf
    method = _METHOD_OF_KIND.get(lut_kind)
    rows = _measured_rows()
    if gpu:
        own = tuple(r for r in rows if r["device"] == gpu)
        if any(r["method"] == method and _shape_distance(N, K, r) <= 1.0 for r in own):
            rows = own
    for r in rows:
        if r["backend"] not in names:
            continue
        d = (abs(math.log2(max(M, 1) / r["M"])) + _shape_distance(N, K, r)
             + 2.0 * abs(bits - r["bits"]) + (0.5 if r["method"] != method else 0.0))
        if d < best_d:
            best, best_d = r["backend"], d
    return best


def _has_lut_sets(qw) -> bool:
    segs = qw.segments if isinstance(qw, MixedQuantizedWeight) else (qw,)
    return any(s.timestep is not None and bool(s.timestep.luts) for s in segs)


def select_backend(qw, x: torch.Tensor, backend: Optional[str] = None, timestep=None) -> Backend:
    """The backend named, or (None) the fastest that can run: per-bucket LUT sets under a timestep
    go to Triton, which fuses them (H200, 2026-11-29: 30.1 / 63.3 / 84.4 µs against CUDA's 35.7 /
    90.6 / 96.5 at M = 1 / 32 / 256, where CUDA falls back to its older kernels and launches once
    per bucket for per-row t); otherwise the measured dispatch table decides."""
    if backend is not None:
        _ensure_loaded()
        if backend not in KNOWN_BACKENDS:
            raise ValueError(f"backend must be None or one of {KNOWN_BACKENDS}, got {backend!r}")
        b = _REGISTRY.get(backend)
        if b is None:
            raise BackendUnavailableError(f"backend {backend!r} is not part of this build "
                                          f"(available: {available_backends()})")
        ok, why = _availability(b)
        if not ok:
            raise BackendUnavailableError(f"backend {backend!r} is unavailable: {why}")
        ok, why = b.can_implement(qw, x)
        if not ok:
            raise BackendUnavailableError(f"backend {backend!r} cannot run this input: {why}")
        return b
    runnable = [name for name in (_AVAILABLE if _AVAILABLE is not None else available_backends())
                if _REGISTRY[name].preferred_for(x) and _REGISTRY[name].can_implement(qw, x)[0]]
    if timestep is not None and "triton" in runnable and _has_lut_sets(qw):
        return _REGISTRY["triton"]
    if len(runnable) > 2:  # several kernel backends besides torch
        N, K = qw.shape
        # a mixed weight is looked up as its whole shape at its rounded mean width and its first
        # segment's LUT kind: every segment runs on the backend chosen here
        bits = qw.bits if isinstance(qw, QuantizedWeight) else max(1, round(qw.bits))
        kind = qw.lut_kind if isinstance(qw, QuantizedWeight) else qw.segments[0].lut_kind
        pick = measured_choice(tuple(n for n in runnable if n != "torch"), N, K, bits, kind,
                               x.numel() // max(1, K), _gpu_name(x.device))
        if pick is not None:
            return _REGISTRY[pick]
    if runnable:
        return _REGISTRY[runnable[0]]
    raise BackendUnavailableError("no backend can run this input")  # unreachable: torch runs everything


def lut_matmul(x: torch.Tensor, qw, bias: Optional[torch.Tensor] = None, timestep=None,
               backend: Optional[str] = None) -> torch.Tensor:
    """``y = x @ W.T + bias`` for a quantized ``W``; ``x (..., K)`` fp16/bf16/fp32, y in x's dtype,
    fp32 accumulation. ``timestep`` selects the weight's timestep tables: a scalar, one per row
    (shape (M,) or x's leading shape), or one per sequence (a prefix of x's leading shape).
    ``backend``: None picks the fastest that can run; "torch", "triton" or "cuda" forces one."""
    if not isinstance(qw, (QuantizedWeight, MixedQuantizedWeight)):
        raise TypeError(f"qw must be a QuantizedWeight or MixedQuantizedWeight, got {type(qw).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    timestep = broadcast_timestep(timestep, x.shape[:-1])
    return select_backend(qw, x, backend, timestep).lut_matmul(x, qw, bias, timestep)
