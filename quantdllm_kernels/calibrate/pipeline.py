"""The layer-by-layer calibration pass (the GPTQ pattern, for any stack of transformer blocks).

1. The model runs on the calibration batches only up to its first block, whose inputs (args and
   keyword args: attention mask, rotary embeddings, ...) are cached on the calibration device.
2. For each block in turn (moved to the calibration device, and back, one at a time, so a model
   larger than the GPU calibrates): forward hooks on its selected ``nn.Linear`` layers accumulate
   the Gram matrix X^T X of their inputs (float64, never the activations themselves); the layers
   are quantized against it (``layer.py``); the block then runs again, now quantized, and its
   outputs become the next block's inputs, so every block is calibrated on what the quantized
   model feeds it.
3. With ``timestep_buckets=T`` a second, full-precision stream of block inputs is carried along,
   and per-bucket input means of both streams give each layer its timestep bias table
   (``timestep_bias.py``). The quantized stream's means are taken group by group of layers in
   execution order, with earlier tables applied, and the next block's inputs are computed with
   every table applied: calibration sees what inference will.
"""
from __future__ import annotations

import sys
import time
from typing import Dict, List

import torch
from torch import nn

from ..linear import QuantLinear
from ..reference import dequantize
from ..timestep_context import timestep
from .layer import quantize_layer
from .objective import damp_, weighted_error
from .timestep_bias import BucketMeans, attach_bias, bias_tables, uniform_boundaries


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


def _offload_rest(model, blocks, device):
    """Move everything but the blocks (embeddings, norms, rotary tables, head) to ``device``."""
    kept = list(blocks)
    for i in range(len(blocks)):
        blocks[i] = nn.Identity()
    try:
        model.to(device)
    finally:
        for i, b in enumerate(kept):
            blocks[i] = b


class _Stats:
    """Forward hooks on a block's linears, feeding Grams or bucket means while installed."""

    def __init__(self, lins: Dict[str, nn.Module]):
        self.lins, self.hooks, self.bucket = lins, [], None

    def gram(self, grams):
        def make(n):
            def hook(mod, inp, out):
                x = inp[0].reshape(-1, inp[0].shape[-1]).double()
                grams[n].addmm_(x.T, x)
            return hook
        return self._install(make)

    def means(self, acc):
        def make(n):
            def hook(mod, inp, out):
                acc[n].add(inp[0], self.bucket)
            return hook
        return self._install(make)

    def _install(self, make):
        self.hooks = [m.register_forward_hook(make(n)) for n, m in self.lins.items()]
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.hooks:
            h.remove()
        self.hooks = []


def _forward_all(block, cache, stats=None, buckets=None, timesteps=None):
    """Run the block over every cached input (under each batch's timesteps, so timestep tables
    already attached apply); returns the next cache."""
    out = []
    for bi, (args, kwargs) in enumerate(cache):
        if stats is not None and buckets is not None:
            stats.bucket = buckets[bi]
        with timestep(timesteps[bi] if timesteps is not None else None):
            h = _run(block, args, kwargs)
        out.append(((h,) + tuple(args[1:]), kwargs) if args else (args, dict(kwargs, hidden_states=h)))
    return out


def _input_groups(block, lins, cache) -> List[List[str]]:
    """The block's linears in execution order, grouped by shared input (q/k/v, gate/up): a layer's
    inputs depend only on the groups before it."""
    seen = []

    def make(n):
        def hook(mod, inp, out):
            # the tensor itself, held until grouping is done: comparing addresses instead would
            # let the allocator reuse a freed input's memory and merge unrelated layers
            seen.append((n, inp[0]))
        return hook
    hooks = [m.register_forward_hook(make(n)) for n, m in lins.items()]
    try:
        args, kwargs = cache[0]
        _run(block, args, kwargs)
    finally:
        for h in hooks:
            h.remove()
    groups, last = [], None
    for n, x in seen:
        if any(n in g for g in groups):
            continue
        if groups and x is last:
            groups[-1].append(n)
        else:
            groups.append([n])
        last = x
    return groups + [[n] for n in lins if not any(n in g for g in groups)]


def _replace(block, name, new):
    parent, _, attr = name.rpartition(".")
    setattr(block.get_submodule(parent) if parent else block, attr, new)


@torch.no_grad()
def calibrate_model(model: nn.Module, config, batches: List[dict], selected: List[str], lut_dtype=None,
                    progress: bool = True, device=None) -> List[Dict]:
    """Quantize the ``selected`` linear layers inside the model's blocks, in place, block by block,
    on ``device`` (default: where the model is; blocks are moved there one at a time).
    Returns the per-layer report."""
    from tqdm.auto import tqdm

    prefix, blocks = find_blocks(model)
    home = next(model.parameters()).device
    device = torch.device(device) if device is not None else home
    T = config.timestep_buckets
    if T:
        if any("timestep" not in b for b in batches):
            raise ValueError("timestep_buckets needs masked calibration data: pass mask_token_id")
        boundaries = uniform_boundaries(T)
        buckets = [torch.searchsorted(boundaries, b["timestep"].float(), right=True).to(device) for b in batches]
        timesteps = [b["timestep"].float().to(device) for b in batches]
    else:
        timesteps = None
    if device != home:
        _offload_rest(model, blocks, device)
    try:
        cache = _catch_block_inputs(model, blocks, batches, device)
        fp_cache = cache if T and config.bias_correction == "drift" else None
        report = []
        for i in tqdm(range(len(blocks)), desc="calibrate", disable=not progress, file=sys.stderr):
            block = blocks[i].to(device)
            lins = {n: m for n, m in block.named_modules()
                    if isinstance(m, nn.Linear) and f"{prefix}.{i}.{n}" in selected}
            grams = {n: torch.zeros(m.in_features, m.in_features, dtype=torch.float64, device=device)
                     for n, m in lins.items()}
            with _Stats(lins).gram(grams):
                _forward_all(block, cache)
            drift = T and config.bias_correction == "drift"
            if drift:   # full-precision stream: per-bucket input means, and the next fp inputs
                fp_means = {n: BucketMeans(T, m.in_features, device) for n, m in lins.items()}
                with _Stats(lins).means(fp_means) as st:
                    fp_cache = _forward_all(block, fp_cache, st, buckets)
            dense = {}
            for n, m in lins.items():
                t0 = time.perf_counter()
                H = damp_(grams.pop(n))
                dt = lut_dtype or (m.weight.dtype if m.weight.dtype in (torch.float16, torch.bfloat16)
                                   else torch.float16)
                W = m.weight.detach()
                qw = quantize_layer(W.float(), H, config, dt)
                err = weighted_error(W, dequantize(qw, torch.float64), H)
                dense[n] = (W, m.bias)
                _replace(block, n, QuantLinear(qw, m.bias))
                del H
                report.append({"name": f"{prefix}.{i}.{n}", "method": config.method, "gptq": bool(config.gptq),
                               "bits": float(qw.bits), "effective_bits": qw.effective_bits,
                               "weighted_rel_error": err,
                               "bytes_before": W.numel() * W.element_size(), "bytes_after": qw.nbytes,
                               "seconds": time.perf_counter() - t0})
            if T:
                # quantized stream, one group of layers at a time in execution order: each group's
                # input means are taken with the tables of the groups before it already applied,
                # so no layer corrects a drift an earlier layer has already removed
                for grp in _input_groups(block, {n: block.get_submodule(n) for n in lins}, cache):
                    qlins = {n: block.get_submodule(n) for n in grp}
                    q_means = {n: BucketMeans(T, m.in_features, device) for n, m in qlins.items()}
                    with _Stats(qlins).means(q_means) as st:
                        _forward_all(block, cache, st, buckets, timesteps)
                    for n, ql in qlins.items():
                        W, bias = dense[n]
                        tb = bias_tables(W, ql.qweight, fp_means[n] if drift else q_means[n], q_means[n])
                        _replace(block, n, QuantLinear(attach_bias(ql.qweight, tb, boundaries), bias))
            cache = _forward_all(block, cache, timesteps=timesteps)
            del dense
            if device != home:
                blocks[i] = block.to(home)
    finally:
        if device != home:
            _offload_rest(model, blocks, home)
    return report
