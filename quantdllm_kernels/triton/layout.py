"""``pack_for("triton")``: the canonical format repacked once into what the Triton kernels read.

* Codes as bit planes, N contiguous (coalesced along N): ``plane0`` holds the low ``B0`` bits
  (B0 = bits, or 2 for 3-bit codes), ``plane1`` bit 2 of 3-bit codes. A plane of B bits packs
  PER = 32/B codes a word in *slab-interleaved* order: K is cut into blocks of 16*PER; word
  ``16*blk + r`` holds codes ``k = blk*16*PER + 16*j + r`` at shift ``j*B`` (j < PER, r < 16).
  One (16, BLOCK_N) tile of words therefore yields, shift by shift, PER slabs of 16 consecutive
  k: each word is loaded once, and each slab meets a contiguous 16-wide slice of x (a K = 16
  tensor-core step). Kp = K rounded up to the largest block (512 for 3-bit); padded codes are 0
  and meet x = 0.
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


def k_block(bits: int) -> int:
    """K granularity of the layout: the largest slab-interleave block of its planes."""
    return 512 if bits in (1, 3) else 16 * 32 // bits


def _planes(codes: torch.Tensor, bits: int, Kp: int):
    """codes (N, K) int64 -> plane0, plane1 int32 words, shape (rows, N), slab-interleaved."""
    N, K = codes.shape
    if Kp > K:
        codes = torch.nn.functional.pad(codes, (0, Kp - K))
    b0, b1 = (2, 1) if bits == 3 else (bits, 0)

    def pack(c, b):
        per = 32 // b
        c = c.reshape(N, Kp // (16 * per), per, 16)          # [n, blk, j, r]: k = blk*16*per + 16*j + r
        shifts = torch.arange(per, device=c.device, dtype=torch.int64).view(1, 1, per, 1) * b
        w = (c << shifts).sum(2)                             # [n, blk, r], disjoint bit fields
        w = torch.where(w >= 2**31, w - 2**32, w).to(torch.int32)
        return w.reshape(N, Kp // per).t().contiguous()

    p0 = pack(codes & ((1 << b0) - 1), b0)
    p1 = pack(codes >> 2, 1) if b1 else torch.zeros(1, dtype=torch.int32, device=codes.device)
    return p0, p1, b0, b1


def pack_for_triton(qw: QuantizedWeight) -> TritonWeight:
    N, K = qw.shape
    G, E, dev = qw.num_groups, 1 << qw.bits, qw.device
    Kp = -(-K // k_block(qw.bits)) * k_block(qw.bits)
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
