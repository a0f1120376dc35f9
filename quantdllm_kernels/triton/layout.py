"""``pack_for("triton")``: the canonical format repacked once into what the Triton kernels read.

* Codes as bit planes packed along K, N contiguous (coalesced along N):
  ``plane0 (Kp / (32/B0), N)`` holds the low ``B0`` bits (B0 = bits, or 2 for 3-bit codes);
  ``plane1 (Kp / 32, N)`` holds bit 2 of 3-bit codes. Word ``r`` of plane0 holds codes
  ``k = r*(32/B0) + j`` at shift ``j*B0``. Kp = K rounded up to 32 (padded codes are 0 and meet x = 0).
* LUT parameters transposed to ``(G, N)`` / ``(G, N, E)`` so a tile's loads are contiguous in N.
* ``lut_mode``: 0 affine (``scaled`` with the codebook 0..2^b-1: w = c*s + z, no gather),
  1 ``scaled`` with a shared codebook, 2 ``scaled`` with per-row codebooks, 3 ``table`` (gather),
  4 ``binary`` (w = mu + sum_i alpha_i*(2*bit_i - 1), computed, never expanded: 4.6 bits not 6).
* Per-bucket LUT sets of timestep tables (``TimestepLuts``): each slot fed by a per-bucket field is
  stacked over the buckets in the same layout; the kernels pick a bucket's set by pointer offset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from ..format import _LUT_FIELDS, QuantizedWeight

AFFINE, SCALED_SHARED, SCALED_ROW, TABLE, BINARY = range(5)
# not a storage mode: TABLE's storage read by a select tree over the group's 2^b entries instead
# of one gather per code (bits <= 3; the tuner offers it beside the gather, LUT_SELECT in a config)
TABLE_SELECT = 5


@dataclass(frozen=True, eq=False)
class TimestepLuts:
    """Per-bucket LUT sets in the Triton layout: the scale / zero / lut slots, each either stacked
    over the T buckets (its bucket stride in elements) or the weight's own, shared (stride 0). The
    kernels offset the slot pointers by bucket * stride; the codes are the same for every bucket."""
    scale: torch.Tensor
    zero: Optional[torch.Tensor]
    lut: torch.Tensor
    strides: Tuple[int, int, int]


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
    ts_luts: Optional["TimestepLuts"] = None  # per-bucket LUT sets of the weight's timestep tables

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


# Which canonical LUT field feeds each kernel slot (scale, zero, lut), per LUT kind.
_SLOT_SOURCES = {"scaled": ("scale", "zero", "codebook"), "table": (None, None, "table"),
                 "binary": ("mu", None, "alpha")}


def _is_affine(cb: torch.Tensor, E: int) -> bool:
    return cb.dim() == 1 and torch.equal(cb.float(), torch.arange(E, device=cb.device, dtype=torch.float32))


def _lut_slots(qw: QuantizedWeight, f: Dict[str, Optional[torch.Tensor]], affine: bool):
    """(lut_mode, scale, zero, lut) in the Triton layout from the canonical LUT fields ``f``."""
    dummy = torch.zeros(1, dtype=torch.float32, device=qw.device)
    scale, zero, lut = dummy, None, dummy
    if qw.lut_kind == "scaled":
        scale = f["scale"].t().contiguous()
        zero = f["zero"].t().contiguous() if f["zero"] is not None else None
        cb = f["codebook"]
        if affine:
            mode = AFFINE
        elif cb.dim() == 1:
            mode, lut = SCALED_SHARED, cb.contiguous()
        else:
            mode, lut = SCALED_ROW, cb.contiguous()
    elif qw.lut_kind == "table":
        mode, lut = TABLE, f["table"].permute(1, 0, 2).contiguous()        # (G, N, E)
    else:
        mode, lut = BINARY, f["alpha"].permute(1, 2, 0).contiguous()       # (G, bits, N)
        scale = f["mu"].t().contiguous()                                   # mu rides in the scale slot
    return mode, scale, zero, lut


def pack_for_triton(qw: QuantizedWeight) -> TritonWeight:
    N, K = qw.shape
    E = 1 << qw.bits
    Kp = -(-K // 32) * 32
    p0, p1, b0, b1 = _planes(qw.unpacked_codes(), qw.bits, Kp)
    base = {name: getattr(qw, name) for name in _LUT_FIELDS}
    ts = qw.timestep
    sets = ts.luts if ts is not None and ts.luts else {}
    # one mode serves the base LUTs and every bucket's: affine only if every codebook is 0..E-1
    affine = qw.lut_kind == "scaled" and _is_affine(qw.codebook, E) and (
        "codebook" not in sets or all(_is_affine(cb, E) for cb in sets["codebook"]))
    mode, scale, zero, lut = _lut_slots(qw, base, affine)
    ts_luts = None
    if sets:
        per_bucket = [_lut_slots(qw, {**base, **{k: v[b] for k, v in sets.items()}}, affine)[1:]
                      for b in range(ts.num_buckets)]
        slots, strides = [], []
        for i, (src, shared) in enumerate(zip(_SLOT_SOURCES[qw.lut_kind], (scale, zero, lut))):
            if src is not None and src in sets:
                stacked = torch.stack([s[i] for s in per_bucket]).contiguous()
                slots.append(stacked)
                strides.append(stacked[0].numel())
            else:
                slots.append(shared)
                strides.append(0)
        ts_luts = TimestepLuts(*slots, tuple(strides))
    ins = qw.in_scale.float().contiguous() if qw.in_scale is not None else None
    return TritonWeight(N, K, Kp, qw.bits, b0, b1, qw.group_size, qw.num_groups, mode, p0, p1, scale, zero, lut,
                        ins, ts_luts)
