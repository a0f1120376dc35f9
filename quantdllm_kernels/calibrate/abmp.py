"""ABMP: blockwise mixed precision over input channels with an exact average bit budget.

The input channels are cut into blocks (128 by default). Each block's sensitivity at each
candidate width is the Hessian-weighted error of quantizing it at that width,
tr(E_b H_bb E_b^T), measured with the method's data-free quantizer (greedy binarization for
DAQ, the grid itself for RTN / k-means) -- cheap, and it ranks blocks the way the full method
does. Cross-block terms of H are ignored in the ranking (the final quantization sees all of H).
The widths are then chosen to minimise the summed error subject to
sum(width_b * size_b) == avg_bits * K exactly: a multiple-choice knapsack, solved exactly by
dynamic programming over (block, bits spent). Blocks of one width become one segment of a
``MixedQuantizedWeight`` (channels permuted so each segment is contiguous).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..format import MixedQuantizedWeight, QuantizedWeight
from ..reference import dequantize

__all__ = ["allocate_bits", "block_sensitivity", "abmp_quantize"]


def allocate_bits(costs: torch.Tensor, widths: Sequence[int], avg_bits: float) -> list:
    """Width of each of ``costs.shape[0]`` equal blocks, ``costs[b, c]`` = error of block b at
    ``widths[c]``, minimising the total with mean width == ``avg_bits`` exactly."""
    nb = costs.shape[0]
    widths = [int(w) for w in widths]
    if costs.shape != (nb, len(widths)):
        raise ValueError(f"costs must be (blocks, {len(widths)}), got {tuple(costs.shape)}")
    total = avg_bits * nb
    if abs(total - round(total)) > 1e-9:
        lo, hi = np.floor(total) / nb, np.ceil(total) / nb
        raise ValueError(f"avg_bits={avg_bits} is not reachable exactly with {nb} blocks "
                         f"(nearest: {lo:.4f} or {hi:.4f}); change avg_bits or the block size")
    total = int(round(total))
    if not min(widths) * nb <= total <= max(widths) * nb:
        raise ValueError(f"avg_bits={avg_bits} is outside the candidate widths {widths}")
    c = costs.double().cpu().numpy()
    INF = np.inf
    dp = np.full(total + 1, INF)
    dp[0] = 0.0
    choice = np.zeros((nb, total + 1), dtype=np.int64)
    for b in range(nb):
        new = np.full(total + 1, INF)
        for k, w in enumerate(widths):          # ties: the first candidate (deterministic)
            cand = np.full(total + 1, INF)
            cand[w:] = dp[:total + 1 - w] + c[b, k]
            better = cand < new
            new[better] = cand[better]
            choice[b, better] = k
        dp = new
    if not np.isfinite(dp[total]):
        raise ValueError(f"no assignment of widths {widths} reaches avg_bits={avg_bits}")
    out, s = [0] * nb, total
    for b in range(nb - 1, -1, -1):
        k = int(choice[b, s])
        out[b] = widths[k]
        s -= widths[k]
    return out


def block_sensitivity(W: torch.Tensor, H: torch.Tensor, widths: Sequence[int], block: int,
                      quantize: Callable[[torch.Tensor, int], QuantizedWeight]) -> torch.Tensor:
    """(blocks, len(widths)) Hessian-weighted error of each input-channel block at each width."""
    N, K = W.shape
    nb = K // block
    Hb = torch.stack([H[i * block:(i + 1) * block, i * block:(i + 1) * block] for i in range(nb)]).double()
    out = torch.empty(nb, len(widths), dtype=torch.float64)
    for c, w in enumerate(widths):
        E = (W.double() - dequantize(quantize(W, w), torch.float64)).reshape(N, nb, block)
        out[:, c] = torch.einsum("nbi,bij,nbj->b", E, Hb, E).cpu()
    return out


def abmp_quantize(W: torch.Tensor, H: torch.Tensor, *, avg_bits: float, widths: Sequence[int], block: int,
                  probe: Callable[[torch.Tensor, int], QuantizedWeight],
                  quantize: Callable[[torch.Tensor, torch.Tensor, int], QuantizedWeight],
                  costs: Optional[torch.Tensor] = None):
    """Mixed-precision weight of mean code width exactly ``avg_bits``. ``probe(W, bits)`` is the
    cheap quantizer used to rank blocks, ``quantize(W_s, H_s, bits)`` the full method applied
    to each segment with its slice of H (None when ``costs`` are given and H is not needed).
    Returns a QuantizedWeight when every block gets one width."""
    N, K = W.shape
    if K % block:
        raise ValueError(f"in_features ({K}) must be divisible by the ABMP block ({block})")
    if costs is None:
        costs = block_sensitivity(W, H, widths, block, probe)
    chosen = allocate_bits(costs, widths, avg_bits)
    if len(set(chosen)) == 1 and chosen[0] >= 2:   # 1-bit exists only as a segment
        return quantize(W, H, chosen[0])
    segments, perms = [], []
    for w in sorted(set(chosen), reverse=True):   # widest first: segment 0 carries any timestep bias
        idx = torch.cat([torch.arange(b * block, (b + 1) * block) for b, cw in enumerate(chosen) if cw == w])
        idx = idx.to(W.device)
        perms.append(idx)
        segments.append(quantize(W[:, idx], None if H is None else H[idx][:, idx], w))
    return MixedQuantizedWeight(torch.cat(perms), segments)
