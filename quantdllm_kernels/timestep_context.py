"""The denoising timestep that QuantLinear layers read, without changing model code.

* ``with quantdllm_kernels.timestep(t): model(x)`` -- ``t`` a float, a 0-d tensor, or a tensor
  with one timestep per row (shape (M,) or x's leading shape) for batches of requests at
  different steps. Contexts nest; the innermost wins.
* ``set_timestep(t)`` sets a process-wide default for code that cannot wrap calls in a context.
  Engines that replay CUDA graphs pass a persistent device tensor once and update it in place
  between replays (``buf.copy_(new_t)``): the layers read the tensor, never a host value, so no
  host synchronisation happens and the captured graph follows the new timesteps.

A ``timestep=`` argument given to ``QuantLinear.forward`` or ``lut_matmul`` overrides both.

The context is a process-wide stack, not a ``ContextVar``: ``torch.compile(fullgraph=True)`` must
trace ``current_timestep()``, and dynamo cannot trace ``ContextVar.get``. Under ``torch.compile``
pass the timestep as a tensor (a Python float is specialised: each new value recompiles).
"""
from __future__ import annotations

import contextlib
from typing import Optional, Union

import torch

__all__ = ["timestep", "set_timestep", "current_timestep"]

TimestepLike = Union[float, torch.Tensor]
_STACK: list = []
_DEFAULT: Optional[TimestepLike] = None


def _check(t) -> None:
    if t is None:
        return
    if isinstance(t, bool) or not isinstance(t, (int, float, torch.Tensor)):
        raise TypeError(f"timestep must be a float or a tensor, got {type(t).__name__}")
    if isinstance(t, torch.Tensor) and (t.dtype.is_complex or t.dtype == torch.bool):
        raise TypeError(f"timestep must be a real tensor, got {t.dtype}")


@contextlib.contextmanager
def timestep(t: TimestepLike):
    """Every QuantLinear called inside reads ``t`` as its denoising timestep."""
    _check(t)
    _STACK.append(t)
    try:
        yield t
    finally:
        _STACK.pop()


def set_timestep(t: Optional[TimestepLike]) -> None:
    """Process-wide default timestep (``None`` clears it); a ``timestep(...)`` context overrides it."""
    global _DEFAULT
    _check(t)
    _DEFAULT = t


def current_timestep() -> Optional[TimestepLike]:
    """The timestep in force: the innermost context, else the default set by ``set_timestep``."""
    t = _STACK[-1] if _STACK else None
    return _DEFAULT if t is None else t
