"""The layer-by-layer calibration pass (the GPTQ pattern, for any stack of transformer blocks).

1. The model runs on the calibration batches only up to its first block, whose inputs (args and
   keyword args: attention mask, rotary embeddings, ...) are cached.
2. For each block in turn: forward hooks on its selected ``nn.Linear`` layers accumulate the
   Gram matrix X^T X of their inputs (float64, never the activations themselves); the layers are
   quantized against it; the block then runs again, now quantized, and its outputs become the
   next block's inputs, so every block is calibrated on what the quantized model feeds it.
"""
from __future__ import annotations

import sys
import time
from typing import Dict, List

import torch
from torch import nn

from ..linear import QuantLinear
from ..quantizers import quantize_weight
from ..reference import dequantize
from .daq import daq_quantize
from .objective import weighted_error


class _Stop(Exception):
    pass


def find_blocks(model: nn.Module):
    """(name, ModuleList) of the longest list of modules that each hold nn.Linear layers."""
    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) and all(
                any(isinstance(m, nn.Linear) for m in blk.modules()) for blk in mod):
            if best is None or len(mod) > len(best[1]):
                best = (name, mod)
    if best is None:
        raise ValueError("no stack of transformer blocks (nn.ModuleList of modules with nn.Linear) found in the model")
    return best


def _model_inputs(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items() if k != "timestep" and isinstance(v, torch.Tensor)}


def _catch_block_inputs(model, blocks, batches, device):
    cache = []
    first = blocks[0]

    class Catcher(nn.Module):
        def forward(self, *args, **kwargs):
            cache.append((args, kwargs))
            raise _Stop

    blocks[0] = Catcher()
    try:
        for b in batches:
            try:
                model(**_model_inputs(b, device), use_cache=False)
            except _Stop:
                pass
    finally:
        blocks[0] = first
    if len(cache) != len(batches):
        raise RuntimeError("the model did not reach its first block on every calibration batch")
    return cache


def _run(block, args, kwargs):
    out = block(*args, **kwargs)
    return out[0] if isinstance(out, (tuple, list)) else out


def quantize_layer(W: torch.Tensor, H: torch.Tensor, config, lut_dtype):
    if config.method == "daq":
        return daq_quantize(W, H, bits=config.bits, group_size=config.group_size or W.shape[1], lut_dtype=lut_dtype)
    return quantize_weight(W, bits=config.bits, group_size=config.group_size, method=config.method,
                           lut_dtype=lut_dtype, seed=config.seed)


@torch.no_grad()
def calibrate_model(model: nn.Module, config, batches: List[dict], selected: List[str], lut_dtype=None,
                    progress: bool = True) -> List[Dict]:
    """Quantize the ``selected`` linear layers inside the model's blocks, in place, block by block.
    Returns the per-layer report."""
    from tqdm.auto import tqdm

    prefix, blocks = find_blocks(model)
    device = next(model.parameters()).device
    cache = _catch_block_inputs(model, blocks, batches, device)
    report = []
    for i in tqdm(range(len(blocks)), desc="calibrate", disable=not progress, file=sys.stderr):
        block = blocks[i]
        lins = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear) and f"{prefix}.{i}.{n}" in selected}
        grams, hooks = {}, []
        for n, m in lins.items():
            grams[n] = torch.zeros(m.in_features, m.in_features, dtype=torch.float64, device=device)

            def hook(mod, inp, out, n=n):
                x = inp[0].reshape(-1, inp[0].shape[-1]).double()
                grams[n] += x.T @ x
            hooks.append(m.register_forward_hook(hook))
        try:
            for args, kwargs in cache:
                _run(block, args, kwargs)
        finally:
            for h in hooks:
                h.remove()
        for n, m in lins.items():
            t0 = time.perf_counter()
            g = config.group_size
            if g is not None and m.in_features % g:
                continue
            H = grams[n]
            H.diagonal().add_(0.01 * H.diagonal().mean().clamp_min(1e-12))
            dt = lut_dtype or (m.weight.dtype if m.weight.dtype in (torch.float16, torch.bfloat16) else torch.float16)
            qw = quantize_layer(m.weight.detach().float(), H, config, dt)
            err = weighted_error(m.weight.detach(), dequantize(qw, torch.float64), H)
            q = QuantLinear(qw, m.bias)
            parent, _, attr = n.rpartition(".")
            setattr(block.get_submodule(parent) if parent else block, attr, q)
            report.append({"name": f"{prefix}.{i}.{n}", "method": config.method, "bits": config.bits,
                           "effective_bits": qw.effective_bits, "weighted_rel_error": err,
                           "bytes_before": m.weight.numel() * m.weight.element_size(), "bytes_after": qw.nbytes,
                           "seconds": time.perf_counter() - t0})
        # the quantized block's outputs feed the next block
        new_cache = []
        for args, kwargs in cache:
            h = _run(block, args, kwargs)
            if args:
                new_cache.append(((h,) + tuple(args[1:]), kwargs))
            else:
                new_cache.append((args, dict(kwargs, hidden_states=h)))
        cache = new_cache
    return report
