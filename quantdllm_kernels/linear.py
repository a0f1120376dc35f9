"""``QuantLinear``: a drop-in replacement for ``nn.Linear`` holding a quantized weight.

The weight's tensors are registered as buffers (``qweight_<field>``), so ``module.to(device)``,
``.half()`` and ``state_dict()`` behave as usual (codes stay int32); the
:class:`QuantizedWeight` view is rebuilt from the buffers on access, without re-validation.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from .dispatch import lut_matmul
from .format import MixedQuantizedWeight, QuantizedWeight, weight_from_tensors
from .quantizers import quantize_weight
from .timestep_context import current_timestep

__all__ = ["QuantLinear"]

_PREFIX = "qweight_"


def _buf_name(field: str) -> str:
    return _PREFIX + field.replace(".", "__")


class QuantLinear(nn.Module):
    def __init__(self, qweight: Union[QuantizedWeight, MixedQuantizedWeight], bias: Optional[torch.Tensor] = None,
                 backend: Optional[str] = None):
        super().__init__()
        if not isinstance(qweight, (QuantizedWeight, MixedQuantizedWeight)):
            raise TypeError(f"qweight must be a QuantizedWeight or MixedQuantizedWeight, got {type(qweight).__name__}")
        if isinstance(qweight, QuantizedWeight) and qweight.bits == 1:
            raise ValueError("bits=1 is allowed only inside mixed-precision segments (MixedQuantizedWeight)")
        self.out_features, self.in_features = qweight.shape
        if bias is not None:
            if not isinstance(bias, torch.Tensor) or bias.shape != (self.out_features,):
                raise ValueError(f"bias must be a tensor of shape ({self.out_features},)")
            bias = bias.detach().to(qweight.device)
        self._meta = qweight.meta()
        self._fields = tuple(qweight.tensors())
        for f, t in qweight.tensors().items():
            self.register_buffer(_buf_name(f), t)
        self.register_buffer("bias", bias)
        self.backend = backend

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, bits: int = 4, group_size: Optional[int] = 128, method: str = "rtn",
                    lut_dtype: Optional[torch.dtype] = None, seed: int = 0, backend: Optional[str] = None):
        """Quantize ``linear.weight`` with a data-free method; LUT dtype defaults to the weight's
        dtype if it is fp16/bf16, else fp16."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        if bits not in (2, 3, 4):
            raise ValueError(f"bits must be 2, 3 or 4 for a QuantLinear, got {bits!r}")
        w = linear.weight.detach()
        if lut_dtype is None:
            lut_dtype = w.dtype if w.dtype in (torch.float16, torch.bfloat16) else torch.float16
        qw = quantize_weight(w, bits=bits, group_size=group_size, method=method, lut_dtype=lut_dtype, seed=seed)
        return cls(qw, linear.bias, backend=backend)

    @property
    def qweight(self) -> Union[QuantizedWeight, MixedQuantizedWeight]:
        """The weight over this module's buffers. Eagerly, the object is kept and handed out again
        while every buffer is the same tensor object and the kept weight still holds them (``.to()``
        replaces buffers, ``load_state_dict`` copies into them): building it cost each forward ~5-9
        µs of host time."""
        if torch.compiler.is_compiling():  # traced: built from the buffers, nothing kept
            tensors = {f: getattr(self, _buf_name(f)) for f in self._fields}
            return weight_from_tensors(self._meta, tensors, validate=False)
        # straight from _buffers (Module.__getattr__ cost ~1 µs per field)
        names = self.__dict__.get("_buf_names")
        if names is None:
            names = self.__dict__["_buf_names"] = tuple(_buf_name(f) for f in self._fields)
        bufs = self._buffers
        tensors = tuple(bufs[n] for n in names)
        kept = self.__dict__.get("_qweight_kept")
        if kept is not None and all(a is b for a, b in zip(kept[0], tensors)) and all(
                a is b for a, b in zip(kept[1].tensors().values(), tensors)):
            if isinstance(kept[1], QuantizedWeight):
                # as a fresh weight: no packs (forward hands the module's over again; a pack kept
                # from before load_state_dict would win over the rebuilt one in mma_pack)
                kept[1].kernel_packs = None
            return kept[1]
        qw = weight_from_tensors(self._meta, dict(zip(self._fields, tensors)), validate=False)
        self.__dict__["_qweight_kept"] = (tensors, qw)
        return qw

    def forward(self, x: torch.Tensor, timestep=None) -> torch.Tensor:
        """``timestep`` defaults to the one in force (``quantdllm_kernels.timestep(t)`` context or
        ``set_timestep``); it only matters for weights with timestep tables."""
        if timestep is None:
            timestep = current_timestep()
        qw = self.qweight
        if x.is_cuda and isinstance(qw, QuantizedWeight) and self.backend in (None, "cuda"):
            from .backends.cuda_backend import attach_module_packs
            attach_module_packs(self, qw, x.dtype)
        return lut_matmul(x, qw, self.bias, timestep=timestep, backend=self.backend)

    def extra_repr(self) -> str:
        qw = self.qweight
        if isinstance(qw, MixedQuantizedWeight):
            kind = "mixed[" + ",".join(f"{s.bits}b/{s.lut_kind}/g{s.group_size}" for s in qw.segments) + "]"
            return (f"in_features={self.in_features}, out_features={self.out_features}, bits={qw.bits:.2f}, {kind}, "
                    f"effective_bits={qw.effective_bits:.3f}, bias={self.bias is not None}")
        return (f"in_features={self.in_features}, out_features={self.out_features}, bits={qw.bits}, "
                f"group_size={qw.group_size}, lut_kind={qw.lut_kind}, effective_bits={qw.effective_bits:.3f}, "
                f"bias={self.bias is not None}")
