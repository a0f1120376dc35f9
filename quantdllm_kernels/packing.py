"""Bit packing of LUT codes: ``bits`` per code, little-endian bit stream along K.

Every 32 consecutive codes of a row occupy exactly ``bits`` int32 words, so the
packing is dense for every width (3-bit codes straddle word boundaries) and a
row of K codes takes ``ceil(K / 32) * bits`` words (K is zero-padded to a
multiple of 32). Code ``i`` of a 32-code chunk lives at bits
``[i*bits, (i+1)*bits)`` of the chunk's ``bits*32``-bit stream, word 0 holding
the lowest 32 bits. For 1, 2 and 4 bits this is the usual "code i at shift
i*bits inside word i*bits//32" layout.

Kernels are free to repack (``pack_for(backend)``); this is the canonical,
serialised layout.
"""
from __future__ import annotations

import torch

__all__ = ["pack_codes", "unpack_codes", "packed_words", "SUPPORTED_PACK_BITS"]

SUPPORTED_PACK_BITS = (1, 2, 3, 4)
_CHUNK = 32  # codes per chunk; a chunk is exactly `bits` int32 words


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits must be an int, got {type(bits).__name__}")
    if bits not in SUPPORTED_PACK_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_PACK_BITS}, got {bits}")
    return bits


def packed_words(K: int, bits: int) -> int:
    """Number of int32 words that hold one row of K codes."""
    return -(-K // _CHUNK) * bits


def _chunk_positions(bits: int, device):
    """For code i of a chunk: word index, bit offset, and whether it spills into the next word."""
    pos = torch.arange(_CHUNK, device=device, dtype=torch.int64) * bits
    word = pos // 32
    off = pos % 32
    spill = (off + bits) > 32
    return word, off, spill


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer codes ``(..., K)`` in ``[0, 2**bits)`` into int32 words ``(..., ceil(K/32)*bits)``."""
    bits = _check_bits(bits)
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        raise TypeError(f"codes must be an integer tensor, got {codes.dtype}")
    if codes.dim() == 0:
        raise ValueError("codes must have at least one dimension (the K axis)")
    c = codes.to(torch.int64)
    if c.numel() and (int(c.min()) < 0 or int(c.max()) >= (1 << bits)):
        raise ValueError(f"codes must lie in [0, {1 << bits}) for bits={bits}, "
                         f"got range [{int(c.min())}, {int(c.max())}]")
    K = c.shape[-1]
    lead = c.shape[:-1]
    n_chunks = -(-K // _CHUNK)
    pad = n_chunks * _CHUNK - K
    if pad:
        c = torch.nn.functional.pad(c, (0, pad))
    c = c.reshape(-1, n_chunks, _CHUNK)
    word, off, spill = _chunk_positions(bits, c.device)
    # `bits` words per chunk; the last word gets an extra scratch slot for spills past the end
    # (never happens for a whole chunk, but keeps indexing uniform).
    out = torch.zeros(c.shape[0], n_chunks, bits + 1, dtype=torch.int64, device=c.device)
    lo = (c << off) & 0xFFFFFFFF
    out.scatter_add_(2, word.expand_as(c), lo)  # fields never overlap, so add == or
    hi = torch.where(spill, c >> (32 - off).clamp(max=63), torch.zeros_like(c))
    out.scatter_add_(2, (word + 1).expand_as(c), hi)
    out = out[..., :bits]
    out = torch.where(out >= 2**31, out - 2**32, out).to(torch.int32)
    return out.reshape(*lead, n_chunks * bits)


def unpack_codes(packed: torch.Tensor, bits: int, K: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: int32 words ``(..., ceil(K/32)*bits)`` -> int64 codes ``(..., K)``."""
    bits = _check_bits(bits)
    if not isinstance(packed, torch.Tensor):
        raise TypeError(f"packed must be a torch.Tensor, got {type(packed).__name__}")
    if packed.dtype != torch.int32:
        raise TypeError(f"packed must be int32, got {packed.dtype}")
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise ValueError(f"K must be a positive int, got {K!r}")
    if packed.dim() == 0 or packed.shape[-1] != packed_words(K, bits):
        raise ValueError(f"packed has {packed.shape[-1] if packed.dim() else 0} words per row; "
                         f"K={K} at bits={bits} needs {packed_words(K, bits)}")
    lead = packed.shape[:-1]
    n_chunks = packed.shape[-1] // bits
    w = packed.to(torch.int64).reshape(-1, n_chunks, bits) & 0xFFFFFFFF
    w = torch.nn.functional.pad(w, (0, 1))  # scratch word for the uniform "next word" gather
    word, off, spill = _chunk_positions(bits, w.device)
    idx = word.expand(w.shape[0], n_chunks, _CHUNK)
    lo = torch.gather(w, 2, idx) >> off
    hi = torch.gather(w, 2, idx + 1) << (32 - off)
    val = torch.where(spill, lo | hi, lo) & ((1 << bits) - 1)
    return val.reshape(*lead, n_chunks * _CHUNK)[..., :K]
