"""Whole-model quantization: ``QuantConfig`` and ``quantize_model``."""
from __future__ import annotations

import fnmatch
import sys
import time
from dataclasses import asdict, dataclass
from typing import List, Optional, Tuple

import torch
from torch import nn

from .linear import QuantLinear
from .quantizers import METHODS as DATA_FREE_METHODS

METHODS = DATA_FREE_METHODS + ("daq",)  # daq needs calibration data

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
    calib_seq_len: Optional[int] = None       # truncate calibration sequences to this length
    n_calib: Optional[int] = None             # use at most this many calibration sequences
    calib_batch_size: int = 8                 # sequences per calibration forward
    gptq: bool = False                        # GPTQ error compensation (method "rtn" or "kmeans")
    mixed_precision: bool = False             # ABMP: per-block widths over input channels
    avg_bits: Optional[float] = None          # ABMP budget, exact mean code width (default: bits)
    abmp_block: int = 128                     # ABMP block of input channels
    abmp_widths: Optional[Tuple[int, ...]] = None  # ABMP candidate widths (default: bits-1, bits, bits+1)
    timestep_buckets: Optional[int] = None    # T: per-timestep bias correction over T equal buckets
    bias_correction: str = "layer"            # "layer": E[(W - W_hat) x | t]; "drift": E[W x_fp - W_hat x_q | t]

    def __post_init__(self):
        if self.bits not in (2, 3, 4):
            raise ValueError(f"QuantConfig.bits must be 2, 3 or 4, got {self.bits!r}")
        if self.method not in METHODS:
            raise ValueError(f"QuantConfig.method must be one of {METHODS}, got {self.method!r}")
        if self.lut_dtype is not None and self.lut_dtype not in _DTYPES:
            raise ValueError(f"QuantConfig.lut_dtype must be None or one of {sorted(_DTYPES)}, got {self.lut_dtype!r}")
        if self.gptq and self.method not in ("rtn", "kmeans"):
            raise ValueError(f"QuantConfig.gptq compensates 'rtn' or 'kmeans', not {self.method!r}")
        if self.mixed_precision:
            widths = tuple(self.abmp_widths) if self.abmp_widths is not None else (
                tuple(w for w in (self.bits - 1, self.bits, self.bits + 1) if 1 <= w <= 4))
            if not widths or any(w not in (1, 2, 3, 4) for w in widths):
                raise ValueError(f"QuantConfig.abmp_widths must be widths in 1..4, got {self.abmp_widths!r}")
            self.abmp_widths = None if self.abmp_widths is None else tuple(int(w) for w in self.abmp_widths)
            avg = self.avg_bits if self.avg_bits is not None else self.bits
            if not min(widths) <= avg <= max(widths):
                raise ValueError(f"QuantConfig.avg_bits={avg} is outside the ABMP widths {widths}")
            if self.abmp_block < 1 or (self.group_size is not None and self.abmp_block % self.group_size):
                raise ValueError(f"QuantConfig.abmp_block ({self.abmp_block}) must be a multiple of "
                                 f"group_size ({self.group_size})")
        elif self.avg_bits is not None and self.avg_bits != self.bits:
            raise ValueError("QuantConfig.avg_bits differs from bits: set mixed_precision=True")
        if self.timestep_buckets is not None and not 1 <= int(self.timestep_buckets) <= 64:
            raise ValueError(f"QuantConfig.timestep_buckets must be 1..64, got {self.timestep_buckets!r}")
        if self.bias_correction not in ("layer", "drift"):
            raise ValueError(f"QuantConfig.bias_correction must be 'layer' or 'drift', got {self.bias_correction!r}")
        if self.calib_batch_size < 1:
            raise ValueError(f"QuantConfig.calib_batch_size must be >= 1, got {self.calib_batch_size}")
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
                   mask_token_id: Optional[int] = None, device=None, progress: bool = True,
                   verbose: bool = True) -> nn.Module:
    """Replace the selected ``nn.Linear`` modules of ``model`` (in place) by ``QuantLinear``.

    Without ``calib_data`` every layer is quantized data-free. With it (token ids ``(n, L)``, a list
    of 1-D tensors, or model-input dicts), the model is calibrated block by block on masked
    calibration samples (``mask_token_id`` given: each sequence masked at its own timestep) and
    every layer's report carries its calibration-weighted relative error; ``method="daq"``,
    ``mixed_precision`` and ``timestep_buckets`` need calibration data (the last also
    ``mask_token_id``). ``device``: where calibration runs; a model left on the CPU is moved there
    one block at a time (an 8B model calibrates on one 80 GB GPU). Layers whose in_features the group size does not divide stay in full
    precision and are listed. Returns ``model``; ``model.quantdllm_report`` holds per-layer rows.
    """
    from tqdm.auto import tqdm

    config = config or QuantConfig()
    if not isinstance(config, QuantConfig):
        raise TypeError(f"config must be a QuantConfig, got {type(config).__name__}")
    if calib_data is None:
        for what, on in (("method='daq'", config.method == "daq"), ("gptq=True", config.gptq),
                         ("mixed_precision=True", config.mixed_precision),
                         ("timestep_buckets", config.timestep_buckets)):
            if on:
                raise ValueError(f"{what} is data-aware: pass calib_data (token ids or model-input dicts)")
    if config.timestep_buckets and mask_token_id is None:
        raise ValueError("timestep_buckets needs mask_token_id: the buckets are over masking ratios")
    names = select_linears(model, config)
    lut_dtype = _DTYPES[config.lut_dtype] if config.lut_dtype else None
    skipped = [(n, f"in_features {model.get_submodule(n).in_features} not divisible by group_size "
                   f"{config.group_size}") for n in names
               if config.group_size is not None and model.get_submodule(n).in_features % config.group_size]
    names = [n for n in names if n not in {s for s, _ in skipped}]
    report = []
    if calib_data is not None:
        from .calibrate.mcs import masked_calibration_batches
        from .calibrate.pipeline import calibrate_model

        batches = masked_calibration_batches(calib_data, mask_token_id, seq_len=config.calib_seq_len,
                                             n=config.n_calib, batch_size=config.calib_batch_size,
                                             buckets=config.timestep_buckets, seed=config.seed)
        report = calibrate_model(model, config, batches, names, lut_dtype, progress=progress, device=device)
    done = {r["name"] for r in report}
    rest = [n for n in names if n not in done]  # data-free, or outside the block stack
    for name in tqdm(rest, desc="quantize", disable=not progress or not rest, file=sys.stderr):
        lin = model.get_submodule(name)
        t0 = time.perf_counter()
        if config.method == "daq" or config.gptq or config.mixed_precision:
            # outside the blocks no Hessian was collected: the data-aware method with H = I
            from .calibrate.layer import quantize_layer
            W = lin.weight.detach().float()
            dt = lut_dtype or (lin.weight.dtype if lin.weight.dtype in (torch.float16, torch.bfloat16)
                               else torch.float16)
            q = QuantLinear(quantize_layer(W, torch.eye(W.shape[1], dtype=torch.float64, device=W.device), config, dt),
                            lin.bias)
        else:
            q = QuantLinear.from_linear(lin, bits=config.bits, group_size=config.group_size, method=config.method,
                                        lut_dtype=lut_dtype, seed=config.seed)
        report.append({"name": name, "method": config.method, "gptq": bool(config.gptq), "bits": float(q.qweight.bits),
                       "effective_bits": q.qweight.effective_bits, "weighted_rel_error": None,
                       "bytes_before": lin.weight.numel() * lin.weight.element_size(),
                       "bytes_after": q.qweight.nbytes, "seconds": time.perf_counter() - t0})
        _set_submodule(model, name, q)
    model.quantdllm_config = config
    model.quantdllm_report = report
    if verbose:
        before = sum(r["bytes_before"] for r in report)
        after = sum(r["bytes_after"] for r in report)
        ratio = after / before if before else float("nan")
        print(f"quantdllm: {len(report)} linear layers -> {config.bits}-bit {config.method}: "
              f"{before / 2**20:.2f} MiB -> {after / 2**20:.2f} MiB ({ratio:.1%})", file=sys.stderr)
        for name, why in skipped:
            print(f"quantdllm: kept {name} in full precision: {why}", file=sys.stderr)
    return model
