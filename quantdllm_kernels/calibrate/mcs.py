"""Masked calibration samples (MCS): calibration inputs as a masked-diffusion LM sees them.

At denoising timestep t a fraction t of the tokens is the mask token. Each calibration sequence
gets its own t -- uniform over (0, 1], or stratified over timestep buckets so every bucket is
represented -- and each token is replaced by ``mask_token_id`` with probability t. The t of every
sequence is kept (per-timestep statistics need it). Without ``mask_token_id`` the inputs pass
through unmasked (ordinary autoregressive models).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Union

import torch

CalibData = Union[torch.Tensor, List[torch.Tensor], Iterable[Dict[str, torch.Tensor]]]


def _as_batches(calib_data: CalibData, seq_len: Optional[int], n: Optional[int], batch_size: int):
    if isinstance(calib_data, torch.Tensor):
        if calib_data.dim() == 1:
            calib_data = calib_data.unsqueeze(0)
        if calib_data.dim() != 2 or calib_data.dtype not in (torch.int32, torch.int64):
            raise ValueError("calib_data as a tensor must be integer token ids of shape (n, L) or (L,)")
        seqs = list(calib_data)
    elif isinstance(calib_data, list) and all(isinstance(s, torch.Tensor) for s in calib_data):
        seqs = [s.reshape(-1) for s in calib_data]
    else:
        out = []
        for i, d in enumerate(calib_data):
            if not isinstance(d, dict) or "input_ids" not in d:
                raise ValueError(f"calib_data item {i} must be a dict with 'input_ids'")
            out.append(dict(d))
            if n is not None and len(out) >= n:
                break
        return out
    if seq_len is not None:
        seqs = [s[:seq_len] for s in seqs if s.numel() >= seq_len] or [s[:seq_len] for s in seqs]
    if n is not None:
        seqs = seqs[:n]
    if not seqs:
        raise ValueError("calib_data holds no sequences")
    L = min(s.numel() for s in seqs)
    seqs = [s[:L].long() for s in seqs]
    return [{"input_ids": torch.stack(seqs[i:i + batch_size])} for i in range(0, len(seqs), batch_size)]


def masked_calibration_batches(calib_data: CalibData, mask_token_id: Optional[int] = None, *,
                               seq_len: Optional[int] = None, n: Optional[int] = None, batch_size: int = 8,
                               buckets: Optional[int] = None, seed: int = 0) -> List[Dict[str, torch.Tensor]]:
    """Model-input dicts; with ``mask_token_id`` each carries ``timestep`` (B,) and masked
    ``input_ids``. ``buckets=T`` stratifies t over T equal-width buckets of (0, 1]."""
    batches = _as_batches(calib_data, seq_len, n, batch_size)
    if mask_token_id is None:
        return batches
    gen = torch.Generator().manual_seed(seed)
    total = sum(b["input_ids"].shape[0] for b in batches)
    u = torch.rand(total, generator=gen)
    if buckets:
        # stratified: sequence i lands in bucket i % T, uniform inside it; (0, 1] excludes t = 0
        idx = torch.arange(total) % buckets
        t = (idx + 1 - u) / buckets
    else:
        t = 1 - u  # (0, 1]
    out, off = [], 0
    for b in batches:
        ids = b["input_ids"]
        B = ids.shape[0]
        tb = t[off:off + B]
        off += B
        mask = torch.rand(ids.shape, generator=gen) < tb.unsqueeze(1)
        nb = dict(b)
        nb["input_ids"] = torch.where(mask, torch.full_like(ids, mask_token_id), ids)
        nb["timestep"] = tb
        out.append(nb)
    return out
