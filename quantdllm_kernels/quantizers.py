"""Data-free quantizers that produce the canonical format: round-to-nearest (``scaled``),
per-group k-means (``table``) and greedy residual binarization (``binary``).

Data-aware calibration (Hessian-weighted, masked calibration data) builds on these in
``quantdllm_kernels.calibrate``. Everything is vectorised over all groups of the weight.
"""
from __future__ import annotations

from typing import Optional

import torch

from ._validate import FLOAT_DTYPES, check_finite, check_tensor
from .format import GROUP_SIZES, QuantizedWeight
from .packing import pack_codes

__all__ = ["quantize_weight", "METHODS", "rtn_groups", "kmeans_groups", "binary_groups"]

METHODS = ("rtn", "kmeans", "binary")


def _groups(W: torch.Tensor, g: int) -> torch.Tensor:
    N, K = W.shape
    return W.reshape(N, K // g, g)


def rtn_groups(w: torch.Tensor, bits: int, lut_dtype: torch.dtype):
    """Uniform asymmetric RTN of groups ``w (N, G, g)`` -> codes, scale, zero (w = code*scale + zero)."""
    E = 1 << bits
    lo, hi = w.amin(-1), w.amax(-1)
    scale = (hi - lo) / (E - 1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    # Round the parameters to their storage dtype first, then choose codes against what is stored.
    scale_q, zero_q = scale.to(lut_dtype), lo.to(lut_dtype)
    codes = torch.round((w - zero_q.float().unsqueeze(-1)) / scale_q.float().unsqueeze(-1)).clamp_(0, E - 1)
    return codes.to(torch.int64), scale_q, zero_q


def _assign_sorted(w: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Nearest centroid for each value; ``centroids (..., E)`` sorted ascending, ``w (..., g)``."""
    mid = (centroids[..., 1:] + centroids[..., :-1]) * 0.5
    return torch.searchsorted(mid.contiguous(), w.contiguous())


def kmeans_groups(w: torch.Tensor, bits: int, lut_dtype: torch.dtype, *, iters: int = 30,
                  sample_weight: Optional[torch.Tensor] = None, seed: int = 0):
    """Per-group 1-D k-means (Lloyd) with 2**bits centroids; ``sample_weight (..., g)`` optional.

    Initialised on the uniform min..max grid, so the result is never worse than RTN's grid (Lloyd
    steps only lower the error); an empty cluster is re-seeded at a value drawn with ``seed``.
    Returns codes and the per-group table (sorted ascending).
    """
    E = 1 << bits
    wf = w.float()
    sw = torch.ones_like(wf) if sample_weight is None else sample_weight.float().expand_as(wf)
    lo, hi = wf.amin(-1, keepdim=True), wf.amax(-1, keepdim=True)
    c = lo + (hi - lo) * torch.linspace(0, 1, E, device=w.device)  # (..., E)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for _ in range(iters):
        a = _assign_sorted(wf, c)
        s = torch.zeros_like(c).scatter_add_(-1, a, wf * sw)
        n = torch.zeros_like(c).scatter_add_(-1, a, sw)
        empty = n <= 0
        new = torch.where(empty, c, s / n.clamp_min(1e-30))
        if bool(empty.any()):
            pick = torch.randint(0, wf.shape[-1], new.shape, generator=gen).to(w.device)
            new = torch.where(empty, torch.gather(wf, -1, pick), new)
        new = torch.sort(new, dim=-1).values
        if torch.equal(new, c):
            break
        c = new
    table = c.to(lut_dtype)
    codes = _assign_sorted(wf, table.float())
    return codes, table


def binary_groups(w: torch.Tensor, bits: int, lut_dtype: torch.dtype):
    """Greedy residual binarization of order ``bits``: w ~ mu + sum_i alpha_i * B_i, B_i in {-1, +1}.

    Code bit i is 1 where B_i = +1. Returns codes, alpha (..., bits), mu (...).
    """
    wf = w.float()
    mu = wf.mean(-1)
    mu_q = mu.to(lut_dtype)
    r = wf - mu_q.float().unsqueeze(-1)
    codes = torch.zeros_like(wf, dtype=torch.int64)
    alphas = []
    for i in range(bits):
        sign_pos = r >= 0
        a = r.abs().mean(-1).to(lut_dtype)
        alphas.append(a)
        r = r - torch.where(sign_pos, 1.0, -1.0) * a.float().unsqueeze(-1)
        codes |= sign_pos.to(torch.int64) << i
    return codes, torch.stack(alphas, -1), mu_q


def quantize_weight(W: torch.Tensor, *, bits: int = 4, group_size: Optional[int] = 128, method: str = "rtn",
                    lut_dtype: torch.dtype = torch.float16, seed: int = 0) -> QuantizedWeight:
    """Quantize a dense ``W (N, K)`` into a :class:`QuantizedWeight`.

    ``method``: ``"rtn"`` -> ``scaled`` (uniform asymmetric, codebook 0..2**b-1, group scale and zero);
    ``"kmeans"`` -> ``table``; ``"binary"`` -> ``binary``. ``group_size=None`` means one group per row.
    """
    check_tensor("W", W, ndim=2)
    if W.dtype not in FLOAT_DTYPES + (torch.float64,):
        raise TypeError(f"W must be a floating-point tensor, got {W.dtype}")
    check_finite("W", W)
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in (1, 2, 3, 4):
        raise ValueError(f"bits must be 1, 2, 3 or 4, got {bits!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if lut_dtype not in FLOAT_DTYPES:
        raise TypeError(f"lut_dtype must be one of {[str(d) for d in FLOAT_DTYPES]}, got {lut_dtype}")
    N, K = W.shape
    g = K if group_size is None else group_size
    if isinstance(g, bool) or not isinstance(g, int) or (g not in GROUP_SIZES and g != K):
        raise ValueError(f"group_size must be one of {GROUP_SIZES}, None or in_features ({K}), got {group_size!r}")
    if K % g:
        raise ValueError(f"in_features ({K}) must be divisible by group_size ({g})")
    w = _groups(W.float(), g)
    common = dict(bits=bits, group_size=g, in_features=K)
    if method == "rtn":
        codes, scale, zero = rtn_groups(w, bits, lut_dtype)
        codebook = torch.arange(1 << bits, dtype=lut_dtype, device=W.device)
        return QuantizedWeight(codes=pack_codes(codes.reshape(N, K), bits), lut_kind="scaled",
                               codebook=codebook, scale=scale, zero=zero, **common)
    if method == "kmeans":
        codes, table = kmeans_groups(w, bits, lut_dtype, seed=seed)
        return QuantizedWeight(codes=pack_codes(codes.reshape(N, K), bits), lut_kind="table", table=table, **common)
    codes, alpha, mu = binary_groups(w, bits, lut_dtype)
    return QuantizedWeight(codes=pack_codes(codes.reshape(N, K), bits), lut_kind="binary", alpha=alpha, mu=mu,
                           **common)
