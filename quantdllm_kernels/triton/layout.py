"""``pack_for("triton")``: the canonical format repacked once into what the Triton kernels read.

* Codes as bit planes packed along K, N contiguous (coalesced along N):
  ``plane0 (Kp / (32/B0), N)`` holds the low ``B0`` bits (B0 = bits, or 2 for 3-bit codes);
  ``plane1 (Kp / 32, N)`` holds bit 2 of 3-bit codes. Word ``r`` of plane0 holds codes
  ``k = r*(32/B0) + j`` at shift ``j*B0``. Kp = K rounded up to 32 (padded codes are 0 and meet x = 0).
* LUT parameters transposed to ``(G, N)`` / ``(G, N, E)`` so a tile's loads are contiguous in N.
* ``lut_mode``: 0 affine (``scaled`` with the codebook 0..2^b-1: w = c*s + z, no gather),
  1 ``scaled`` with a shared codebook, 2 ``scaled`` with per-row codebooks, 3 ``table`` (gather),
  4 ``binary`` (w = mu + sum_i alpha_i*(2*bit_i - 1), computed, never expanded: 4.6 bits not 6).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..format import QuantizedWeight

AFFINE, SCALED_SHARED, SCALED_ROW, TABLE, BINARY = range(5)


@dataclass(frozen=True, eq=False)
class TritonWeight:
    N: int
    K: int
    Kp: int
    bits: int
    b0: int
    b1: int
    group_size: int
    groups: int
    lut_mode: int
    plane0: torch.Tensor
    plane1: torch.Tensor
    scale: torch.Tensor              # (G, N) | dummy
    zero: Optional[torch.Tensor]     # (G, N) | None
    lut: torch.Tensor                # codebook (E,) | (N, E) | table (G, N, E) | alpha (G, bits, N) | dummy
    in_scale: Optional[torch.Tensor]  # (K,) fp32 | None

    @property
    def nbytes(self) -> int:
        ts = [self.plane0, self.plane1, self.scale, self.zero, self.lut, self.in_scale]
        return sum(t.numel() * t.element_size() for t in ts if t is not None and t.numel() > 1)


def _planes(codes: torch.Tensor, bits: int, Kp: int):
    """codes (N, K) int64 -> plane0, plane1 int32 packed along K, shape (rows, N)."""
    N, K = codes.shape
    if Kp > K:
        codes = torch.nn.functional.pad(codes, (0, Kp - K))
    b0, b1 = (2, 1) if bits == 3 else (bits, 0)

    def pack(c, b):
        per = 32 // b
        c = c.reshape(N, Kp // per, per)
        shifts = torch.arange(per, device=c.device, dtype=torch.int64) * b
        w = (c << shifts).sum(-1)  # disjoint bit fields
        w = torch.where(w >= 2**31, w - 2**32, w).to(torch.int32)
        return w.t().contiguous()

    p0 = pack(codes & ((1 << b0) - 1), b0)
    p1 = pack(codes >> 2, 1) if b1 else torch.zeros(1, dtype=torch.int32, device=codes.device)
    return p0, p1, b0, b1


def pack_for_triton(qw: QuantizedWeight) -> TritonWeight:
    N, K = qw.shape
    G, E, dev = qw.num_groups, 1 << qw.bits, qw.device
    Kp = -(-K // 32) * 32
    p0, p1, b0, b1 = _planes(qw.unpacked_codes(), qw.bits, Kp)
    dummy = torch.zeros(1, dtype=torch.float32, device=dev)
    scale, zero, lut = dummy, None, dummy
    if qw.lut_kind == "scaled":
        scale = qw.scale.t().contiguous()
        zero = qw.zero.t().contiguous() if qw.zero is not None else None
        cb = qw.codebook
        if cb.dim() == 1 and torch.equal(cb.float(), torch.arange(E, device=dev, dtype=torch.float32)):
            mode = AFFINE
        elif cb.dim() == 1:
            mode, lut = SCALED_SHARED, cb.contiguous()
        else:
            mode, lut = SCALED_ROW, cb.contiguous()
    elif qw.lut_kind == "table":
        mode, lut = TABLE, qw.table.permute(1, 0, 2).contiguous()        # (G, N, E)
    else:
        mode, lut = BINARY, qw.alpha.permute(1, 2, 0).contiguous()       # (G, bits, N)
        scale = qw.mu.t().contiguous()                                   # mu rides in the scale slot
    ins = qw.in_scale.float().contiguous() if qw.in_scale is not None else None
    return TritonWeight(N, K, Kp, qw.bits, b0, b1, qw.group_size, G, mode, p0, p1, scale, zero, lut, ins)
