"""Ops registered with ``torch.library`` (``torch.ops.quantdllm.*``), with fake implementations so
``torch.compile`` can trace them. Kernel backends may add device-specific implementations."""
from __future__ import annotations

import torch

from .reference import timestep_buckets

__all__ = ["timestep_lookup"]


@torch.library.custom_op("quantdllm::timestep_lookup", mutates_args=())
def _timestep_lookup(table: torch.Tensor, t: torch.Tensor, boundaries: torch.Tensor) -> torch.Tensor:
    b = timestep_buckets(boundaries, t, tuple(t.shape), table.device)
    # index_select always copies (plain indexing with a 0-d index would alias the input)
    return table.index_select(0, b.reshape(-1)).reshape(tuple(t.shape) + tuple(table.shape[1:]))


@_timestep_lookup.register_fake
def _(table, t, boundaries):
    return table.new_empty(tuple(t.shape) + tuple(table.shape[1:]))


def timestep_lookup(table: torch.Tensor, t, boundaries: torch.Tensor) -> torch.Tensor:
    """Per-row gather of timestep-bucket parameters: ``table (T, ...)``, ``t`` a float or a tensor of
    timesteps, ``boundaries (T-1,)`` increasing; returns ``table[bucket(t)]`` of shape
    ``t.shape + table.shape[1:]``, with ``bucket(t) = searchsorted(boundaries, t, right=True)``.
    Runs on t's device with no host synchronisation (so boundaries on a GPU are not checked for
    NaN here: :class:`TimestepTables` checks them when it is built), and under CUDA-graph capture."""
    from ._validate import check_finite, check_float_tensor, check_tensor

    check_float_tensor("table", table)
    check_tensor("boundaries", boundaries, ndim=1)
    if table.dim() < 1 or table.shape[0] != boundaries.numel() + 1:
        raise ValueError(f"table has {table.shape[0] if table.dim() else 0} buckets, boundaries give "
                         f"{boundaries.numel() + 1}")
    if boundaries.device.type == "cpu":
        check_finite("boundaries", boundaries)   # on a GPU this check would synchronise the host
    if isinstance(t, bool) or not isinstance(t, (int, float, torch.Tensor)):
        raise TypeError(f"t must be a float or a tensor, got {type(t).__name__}")
    if not isinstance(t, torch.Tensor):
        t = torch.tensor(float(t), device=table.device)
    if t.device != table.device:
        raise ValueError(f"t is on {t.device} but table is on {table.device}")
    return torch.ops.quantdllm.timestep_lookup(table, t.float(), boundaries.float().to(table.device))
