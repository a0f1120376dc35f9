"""Timestep-indexed parameters of one quantized layer (the ``timestep`` slot of the format).

A dLLM runs the same weights at every denoising step; the quantization error depends on
the fraction t of still-masked tokens. ``TimestepTables`` holds T buckets over t in [0, 1]
and, per bucket, an output bias correction ``bias (T, N)`` and optionally a per-bucket LUT
set that shares the layer's codes. Bucket of t = number of boundaries <= t
(``torch.searchsorted(boundaries, t, right=True)``), so ``T = len(boundaries) + 1``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch

from ._validate import check_finite, check_float_tensor

MAX_BUCKETS = 64


@dataclass(frozen=True, eq=False)
class TimestepTables:
    boundaries: torch.Tensor                         # (T-1,) fp32, strictly increasing
    bias: Optional[torch.Tensor] = None              # (T, N)
    luts: Optional[Dict[str, torch.Tensor]] = None   # field name -> (T, *field shape)

    def __post_init__(self):
        b = check_float_tensor("timestep.boundaries", self.boundaries, ndim=1)
        if b.numel() + 1 > MAX_BUCKETS:
            raise ValueError(f"timestep.boundaries: at most {MAX_BUCKETS} buckets, got {b.numel() + 1}")
        check_finite("timestep.boundaries", b)
        if b.numel() > 1 and not bool((b[1:] > b[:-1]).all()):
            raise ValueError("timestep.boundaries must be strictly increasing")
        T = b.numel() + 1
        if self.bias is not None:
            check_float_tensor("timestep.bias", self.bias, ndim=2)
            if self.bias.shape[0] != T:
                raise ValueError(f"timestep.bias has {self.bias.shape[0]} buckets, boundaries give {T}")
            check_finite("timestep.bias", self.bias)
        if self.luts is not None:
            if not isinstance(self.luts, dict):
                raise TypeError("timestep.luts must be a dict of field name -> tensor")
            for name, t in self.luts.items():
                check_float_tensor(f"timestep.luts[{name!r}]", t)
                if t.shape[0] != T:
                    raise ValueError(f"timestep.luts[{name!r}] has {t.shape[0]} buckets, boundaries give {T}")
                check_finite(f"timestep.luts[{name!r}]", t)
        if self.bias is None and not self.luts:
            raise ValueError("TimestepTables needs a bias or luts (or both)")

    @property
    def num_buckets(self) -> int:
        return self.boundaries.numel() + 1

    def bucket(self, t: torch.Tensor) -> torch.Tensor:
        """Bucket index (int64) of each timestep in ``t``; computed on t's device, no host sync."""
        return torch.searchsorted(self.boundaries.to(t.device, torch.float32), t.float().contiguous(), right=True)

    def tensors(self) -> Dict[str, torch.Tensor]:
        out = {"boundaries": self.boundaries}
        if self.bias is not None:
            out["bias"] = self.bias
        for k, v in (self.luts or {}).items():
            out[f"lut_{k}"] = v
        return out

    @classmethod
    def from_tensors(cls, tensors: Dict[str, torch.Tensor], validate: bool = True) -> "TimestepTables":
        """``validate=False`` skips the checks (they read values, a host sync that CUDA-graph capture
        forbids): for tensors that were validated when the tables were built."""
        luts = {k[4:]: v for k, v in tensors.items() if k.startswith("lut_")}
        if validate:
            return cls(tensors["boundaries"], tensors.get("bias"), luts or None)
        t = object.__new__(cls)
        for name, v in (("boundaries", tensors["boundaries"]), ("bias", tensors.get("bias")), ("luts", luts or None)):
            object.__setattr__(t, name, v)
        return t

    def _apply(self, fn) -> "TimestepTables":
        luts = {k: fn(v) for k, v in self.luts.items()} if self.luts else None
        return TimestepTables(fn(self.boundaries), fn(self.bias) if self.bias is not None else None, luts)
