"""The CUDA tensor-core path's weight layout (``csrc/lut_mma.cu``), built once per weight.

Which weights: the ``scaled`` kind whose codebook is an arithmetic progression (RTN's 0..2^b-1,
any affine grid), bits 2-4, K % 64 == 0, group size a power of two >= 64 or the whole row (so every
16-k mma step lies in one group). Then w = cb[c]*s + z = c*(d*s) + (cb0*s + z) is folded into one
scale and zero per (row, group), which the kernel applies after the mma, once per group, to the
accumulated products of the magic-number-decoded codes (one LOP3 per two weights).

Layout (the kernel's header comment has the why):
* ``codes`` int32 ``(tiles16, supers, vectors, 32 lanes, 4)``: a lane's ``words`` (4 for 2/4-bit,
  12 for 3-bit) as 16-byte vectors, vector-major so that a warp's load of one is a contiguous 512
  bytes (``lane_words`` gives the lane-major view). Rows padded to a multiple of 32, K to a
  multiple of the super-chunk (64 codes for 4-bit, 128 for 2-bit, 256 for 3-bit). Lane l = 4g + q
  of a 16-row tile owns rows g and g + 8 and, in every 64-code chunk, k in [16q, 16q + 16). In
  chunk step s (0..3) its A register j (0..3) holds rows g + 8*(j & 1) at k = 16q + 4s + 2*(j >> 1)
  + {0, 1}; the two codes of a register sit 16 bits apart in one word. 2-bit: word 2c + (s >> 1)
  of chunk c, register j at bits 2*(4*(s & 1) + j) (rows g + 8 two bits up, f = 4). 3-bit (since the
  twenty-third session): 6-bit row pairs (row g at + 0, row g + 8 at + 3, f = 8) in four 12-bit
  blocks per chunk and half: block d holds pair d & 1 of step d >> 1 at bit 0 and of step
  (d >> 1) + 2 at bit 6 -- what lane q = d of the quad needs from this lane when lut_wgmma reads x as
  stored -- blocks 0-2 in bits 0-11 of words 3c + d, block 3 in the three words' top nibbles (bits
  12-15 of each half: its bits 0-3, 4-7, 8-11), put together once per chunk (3 shifts, 3 LOP3). A
  register is one LOP3 of its block or of the block shifted by 6. Was a 2-bit plane plus a 1-bit
  plane (two LOP3 per register, two shifts per k pair: 46 against 26 ALU instructions per tile and
  chunk).
* ``sz`` ``(tiles16, groups, 8, 4)`` in the activation dtype: (s_g, s_g+8, z_g, z_g+8).

:func:`emulate_lut_mma` replays the kernel's arithmetic from the PTX fragment definitions, so the
CPU tests check this layout against the canonical format without a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from ..format import QuantizedWeight

__all__ = ["MmaWeight", "mma_support", "affine_scale_zero", "pack_for_mma", "emulate_lut_mma", "super_k", "lane_words",
           "quad_exchange", "decode_factor", "magic_bits"]

_CHUNKS = {4: 1, 2: 2, 3: 4}  # 64-code chunks per super-chunk (16 bytes a lane for 2/4 bits, 48 for 3)


def super_k(bits: int) -> int:
    return 64 * _CHUNKS[bits]


@dataclass
class MmaWeight:
    codes: torch.Tensor
    sz: torch.Tensor
    N: int
    K: int
    bits: int
    group_shift: int
    in_scale: Optional[torch.Tensor] = None  # (K,) in the activation dtype


def _layout_bits(bits: int) -> int:
    """Code width in the layout: 1-bit codes (mixed-precision segments) take the 2-bit layout, codes
    0/1 with the same scale and zero. Twice the code bytes of the 1-bit GEMV, but the tensor-core
    path, where the alternative at 17-64 tokens is a dequantized fp16 copy and cuBLAS."""
    return 2 if bits == 1 else bits


def _group_shift(g: int, K: int) -> Optional[int]:
    if g == K:
        return 31
    if g >= 64 and g & (g - 1) == 0:
        return g.bit_length() - 1
    return None


def affine_codebook(qw: QuantizedWeight) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """(cb0, step) with cb[i] = cb0 + i*step, per row ``(N, 1)`` or shared ``(1, 1)``, or None."""
    if qw.lut_kind != "scaled":
        return None
    cb = qw.codebook.float()
    cb = cb.unsqueeze(0) if cb.dim() == 1 else cb
    d = cb[:, 1:] - cb[:, :-1]
    step = d[:, :1]
    tol = 2.0 ** -10 * cb.abs().amax().clamp_min(1e-30)  # a progression rounded to fp16 still counts
    if bool(((d - step).abs() > tol).any()):
        return None
    return cb[:, :1], step


def mma_support(qw: QuantizedWeight) -> Tuple[bool, str]:
    """Whether the tensor-core path takes this weight (timestep LUT sets are checked by the caller)."""
    N, K = qw.shape
    if qw.lut_kind != "scaled":
        return False, f"the tensor-core path runs the affine `scaled` kind, not `{qw.lut_kind}`"
    if _layout_bits(qw.bits) not in _CHUNKS:
        return False, f"the tensor-core path runs 1 (as 2), 2, 3 and 4 bits, not {qw.bits}"
    if K % 64:
        return False, f"in_features ({K}) must be a multiple of 64 for the tensor-core path"
    if _group_shift(qw.group_size, K) is None:
        return False, (f"group_size {qw.group_size} must be a power of two >= 64 or the whole row for the "
                       "tensor-core path (its scales apply per 64-code chunk)")
    if affine_codebook(qw) is None:
        return False, "the codebook is not an arithmetic progression (e.g. NF4): it needs a lookup"
    return True, ""


def affine_scale_zero(qw: QuantizedWeight) -> Tuple[torch.Tensor, torch.Tensor]:
    """fp32 (s', z') ``(N, G)`` with w = code * s' + z' (the codebook folded in)."""
    cb0, step = affine_codebook(qw)
    s = qw.scale.float()
    z = qw.zero.float() if qw.zero is not None else torch.zeros_like(s)
    return step * s, cb0 * s + z


def _positions(bits: int, device):
    """Per (lane, chunk, step, reg, half): row in tile, k in super-chunk, and (word, bit) per plane."""
    lane = torch.arange(32, device=device).view(32, 1, 1, 1, 1)
    c = torch.arange(_CHUNKS[bits], device=device).view(1, -1, 1, 1, 1)
    s = torch.arange(4, device=device).view(1, 1, 4, 1, 1)
    j = torch.arange(4, device=device).view(1, 1, 1, 4, 1)
    h = torch.arange(2, device=device).view(1, 1, 1, 1, 2)
    shape = (32, _CHUNKS[bits], 4, 4, 2)
    row = (lane // 4 + 8 * (j & 1)).expand(shape)
    k = (c * 64 + 16 * (lane % 4) + 4 * s + 2 * (j >> 1) + h).expand(shape)
    if bits == 4:
        planes = [((s + 0 * c).expand(shape), (4 * j + 16 * h).expand(shape), 0, 15)]
    elif bits == 2:
        planes = [((2 * c + s // 2).expand(shape), (2 * (4 * (s % 2) + j) + 16 * h).expand(shape), 0, 3)]
    else:
        # one plane per code bit e: bit fb = 6*(s >> 1) + 3*(j & 1) + e of block d = 2*(s & 1) + (j >> 1),
        # in word 3c + d at fb (blocks 0-2) or, block 3, in the top nibble of word 3c + fb // 4
        planes = []
        d = (2 * (s % 2) + (j >> 1)).expand(shape)
        for e in range(3):
            fb = (6 * (s >> 1) + 3 * (j & 1) + e).expand(shape)
            word = torch.where(d == 3, 3 * c + fb // 4, 3 * c + d)
            bit = torch.where(d == 3, 12 + fb % 4, fb) + 16 * h
            planes.append((word, bit, e, 1))
    return row, k, planes


def pack_for_mma(qw: QuantizedWeight, dtype: torch.dtype, tile_batch: int = 512) -> MmaWeight:
    """The layout above for activations of ``dtype`` (fp16 or bf16); raises if unsupported."""
    ok, why = mma_support(qw)
    if not ok:
        raise ValueError(why)
    N, K = qw.shape
    bits = _layout_bits(qw.bits)
    SK = super_k(bits)
    Np, Kp = -(-N // 32) * 32, -(-K // SK) * SK
    tiles, U, words = Np // 16, Kp // SK, bits * _CHUNKS[bits]
    dev = qw.codes.device
    row, k, planes = _positions(bits, dev)
    out = torch.empty(tiles, U, 32, words, dtype=torch.int32, device=dev)
    for t0 in range(0, tiles, tile_batch):  # bounded int64 temporaries on big weights
        t1 = min(tiles, t0 + tile_batch)
        r0, r1 = t0 * 16, min(N, t1 * 16)
        C = torch.zeros((t1 - t0) * 16, Kp, dtype=torch.int64, device=dev)
        if r1 > r0:
            C[: r1 - r0, :K] = _rows_codes(qw, r0, r1)
        Ct = C.view(t1 - t0, 16, U, SK).permute(0, 2, 1, 3)  # (tiles, U, 16, SK)
        vals = Ct[:, :, row, k]  # (tiles, U, 32, chunks, 4, 4, 2)
        acc = torch.zeros(t1 - t0, U, 32, words, dtype=torch.int64, device=dev)
        for word, bit, shift, mask in planes:
            contrib = ((vals >> shift) & mask) << bit
            acc.scatter_add_(3, word.reshape(1, 1, 32, -1).expand(t1 - t0, U, 32, -1),
                             contrib.reshape(t1 - t0, U, 32, -1))
        out[t0:t1] = torch.where(acc >= 2**31, acc - 2**32, acc).to(torch.int32)
    out = out.view(tiles, U, 32, words // 4, 4).transpose(2, 3).contiguous()  # vector-major
    s, z = affine_scale_zero(qw)
    G = s.shape[1]
    pad = Np - N
    if pad:
        s = torch.nn.functional.pad(s, (0, 0, 0, pad))
        z = torch.nn.functional.pad(z, (0, 0, 0, pad))
    s = s.view(tiles, 2, 8, G).permute(0, 3, 2, 1)  # (tiles, G, row8, half)
    z = z.view(tiles, 2, 8, G).permute(0, 3, 2, 1)
    sz = torch.cat([s, z], dim=3).to(dtype).contiguous()
    ins = None if qw.in_scale is None else qw.in_scale.to(dtype).contiguous()
    return MmaWeight(out, sz, N, K, bits, _group_shift(qw.group_size, K), ins)


def _rows_codes(qw: QuantizedWeight, r0: int, r1: int) -> torch.Tensor:
    from ..packing import unpack_codes
    return unpack_codes(qw.codes[r0:r1], qw.bits, qw.in_features)


def lane_words(codes: torch.Tensor) -> torch.Tensor:
    """``(tiles, supers, 32 lanes, words)``: each lane's words in order, from the stored vector-major
    ``(tiles, supers, vectors, 32, 4)``."""
    t, u, v = codes.shape[:3]
    return codes.transpose(2, 3).reshape(t, u, 32, 4 * v)


def _a_payload(w: torch.Tensor, bits: int, c: int, s: int, j: int, f_hi: int) -> torch.Tensor:
    """The kernel's ``Decode::a_reg`` (mma_fragments.cuh) on int64 words ``w (..., words)``, without
    the magic: two 16-bit fields f*code, f = f_hi (``decode_factor``) for rows g + 8 (j odd), whose
    shift the rows g share."""
    jp, odd = j >> 1, j & 1
    if bits == 4:
        if f_hi == 16:  # the odd nibbles in place
            v = w[..., s] >> 8 if jp else w[..., s]
            return v & (0x00F000F0 if odd else 0x000F000F)
        return (w[..., s] >> (4 * j)) & 0x000F000F
    if bits == 3:
        return (_block(w, c, 2 * (s & 1) + jp) >> (6 * (s >> 1))) & (0x00380038 if odd else 0x00070007)
    return (w[..., 2 * c + (s >> 1)] >> (2 * (4 * (s & 1) + 2 * jp))) & (0x000C000C if odd else 0x00030003)


def _block(w: torch.Tensor, c: int, d: int) -> torch.Tensor:
    """3-bit block d of chunk c (bits 0-11 of each half; bits 12-15 of blocks 0-2 are block 3's)."""
    if d < 3:
        return w[..., 3 * c + d]
    return (((w[..., 3 * c] >> 12) & 0x000F000F) | ((w[..., 3 * c + 1] >> 8) & 0x00F000F0)
            | ((w[..., 3 * c + 2] >> 4) & 0x0F000F00))


# x as stored (lut_wgmma's x_natural, csrc/lut_wgmma_kernel.cuh): wgmma step st at lane q needs k =
# 16 st + 2q + 8 jp + {0, 1}, which the layout put in lane st's words. 2-bit (QuadSwap): two butterfly
# stages per word swap a bit of the lane's quad index with the bit of the word position that holds it:
# (lane bit, position bit) (lane q's fields at position bits b2 = q & 1, b3 = q >> 1). 3-bit
# (gather_blocks): lane q reads block q of each lane of its quad from shared memory.
_XCHG_STAGES = ((0, 2), (1, 3))
_M0 = (0x55555555, 0x33333333, 0x0F0F0F0F, 0x00FF00FF)  # positions whose bit P is 0, P = 0..3


def quad_exchange(w: torch.Tensor, lane_bit: int, pos_bit: int) -> torch.Tensor:
    """The kernel's ``QuadSwap`` on int64 words ``w (..., 32 lanes)``: lanes q and q ^ (1 << lane_bit)
    trade the bits whose position bit ``pos_bit`` differs from their own lane bit; afterwards that
    position bit holds the source lane's bit. Each lane rotates its word (left by 2^P where its lane
    bit is 1, right where 0), the partner's rotated word arrives by one shuffle, and one LOP3 keeps
    the own bits; for whole bytes (P = 3) the partner's word as it is, and one byte permutation."""
    lane = torch.arange(32, device=w.device)
    lb = ((lane % 4) >> lane_bit) & 1
    if pos_bit == 3:  # __byte_perm(v, partner's v, lane bit ? 0x3715 : 0x6240)
        r = w[..., lane ^ (1 << lane_bit)]
        out = torch.zeros_like(w)
        for i, (own0, own1) in enumerate([(0, 5), (4, 1), (2, 7), (6, 3)]):  # source byte of byte i: v 0-3, r 4-7
            src = torch.where(lb == 1, own1, own0)
            byte = torch.where(src < 4, w >> (8 * (src % 4)), r >> (8 * (src % 4))) & 0xFF
            out = out | (byte << (8 * i))
        return out
    m0 = _M0[pos_bit]
    keep = torch.where(lb == 1, m0 ^ 0xFFFFFFFF, m0)
    amt = torch.where(lb == 1, 1 << pos_bit, 32 - (1 << pos_bit))
    send = ((w << amt) | (w >> (32 - amt))) & 0xFFFFFFFF
    recv = send[..., lane ^ (1 << lane_bit)]
    return (w & keep) | (recv & (keep ^ 0xFFFFFFFF))


def _natural_words(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Lane words ``(..., 32, words)`` of one super-chunk after the kernel's exchange (2-bit), or, 3-bit,
    the gathered blocks ``(..., 32, 4 * chunks)``: word 4c + st of lane 4g + q is block q of lane 4g + st."""
    if bits == 3:
        return torch.stack([_gathered(w, c, st) for c in range(_CHUNKS[3]) for st in range(4)], dim=-1)
    out = w.clone()
    for c in range(_CHUNKS[bits]):
        for i in (2 * c, 2 * c + 1):
            v = out[..., i]
            for lane_bit, pos_bit in _XCHG_STAGES:
                v = quad_exchange(v, lane_bit, pos_bit)
            out[..., i] = v
    return out


def _gathered(w: torch.Tensor, c: int, st: int) -> torch.Tensor:
    """``(..., 32)``: for each lane 4g + q, block q of chunk c of lane 4g + st (3-bit)."""
    lane = torch.arange(32, device=w.device)
    src = w[..., (lane & ~3) + st, :]  # (..., 32 readers, words of the source lane)
    return torch.stack([_block(src[..., r, :], c, r % 4) for r in range(32)], dim=-1)


def _a_payload_natural(w: torch.Tensor, bits: int, c: int, st: int, j: int) -> torch.Tensor:
    """``DecodeNat::a_reg`` (lut_wgmma_kernel.cuh) on exchanged (2-bit) or gathered (3-bit) words,
    without the magic: register j of step st, rows g + 8 at f = 4 / 8 (one shift per k pair)."""
    jp, odd = j >> 1, j & 1
    if bits == 3:
        return (w[..., 4 * c + st] >> (6 * jp)) & (0x00380038 if odd else 0x00070007)
    return (w[..., 2 * c + jp] >> (4 * st)) & (0x000C000C if odd else 0x00030003)


def decode_factor(bits: int, dtype: torch.dtype) -> int:
    """f of rows g + 8 (``Decode::kFactorHi``): 16 for fp16 4-bit (odd nibbles in place), 4 for 2-bit
    (two bits up), 8 for 3-bit (three bits up)."""
    return 16 if bits == 4 and dtype == torch.float16 else 4 if bits == 2 else 8 if bits == 3 else 1


def magic_bits(dtype: torch.dtype, f: int = 1) -> int:
    """The 16-bit pattern of magic / f (``Decode::kMagicHi`` before the mma): magic = 1024 (fp16) or
    128 (bf16), whose ulp is 1; magic / f has ulp 1/f, so its pattern ORed with f*c reads magic/f + c."""
    base, one = (0x6400, 0x0400) if dtype == torch.float16 else (0x4300, 0x0080)  # exponent field's unit
    return base - (f.bit_length() - 1) * one


def bits_value(pattern: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float64 values of 16-bit patterns (int64 tensor) read as ``dtype``."""
    p = torch.where(pattern >= 2**15, pattern - 2**16, pattern).to(torch.int16)
    return p.view(dtype).double()


def emulate_lut_mma(mw: MmaWeight, x: torch.Tensor, post: bool = True, x_natural: bool = False) -> torch.Tensor:
    """y (M, N) fp32 computed the way the kernel does: per 64-code chunk and step, the A fragment
    of every lane (PTX m16n8k16 layout: register j holds rows g + 8*(j & 1), columns
    2q + 8*(j >> 1) + {0, 1}) is decoded from the words as magic + f*code (rows g + 8: f = 16 for
    fp16 4-bit, whose odd nibbles the kernel takes unshifted; f = 4 for 2-bit, 8 for 3-bit), the B fragment
    is filled from the lane's x loads (x[16q + 4s + {0, 1}] -> columns 2q + {0, 1}; x[16q + 4s + {2, 3}] -> 2q + 8 + {0, 1}),
    A @ B and 1 @ B accumulate per group, and each group ends with acc += s/f * G + (z - magic*s/f) * X.
    ``post=False`` decodes as the kernels that scale before the mma do (M > 8, lut_wgmma): the same
    fields, rows g + 8 ORed with magic/f instead (``magic_bits``), each A element read from its 16-bit
    pattern minus that magic (= the code), and the group ends with acc += s * G + z * X. ``x_natural`` (2/3-bit, before the mma) is lut_wgmma reading x as stored: the lanes
    of a quad exchange code bits first (``quad_exchange``) and step st multiplies x[16 st : 16 st + 16]
    in natural order. Slow; for tests at small shapes."""
    bits, K, N = mw.bits, mw.K, mw.N
    if x_natural and (post or bits not in (2, 3)):
        raise ValueError("x_natural emulates the 2/3-bit decode before the mma (post=False, bits 2 or 3)")
    tiles, U = mw.codes.shape[:2]
    w = lane_words(mw.codes).to(torch.int64) & 0xFFFFFFFF
    if x_natural:
        w = _natural_words(w, bits)
    sz = mw.sz.double()
    half = mw.sz.dtype == torch.float16
    magic = 1024.0 if half else 128.0
    f_hi = decode_factor(bits, mw.sz.dtype)  # Decode::kFactorHi
    # per row half (g, g + 8): the magic's pattern ORed in, and what the kernel subtracts from A
    m_or = [magic_bits(mw.sz.dtype), magic_bits(mw.sz.dtype, 1 if post else f_hi)]
    m_sub = [0.0, 0.0] if post else [bits_value(torch.tensor(m), mw.sz.dtype).item() for m in m_or]
    xf = (x.float() if mw.in_scale is None else (x * mw.in_scale).float()).double()
    M = x.shape[0]
    y = torch.zeros(M, tiles, 16, dtype=torch.float64)
    G = torch.zeros_like(y)
    X = torch.zeros(M, dtype=torch.float64)
    gmask = (1 << mw.group_shift) - 1 if mw.group_shift < 31 else (1 << 31) - 1
    row_f = torch.tensor([1.0] * 8 + [f_hi if post else 1] * 8, dtype=torch.float64)
    for u in range(U):
        for c in range(_CHUNKS[bits]):
            kc = u * super_k(bits) + 64 * c
            if kc >= K:
                break
            for s in range(4):
                A = torch.zeros(tiles, 16, 16, dtype=torch.float64)
                B = torch.zeros(M, 16, dtype=torch.float64)
                for lane in range(32):
                    g, q = lane // 4, lane % 4
                    for j in range(4):
                        if x_natural:
                            pair = _a_payload_natural(w[:, u, lane], bits, c, s, j)
                        else:
                            pair = _a_payload(w[:, u, lane], bits, c, s, j, f_hi)
                        for h in range(2):
                            pat = m_or[j & 1] | ((pair >> (16 * h)) & 0xFFFF)
                            A[:, g + 8 * (j & 1), 2 * q + 8 * (j >> 1) + h] = bits_value(pat, mw.sz.dtype) - m_sub[j & 1]
                    base = kc + 16 * q + 4 * s
                    B[:, 2 * q], B[:, 2 * q + 1] = xf[:, base], xf[:, base + 1]
                    B[:, 2 * q + 8], B[:, 2 * q + 9] = xf[:, base + 2], xf[:, base + 3]
                if x_natural:
                    B = xf[:, kc + 16 * s: kc + 16 * s + 16].clone()
                G += torch.einsum("trf,mf->mtr", A, B)
                X += B.sum(1)
            if ((kc + 64) & gmask) == 0 or kc + 64 >= K:
                grp = kc >> mw.group_shift
                sc = torch.cat([sz[:, grp, :, 0], sz[:, grp, :, 1]], 1) / row_f  # (tiles, 16) s/f
                zr = torch.cat([sz[:, grp, :, 2], sz[:, grp, :, 3]], 1) - (magic * sc if post else 0)
                y += sc * G + zr * X[:, None, None]
                G.zero_()
                X.zero_()
    return y.reshape(M, tiles * 16)[:, :N].float()
