"""Save and load quantized models without pickle: one safetensors file + a JSON manifest.

The manifest records the format version, the QuantConfig, each quantized layer's metadata
and the byte size of the tensor file. Loading checks everything (version, size, presence and
shape of every tensor, validity of every QuantizedWeight) before it touches the model, so a
bad checkpoint raises :class:`CheckpointError` and leaves the model as it was.
"""
from __future__ import annotations

import json
import os
from typing import Dict

import torch
from torch import nn

from .errors import CheckpointError
from .format import FORMAT_VERSION, weight_from_tensors
from .linear import QuantLinear
from .model import QuantConfig

__all__ = ["save_quantized", "load_quantized", "MANIFEST", "TENSORS"]

MANIFEST = "quantdllm_manifest.json"
TENSORS = "quantdllm_model.safetensors"
_FORMAT = "quantdllm_kernels"


def _quant_modules(model: nn.Module) -> Dict[str, QuantLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear)}


def _dense_state(model: nn.Module, qnames) -> Dict[str, torch.Tensor]:
    """Parameters and buffers outside the QuantLinear modules."""
    prefixes = tuple(n + "." for n in qnames)
    return {k: v for k, v in model.state_dict().items() if not k.startswith(prefixes)}


def save_quantized(model: nn.Module, directory: str, include_dense: bool = True) -> None:
    """Write every QuantLinear's canonical tensors (and, with ``include_dense``, the rest of the
    model's state) to ``directory``."""
    from safetensors.torch import save_file

    qmods = _quant_modules(model)
    if not qmods:
        raise ValueError("model has no QuantLinear modules; run quantize_model first")
    os.makedirs(directory, exist_ok=True)
    tensors, seen, layers = {}, set(), {}

    def put(key, t):
        t = t.detach().to("cpu").contiguous()
        if t.data_ptr() in seen and t.numel():  # tied/shared storage: safetensors wants distinct buffers
            t = t.clone()
        seen.add(t.data_ptr())
        tensors[key] = t

    for name, m in qmods.items():
        qw = m.qweight
        for f, t in qw.tensors().items():
            put(f"q::{name}::{f}", t)
        if m.bias is not None:
            put(f"q::{name}::bias", m.bias)
        layers[name] = {"meta": qw.meta(), "bias": m.bias is not None}
    dense = _dense_state(model, qmods) if include_dense else {}
    for k, t in dense.items():
        put(f"dense::{k}", t)
    path = os.path.join(directory, TENSORS)
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata={"format": _FORMAT, "format_version": str(FORMAT_VERSION)})
    os.replace(tmp, path)
    cfg = getattr(model, "quantdllm_config", None)
    manifest = {"format": _FORMAT, "format_version": FORMAT_VERSION, "tensors_file": TENSORS,
                "tensors_bytes": os.path.getsize(path),
                "config": cfg.to_dict() if isinstance(cfg, QuantConfig) else None,
                "layers": layers, "dense": sorted(dense)}
    with open(os.path.join(directory, MANIFEST), "w") as fh:
        json.dump(manifest, fh, indent=1)


def _read_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise CheckpointError(f"{directory!r} holds no {MANIFEST}: not a quantdllm checkpoint")
    try:
        with open(path) as fh:
            manifest = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise CheckpointError(f"{path}: not a quantdllm manifest (format={manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unknown format_version {manifest.get('format_version')!r}; "
                              f"this library reads version {FORMAT_VERSION}")
    for key in ("tensors_file", "tensors_bytes", "layers", "dense"):
        if key not in manifest:
            raise CheckpointError(f"{path}: missing key {key!r}")
    return manifest


def _read_tensors(path: str, expected_bytes: int) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise CheckpointError(f"missing tensor file {path}")
    size = os.path.getsize(path)
    if size != expected_bytes:
        raise CheckpointError(f"{path} is {size} bytes, the manifest says {expected_bytes}: truncated or replaced")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot read tensors ({e})") from None


def load_quantized(model: nn.Module, directory: str, strict: bool = True) -> nn.Module:
    """Swap in the QuantLinears saved in ``directory`` and restore every saved tensor exactly.

    ``model`` is the architecture (its ``nn.Linear`` layers, or QuantLinears of an earlier load);
    all checks run before the first change, so on error the model is untouched. With ``strict``,
    every dense tensor of the model must be in the checkpoint when it stores dense tensors.
    """
    manifest = _read_manifest(directory)
    tensors = _read_tensors(os.path.join(directory, manifest["tensors_file"]), manifest["tensors_bytes"])

    new_modules = {}
    for name, info in manifest["layers"].items():
        try:
            old = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(f"layer {name!r} of the checkpoint does not exist in the model") from None
        if not isinstance(old, (nn.Linear, QuantLinear)):
            raise CheckpointError(f"layer {name!r} is a {type(old).__name__}, expected nn.Linear or QuantLinear")
        meta = info["meta"]
        if (old.out_features, old.in_features) != (meta["out_features"], meta["in_features"]):
            raise CheckpointError(f"layer {name!r}: checkpoint shape ({meta['out_features']}, {meta['in_features']}) "
                                  f"!= model shape ({old.out_features}, {old.in_features})")
        prefix = f"q::{name}::"
        fields = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        bias = fields.pop("bias", None)
        if info["bias"] and bias is None:
            raise CheckpointError(f"layer {name!r}: missing tensor 'bias'")
        try:
            qw = weight_from_tensors(meta, fields, validate=True)
        except (ValueError, TypeError, KeyError) as e:
            raise CheckpointError(f"layer {name!r}: {e}") from None
        ref = next(iter(old.buffers()), None) if isinstance(old, QuantLinear) else old.weight
        device = ref.device if ref is not None else torch.device("cpu")
        new_modules[name] = QuantLinear(qw.to(device), bias.to(device) if bias is not None else None,
                                        backend=getattr(old, "backend", None))

    dense = {k[len("dense::"):]: v for k, v in tensors.items() if k.startswith("dense::")}
    missing = set(manifest["dense"]) - set(dense)
    if missing:
        raise CheckpointError(f"missing dense tensors: {sorted(missing)[:5]}")
    prefixes = tuple(n + "." for n in new_modules)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(prefixes)}
    for k, v in dense.items():
        if k not in state:
            raise CheckpointError(f"dense tensor {k!r} of the checkpoint does not exist in the model")
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"dense tensor {k!r}: checkpoint shape {tuple(v.shape)} != model shape "
                                  f"{tuple(state[k].shape)}")
        if state[k].dtype != v.dtype:
            raise CheckpointError(f"dense tensor {k!r}: checkpoint dtype {v.dtype} != model dtype {state[k].dtype}; "
                                  f"cast the model first (e.g. model.to({v.dtype}))")
    if strict and dense:
        absent = set(state) - set(dense)
        if absent:
            raise CheckpointError(f"the checkpoint lacks model tensors {sorted(absent)[:5]} (strict=True)")

    # Everything checked: apply.
    for name, mod in new_modules.items():
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, mod)
    with torch.no_grad():
        for k, v in dense.items():
            state[k].copy_(v)
    if manifest.get("config"):
        model.quantdllm_config = QuantConfig.from_dict(manifest["config"])
    return model
