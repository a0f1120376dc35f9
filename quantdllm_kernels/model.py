"""Whole-model quantization: ``QuantConfig`` and ``quantize_model``."""
from __future__ import annotations

import fnmatch
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from typing import List, Optional, Tuple

import torch
from torch import nn

from .linear import QuantLinear
from .quantizers import METHODS

__all__ = ["QuantConfig", "quantize_model", "select_linears", "output_head_names"]

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass
class QuantConfig:
    """What to quantize and how. ``include``/``exclude`` are fnmatch patterns on module names
    (``"model.layers.*.mlp.*"``); ``exclude=None`` excludes the model's output head."""

    bits: int = 4
    group_size: Optional[int] = 128
    method: str = "rtn"
    lut_dtype: Optional[str] = None          # "float16" | "bfloat16" | "float32"; None: the weight's dtype
    include: Tuple[str, ...] = ("*",)
    exclude: Optional[Tuple[str, ...]] = None
    seed: int = 0

    def __post_init__(self):
        if self.bits not in (2, 3, 4):
            raise ValueError(f"QuantConfig.bits must be 2, 3 or 4, got {self.bits!r}")
        if self.method not in METHODS:
            raise ValueError(f"QuantConfig.method must be one of {METHODS}, got {self.method!r}")
        if self.lut_dtype is not None and self.lut_dtype not in _DTYPES:
            raise ValueError(f"QuantConfig.lut_dtype must be None or one of {sorted(_DTYPES)}, got {self.lut_dtype!r}")
        self.include = tuple(self.include)
        if self.exclude is not None:
            self.exclude = tuple(self.exclude)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "QuantConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def output_head_names(model: nn.Module) -> List[str]:
    """Names of the output head: ``get_output_embeddings()`` when the model has it, else ``lm_head``."""
    names = []
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    for name, mod in model.named_modules():
        if (head is not None and mod is head) or name.split(".")[-1] == "lm_head":
            names.append(name)
    return names


def select_linears(model: nn.Module, config: QuantConfig) -> List[str]:
    exclude = config.exclude if config.exclude is not None else tuple(output_head_names(model))
    out = []
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in config.include) and \
                not any(fnmatch.fnmatchcase(name, p) for p in exclude):
            out.append(name)
    return out


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)


def quantize_model(model: nn.Module, config: Optional[QuantConfig] = None, calib_data=None, *,
                   progress: bool = True, verbose: bool = True) -> nn.Module:
    """Replace the selected ``nn.Linear`` modules of ``model`` (in place) by ``QuantLinear``.

    Layers whose in_features the group size does not divide are left in full precision and
    listed in the summary. Returns ``model``; ``model.quantdllm_report`` holds per-layer rows.
    """
    from tqdm.auto import tqdm

    config = config or QuantConfig()
    if not isinstance(config, QuantConfig):
        raise TypeError(f"config must be a QuantConfig, got {type(config).__name__}")
    if calib_data is not None:
        warnings.warn(f"calib_data is not used by the data-free method {config.method!r}", stacklevel=2)
    names = select_linears(model, config)
    lut_dtype = _DTYPES[config.lut_dtype] if config.lut_dtype else None
    report, skipped = [], []
    bytes_before = bytes_after = 0
    for name in tqdm(names, desc="quantize", disable=not progress, file=sys.stderr):
        lin = model.get_submodule(name)
        g = config.group_size
        if g is not None and lin.in_features % g:
            skipped.append((name, f"in_features {lin.in_features} not divisible by group_size {g}"))
            continue
        t0 = time.perf_counter()
        q = QuantLinear.from_linear(lin, bits=config.bits, group_size=g, method=config.method,
                                    lut_dtype=lut_dtype, seed=config.seed)
        before = lin.weight.numel() * lin.weight.element_size()
        after = q.qweight.nbytes
        bytes_before += before
        bytes_after += after
        report.append({"name": name, "method": config.method, "bits": config.bits,
                       "effective_bits": q.qweight.effective_bits, "bytes_before": before, "bytes_after": after,
                       "seconds": time.perf_counter() - t0})
        _set_submodule(model, name, q)
    model.quantdllm_config = config
    model.quantdllm_report = report
    if verbose:
        ratio = bytes_after / bytes_before if bytes_before else float("nan")
        print(f"quantdllm: {len(report)} linear layers -> {config.bits}-bit {config.method}: "
              f"{bytes_before / 2**20:.2f} MiB -> {bytes_after / 2**20:.2f} MiB ({ratio:.1%})", file=sys.stderr)
        for name, why in skipped:
            print(f"quantdllm: kept {name} in full precision: {why}", file=sys.stderr)
    return model
