"""Per-timestep bias correction: the mean output error of a quantized layer, per timestep bucket.

For bucket b, the correction is E[Y_fp - Y_q | b] = W * mean(x_fp | b) - W_hat * mean(x_q | b):
x_fp are the layer's inputs in the full-precision model, x_q those in the model quantized so far
(the pipeline runs both streams), so the table also absorbs the drift the earlier quantized
layers caused at that masking ratio, not only this layer's own error. Only per-bucket sums of
inputs are kept (T x K), never activations. Buckets with no calibration tokens get zero.
"""
from __future__ import annotations

from typing import Union

import torch

from ..format import MixedQuantizedWeight, QuantizedWeight
from ..reference import dequantize
from ..timestep_tables import TimestepTables

__all__ = ["uniform_boundaries", "BucketMeans", "bias_tables", "attach_bias"]


def uniform_boundaries(T: int) -> torch.Tensor:
    """T equal-width buckets over [0, 1]: boundaries i/T, i = 1..T-1 (fp32)."""
    if not 1 <= T <= 64:
        raise ValueError(f"timestep_buckets must be 1..64, got {T}")
    return torch.arange(1, T, dtype=torch.float32) / T


class BucketMeans:
    """Running per-bucket sums of a layer's input rows; ``add`` takes one sequence-level bucket
    per leading index of x (B, ..., K)."""

    def __init__(self, T: int, K: int, device):
        self.sums = torch.zeros(T, K, dtype=torch.float64, device=device)
        self.counts = torch.zeros(T, dtype=torch.float64, device=device)

    def add(self, x: torch.Tensor, bucket: torch.Tensor) -> None:
        B = bucket.numel()
        if x.shape[0] != B:
            raise ValueError(f"layer input has leading size {x.shape[0]}, but the batch has {B} sequences; "
                             "per-timestep statistics need (batch, ..., features) inputs")
        xs = x.reshape(B, -1, x.shape[-1]).double()
        # a one-hot product, not index_add_: index_add_'s accumulation order is not fixed across
        # threads, and calibration must be reproducible bit for bit
        onehot = torch.zeros(self.counts.numel(), B, dtype=torch.float64, device=x.device)
        onehot[bucket, torch.arange(B, device=x.device)] = 1.0
        self.sums += onehot @ xs.sum(1)
        self.counts += onehot.sum(1) * xs.shape[1]

    def means(self) -> torch.Tensor:
        return self.sums / self.counts.clamp_min(1).unsqueeze(1)


def bias_tables(W: torch.Tensor, qw: Union[QuantizedWeight, MixedQuantizedWeight], fp: BucketMeans,
                q: BucketMeans) -> torch.Tensor:
    """(T, N) float64: W mean(x_fp | b) - W_hat mean(x_q | b), zero where a bucket saw no tokens."""
    W_hat = dequantize(qw, torch.float64)
    out = fp.means() @ W.double().T - q.means() @ W_hat.T
    seen = (fp.counts > 0) & (q.counts > 0)
    return torch.where(seen.unsqueeze(1), out, torch.zeros_like(out))


def attach_bias(qw: Union[QuantizedWeight, MixedQuantizedWeight], bias: torch.Tensor, boundaries: torch.Tensor):
    """``qw`` with TimestepTables(boundaries, bias) (on segment 0 of a mixed weight), the bias in the
    LUT dtype."""
    seg0 = qw.segments[0] if isinstance(qw, MixedQuantizedWeight) else qw
    tables = TimestepTables(boundaries.to(seg0.device), bias.to(seg0.device, seg0.lut_dtype))
    if isinstance(qw, MixedQuantizedWeight):
        return MixedQuantizedWeight(qw.perm, (seg0.with_timestep_tables(tables),) + qw.segments[1:])
    return qw.with_timestep_tables(tables)
