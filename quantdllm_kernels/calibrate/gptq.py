"""GPTQ-style error compensation for the grid quantizers (RTN -> ``scaled``, k-means -> ``table``).

Columns are quantized left to right; the error of each column, divided by the diagonal of the
upper Cholesky factor U of H^-1, is pushed onto the columns not yet quantized (the optimal
update of the remaining weights under tr(E H E^T), Frantar et al., 2022). Updates inside a
block of columns are applied eagerly, to the rest of the matrix once per block (the "lazy
batch" form). A group's LUT is fitted when the sweep reaches the group's first column, on the
weights as they are then (already compensated for every earlier group), so the LUT matches the
weights it will encode -- the same choice as GPTQ's ``static_groups=False``.

Only the grid fit differs between the two methods: RTN's min/max grid (``rtn_groups``), or a
k-means table weighted by diag(H) (``kmeans_groups``).
"""
from __future__ import annotations

import torch

from ..format import QuantizedWeight
from ..packing import pack_codes
from ..quantizers import _assign_sorted, kmeans_groups, rtn_groups

__all__ = ["gptq_quantize", "upper_inverse_cholesky"]


def upper_inverse_cholesky(H: torch.Tensor) -> torch.Tensor:
    """U with U^T U = H^-1 (upper triangular), float64. Raises if H is not positive definite."""
    L, info = torch.linalg.cholesky_ex(H.double())
    if int(info) != 0:
        raise ValueError("H is not positive definite; damp it (damped_hessian) before GPTQ")
    Hinv = torch.cholesky_inverse(L)
    return torch.linalg.cholesky(Hinv, upper=True)


def gptq_quantize(W: torch.Tensor, H: torch.Tensor, *, bits: int, group_size: int, method: str = "rtn",
                  block_size: int = 128, lut_dtype: torch.dtype = torch.float16, seed: int = 0) -> QuantizedWeight:
    """Quantize ``W (N, K)`` with GPTQ compensation against the (damped) Hessian ``H (K, K)``.
    ``method``: ``"rtn"`` (LUT kind ``scaled``) or ``"kmeans"`` (LUT kind ``table``)."""
    if method not in ("rtn", "kmeans"):
        raise ValueError(f"GPTQ compensates the grid quantizers 'rtn' and 'kmeans', got {method!r}")
    if W.dim() != 2 or H.shape != (W.shape[1], W.shape[1]):
        raise ValueError(f"H must be (K, K) = ({W.shape[1]}, {W.shape[1]}) for W of shape {tuple(W.shape)}, "
                         f"got {tuple(H.shape)}")
    N, K = W.shape
    g = group_size
    if K % g:
        raise ValueError(f"in_features ({K}) must be divisible by group_size ({g})")
    G, E = K // g, 1 << bits
    H = H.double().clone()
    dead = H.diagonal() == 0          # channels never active: weight irrelevant, keep H invertible
    H[dead, dead] = 1.0
    U = upper_inverse_cholesky(H)
    hdiag = H.diagonal().float()
    Wq = W.double().clone()
    Wq[:, dead] = 0
    codes = torch.zeros(N, K, dtype=torch.int64, device=W.device)
    if method == "rtn":
        scale = torch.empty(N, G, dtype=lut_dtype, device=W.device)
        zero = torch.empty_like(scale)
    else:
        table = torch.empty(N, G, E, dtype=lut_dtype, device=W.device)
    lut = None  # (N, E) float64 values of the current group, ascending
    for i1 in range(0, K, block_size):
        i2 = min(i1 + block_size, K)
        W1 = Wq[:, i1:i2]                       # a view: in-block updates land in Wq
        Err = torch.empty(N, i2 - i1, dtype=torch.float64, device=W.device)
        for j in range(i2 - i1):
            c = i1 + j
            if c % g == 0:                       # fit the group's grid on its current weights
                gi = c // g
                cur = Wq[:, c:c + g].float().unsqueeze(1)                    # (N, 1, g)
                if method == "rtn":
                    _, s, z = rtn_groups(cur, bits, lut_dtype)
                    scale[:, gi], zero[:, gi] = s[:, 0], z[:, 0]
                    lut = z.double() + s.double() * torch.arange(E, dtype=torch.float64, device=W.device)
                else:
                    _, tb = kmeans_groups(cur, bits, lut_dtype, sample_weight=hdiag[c:c + g].view(1, 1, g), seed=seed)
                    table[:, gi] = tb[:, 0]
                    lut = tb[:, 0].double()
            w = W1[:, j]
            q = _assign_sorted(w.unsqueeze(1), lut)                           # (N, 1) nearest entry
            codes[:, c] = q[:, 0]
            err = (w - lut.gather(1, q)[:, 0]) / U[c, c]
            W1[:, j:] -= err.unsqueeze(1) * U[c, c:i2].unsqueeze(0)
            Err[:, j] = err
        Wq[:, i2:] -= Err @ U[i1:i2, i2:]
    common = dict(bits=bits, group_size=g, in_features=K, codes=pack_codes(codes, bits))
    if method == "rtn":
        return QuantizedWeight(lut_kind="scaled", codebook=torch.arange(E, dtype=lut_dtype, device=W.device),
                               scale=scale, zero=zero, **common)
    return QuantizedWeight(lut_kind="table", table=table, **common)
