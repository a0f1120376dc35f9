"""One linear layer, calibrated: the method a ``QuantConfig`` names, applied against the layer's
Hessian H = X^T X (damped). This is the single place that maps config -> quantizer.

=========  ============  ========================================================================
method     LUT kind      against H
=========  ============  ========================================================================
rtn        ``scaled``    data-free grid; ``gptq=True`` adds GPTQ compensation
kmeans     ``table``     k-means weighted by diag(H); ``gptq=True`` adds GPTQ compensation
binary     ``binary``    data-free greedy binarization
daq        ``binary``    DAQ (alternating least squares on tr(E H E^T)), in_scale = beta
=========  ============  ========================================================================

``mixed_precision=True`` wraps any of them in ABMP (``abmp.py``).
"""
from __future__ import annotations

import torch

from ..format import QuantizedWeight
from ..packing import pack_codes
from ..quantizers import kmeans_groups, quantize_weight
from .abmp import abmp_quantize
from .daq import daq_quantize
from .gptq import gptq_quantize

__all__ = ["quantize_layer", "quantize_single", "default_widths"]


def default_widths(bits: int) -> tuple:
    """Candidate widths around ``bits`` for ABMP: bits-1, bits, bits+1 within 1..4."""
    return tuple(w for w in (bits - 1, bits, bits + 1) if 1 <= w <= 4)


def _weighted_kmeans(W, H, bits, g, lut_dtype, seed):
    N, K = W.shape
    w = W.float().reshape(N, K // g, g)
    weight = H.diagonal().float().clamp_min(0).reshape(1, K // g, g)
    codes, table = kmeans_groups(w, bits, lut_dtype, sample_weight=weight, seed=seed)
    return QuantizedWeight(bits=bits, group_size=g, in_features=K, codes=pack_codes(codes.reshape(N, K), bits),
                           lut_kind="table", table=table)


def quantize_single(W: torch.Tensor, H: torch.Tensor, config, bits: int, lut_dtype) -> QuantizedWeight:
    """``W (N, K)`` at one width with the config's method (see the module table)."""
    K = W.shape[1]
    g = config.group_size if config.group_size and K % config.group_size == 0 else K
    if config.method == "daq":
        return daq_quantize(W, H, bits=bits, group_size=g, lut_dtype=lut_dtype)
    if config.gptq:
        return gptq_quantize(W, H, bits=bits, group_size=g, method=config.method, lut_dtype=lut_dtype,
                             seed=config.seed)
    if config.method == "kmeans":
        return _weighted_kmeans(W, H, bits, g, lut_dtype, config.seed)
    return quantize_weight(W, bits=bits, group_size=g, method=config.method, lut_dtype=lut_dtype, seed=config.seed)


def _probe(config, lut_dtype):
    """The data-free quantizer ABMP ranks blocks with: DAQ's initialisation, or the method itself."""
    method = "binary" if config.method == "daq" else config.method
    return lambda W, bits: quantize_weight(W, bits=bits, group_size=config.group_size or W.shape[1], method=method,
                                           lut_dtype=torch.float32, seed=config.seed)


def quantize_layer(W: torch.Tensor, H: torch.Tensor, config, lut_dtype):
    """The layer's QuantizedWeight, or MixedQuantizedWeight under ``config.mixed_precision``."""
    if not config.mixed_precision or W.shape[1] % config.abmp_block:   # (the report shows such a layer's width)
        return quantize_single(W, H, config, config.bits, lut_dtype)
    widths = tuple(config.abmp_widths or default_widths(config.bits))
    avg = config.avg_bits if config.avg_bits is not None else float(config.bits)
    return abmp_quantize(W, H, avg_bits=avg, widths=widths, block=config.abmp_block, probe=_probe(config, lut_dtype),
                         quantize=lambda Ws, Hs, b: quantize_single(Ws, Hs, config, b, lut_dtype))
