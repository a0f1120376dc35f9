"""Plain-PyTorch definition of every op: the specification the kernels are tested against,
and the CPU fallback. Accumulation is always fp32 (float64 when x is float64, for tests)."""
from __future__ import annotations

from typing import Optional, Union

import torch

from ._validate import check_float_tensor, check_shape
from .format import MixedQuantizedWeight, QuantizedWeight

__all__ = ["dequantize", "lut_matmul_reference", "timestep_buckets", "timestep_lookup_reference", "broadcast_timestep",
           "timesteps_on_device"]

AnyWeight = Union[QuantizedWeight, MixedQuantizedWeight]


def _dequant_one(qw: QuantizedWeight, dtype, lut_fields=None) -> torch.Tensor:
    N, K = qw.shape
    tables = qw.group_tables(dtype, lut_fields)                      # (N, G, E)
    codes = qw.unpacked_codes().view(N, qw.num_groups, qw.group_size)
    w = torch.gather(tables, 2, codes).reshape(N, K)
    if qw.in_scale is not None:
        w = w * qw.in_scale.to(dtype)
    return w


def dequantize(qw: AnyWeight, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """The dense weight ``(N, K)`` a quantized weight stands for, computed in fp32 (or ``dtype`` if
    that is float64) and returned in ``dtype`` (default: the LUT dtype). Timestep LUT sets are not
    applied (this is the bucket-independent weight)."""
    if isinstance(qw, MixedQuantizedWeight):
        out_dtype = dtype or qw.segments[0].lut_dtype
        work = torch.float64 if out_dtype == torch.float64 else torch.float32
        w = torch.empty(qw.shape, dtype=work, device=qw.device)
        for seg, idx in qw.segment_slices():
            w[:, idx] = _dequant_one(seg, work)
        return w.to(out_dtype)
    if not isinstance(qw, QuantizedWeight):
        raise TypeError(f"qw must be a QuantizedWeight or MixedQuantizedWeight, got {type(qw).__name__}")
    out_dtype = dtype or qw.lut_dtype
    work = torch.float64 if out_dtype == torch.float64 else torch.float32
    return _dequant_one(qw, work).to(out_dtype)


def broadcast_timestep(t, lead_shape):
    """A timestep tensor whose shape is a leading prefix of x's leading shape -- one t per sequence
    of a (batch, tokens, features) input -- expanded to every row; anything else unchanged. Lazy
    (an expand), no host sync."""
    if isinstance(t, torch.Tensor) and 0 < t.dim() < len(lead_shape) and \
            tuple(t.shape) == tuple(lead_shape[:t.dim()]):
        return t.reshape(tuple(t.shape) + (1,) * (len(lead_shape) - t.dim())).expand(tuple(lead_shape))
    return t


def timesteps_on_device(t, lead, device) -> torch.Tensor:
    """What the kernels take: an fp32 tensor on ``device`` of 1 (uniform) or M (per row)
    timesteps, shapes checked as in the reference (a tensor on another device is an error, not
    a silent copy)."""
    if isinstance(t, bool):
        raise TypeError("timestep must be a float or a tensor, got bool")
    if isinstance(t, (int, float)):
        return torch.full((1,), float(t), dtype=torch.float32, device=device)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"timestep must be a float or a tensor, got {type(t).__name__}")
    M = 1
    for d in lead:
        M *= d
    if not (t.dim() == 0 or tuple(t.shape) == tuple(lead) or (t.dim() == 1 and t.numel() == M)):
        raise ValueError(f"timestep must be a scalar, shape ({M},) or {tuple(lead)}; got {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"timestep is on {t.device} but the weight is on {device}")
    return t.reshape(-1).to(torch.float32).contiguous()


def timestep_buckets(boundaries: torch.Tensor, t, lead_shape, device) -> torch.Tensor:
    """Per-row bucket index of shape ``lead_shape`` (x's leading dims) for a float, 0-d tensor,
    a tensor of shape (M,) with M = prod(lead_shape), a tensor of shape ``lead_shape``, or one of
    a prefix of it (per sequence, see ``broadcast_timestep``)."""
    if isinstance(t, bool):
        raise TypeError("timestep must be a float or a tensor, got bool")
    if isinstance(t, (int, float)):
        t = torch.tensor(float(t), device=device)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"timestep must be a float or a tensor, got {type(t).__name__}")
    if t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"timestep must be a real tensor, got {t.dtype}")
    t = broadcast_timestep(t.to(device=device, dtype=torch.float32), lead_shape)
    M = 1
    for d in lead_shape:
        M *= d
    if t.dim() == 0:
        t = t.expand(lead_shape)
    elif tuple(t.shape) == tuple(lead_shape):
        pass
    elif t.dim() == 1 and t.numel() == M:
        t = t.view(lead_shape)
    else:
        raise ValueError(f"timestep must be a scalar, shape ({M},), {tuple(lead_shape)} or a prefix of it; "
                         f"got {tuple(t.shape)}")
    return torch.searchsorted(boundaries.to(device, torch.float32), t.contiguous(), right=True)


def timestep_lookup_reference(table: torch.Tensor, t, boundaries: torch.Tensor) -> torch.Tensor:
    """Rows ``table[bucket(t)]``: ``table`` is ``(T, ...)``; output is ``t.shape + table.shape[1:]``."""
    check_float_tensor("table", table)
    t_shape = () if not isinstance(t, torch.Tensor) else tuple(t.shape)
    if table.shape[0] != boundaries.numel() + 1:
        raise ValueError(f"table has {table.shape[0]} buckets, boundaries give {boundaries.numel() + 1}")
    b = timestep_buckets(boundaries, t, t_shape, table.device)
    return table[b]


def _check_x(x, K: int, device) -> None:
    check_float_tensor("x", x, dtypes=(torch.float16, torch.bfloat16, torch.float32, torch.float64))
    if x.dim() < 1 or x.shape[-1] != K:
        raise ValueError(f"x must have shape (..., {K}), got {tuple(x.shape)}")
    if x.device != device:
        raise ValueError(f"x is on {x.device} but the weight is on {device}")


def _check_bias(bias, N: int, device) -> None:
    if bias is None:
        return
    check_float_tensor("bias", bias)
    check_shape("bias", bias, (N,))
    if bias.device != device:
        raise ValueError(f"bias is on {bias.device} but the weight is on {device}")


def lut_matmul_reference(x: torch.Tensor, qw: AnyWeight, bias: Optional[torch.Tensor] = None,
                         timestep=None) -> torch.Tensor:
    """``y = x @ dequantize(qw).T + bias (+ timestep bias)`` with fp32 accumulation; y in x's dtype."""
    N, K = qw.shape
    _check_x(x, K, qw.device)
    _check_bias(bias, N, qw.device)
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    lead = x.shape[:-1]
    xf = x.reshape(-1, K).to(work)
    segs = qw.segment_slices() if isinstance(qw, MixedQuantizedWeight) else [(qw, None)]
    y = torch.zeros(xf.shape[0], N, dtype=work, device=x.device)
    for seg, idx in segs:
        xs = xf if idx is None else xf[:, idx]
        ts = seg.timestep
        if ts is not None and ts.luts and timestep is not None:
            bucket = timestep_buckets(ts.boundaries, timestep, lead, x.device).reshape(-1)
            for b in range(ts.num_buckets):  # every bucket, no host sync; a reference, not a kernel
                fields = {k: v[b] for k, v in ts.luts.items()}
                yb = xs @ _dequant_one(seg, work, fields).T
                y = torch.where((bucket == b).unsqueeze(1), y + yb, y)
        else:
            y = y + xs @ _dequant_one(seg, work).T
        if ts is not None and ts.bias is not None and timestep is not None:
            bucket = timestep_buckets(ts.boundaries, timestep, lead, x.device).reshape(-1)
            y = y + ts.bias.to(work)[bucket]
    if bias is not None:
        y = y + bias.to(work)
    return y.to(x.dtype).reshape(*lead, N)
