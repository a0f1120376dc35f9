"""Ahead-of-time compilation of the Triton kernels for a GPU architecture, without a GPU.

Triton's interpreter (the CPU tests) runs the kernels' Python semantics but never lowers them, so
a construct the compiler rejects would first fail on a GPU. ``compile_variant`` lowers one kernel
instantiation to PTX and a cubin for a target (``sm_80``, ``sm_90``) on any machine: CI runs it
over ``VARIANTS``, and ``python -m quantdllm_kernels.triton.aot`` prints ptxas' register, spill
and shared-memory report of each (``--sweep BITS LUT_MODE``: of every tuner candidate config).
The GPU machine's Triton may be older than this one: the device run checks its own compile.
"""
from __future__ import annotations

import argparse
import inspect
import os
import re
import shutil
import subprocess
import tempfile
from typing import Dict, List, Tuple

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import kernels
from .layout import AFFINE, BINARY, SCALED_ROW, SCALED_SHARED, TABLE

_INT_PTRS = ("p0_ptr", "p1_ptr")
_FP32_PTRS = ("ins_ptr", "ts_t_ptr", "ts_bounds_ptr", "t_ptr", "bounds_ptr")


def _signature(fn, consts: Dict[str, object], act: str) -> Dict[str, str]:
    sig = {}
    for name in inspect.signature(fn.fn).parameters:
        if name in consts:
            sig[name] = "constexpr"
        elif name in _INT_PTRS:
            sig[name] = "*i32"
        elif name in _FP32_PTRS:
            sig[name] = "*fp32"
        elif name.endswith("_ptr"):
            sig[name] = act   # x, y, bias, LUT slots, bias tables: the activation dtype
        else:
            sig[name] = "i32"
    return sig


def _bits_consts(bits: int, lut_mode: int) -> Dict[str, object]:
    b0, b1 = (2, 1) if bits == 3 else (bits, 0)
    return dict(BITS=bits, B0=b0, B1=b1, LUT_MODE=lut_mode, HAS_ZERO=lut_mode in (AFFINE, SCALED_SHARED, SCALED_ROW))


def variant_consts(kernel: str, bits: int, lut_mode: int, fused: bool) -> Dict[str, object]:
    """Constexprs of one instantiation: ``fused`` turns on every optional input (in_scale, bias,
    per-row timestep bias and LUT sets), otherwise none."""
    c = _bits_consts(bits, lut_mode)
    c["HAS_IN_SCALE"] = fused
    if kernel == "lut_dequant_kernel":
        return dict(c, BLOCK_N=128, BLOCK_K=64, HAS_TS_LUTS=fused)
    ts = dict(HAS_BIAS=fused, HAS_TS=fused, TS_PER_ROW=fused, HAS_TS_LUTS=fused)
    if kernel == "lut_gemv_kernel":
        return dict(c, **ts, SPLIT_K=4, BLOCK_N=128, BLOCK_K=64)
    return dict(c, **ts, SPLIT_K=1 if fused else 2, BLOCK_M=64, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, DOT_F32=False)


# (kernel, bits, lut_mode, fused, activation dtype): every kernel, every bit width and LUT mode at
# least once, with every optional input on and off
VARIANTS: List[Tuple[str, int, int, bool, str]] = [
    (k, bits, mode, fused, act)
    for k in ("lut_gemv_kernel", "lut_gemm_kernel", "lut_dequant_kernel")
    for (bits, mode, fused, act) in ((2, AFFINE, True, "*fp16"), (3, TABLE, True, "*bf16"), (4, BINARY, False, "*fp16"),
                                     (4, SCALED_ROW, True, "*bf16"), (3, SCALED_SHARED, False, "*fp16"))
]


# further instantiations, (label, kernel, constexprs, activation dtype): the dequant launch that
# also writes [x, onehot] (per-row timestep bias at large M), one
# timestep for the whole launch with LUT sets (VARIANTS' fused ones have per-row t), the affine
# GEMV's word-row form, whole K / N tiles (EVEN_K / EVEN_N: no masks), the table select tree, and
# the dequant's W (N, K) store (ROWS_NK), one timestep's bias row gathered in the dequant launch
AUX_KERNELS: List[Tuple[str, str, Dict[str, object], str]] = [
    ("gemm_one_t_lut_sets", "lut_gemm_kernel",
     dict(variant_consts("lut_gemm_kernel", 4, AFFINE, True), TS_PER_ROW=False), "*fp16"),
    ("gemv_word_rows_even_k", "lut_gemv_kernel",
     dict(variant_consts("lut_gemv_kernel", 3, AFFINE, True), WORD_ROWS=True, EVEN_K=True), "*bf16"),
    ("gemm_even_k_n", "lut_gemm_kernel", dict(variant_consts("lut_gemm_kernel", 3, BINARY, False), EVEN_K=True,
                                               EVEN_N=True), "*fp16"),
    ("gemm_table_select", "lut_gemm_kernel", dict(variant_consts("lut_gemm_kernel", 3, TABLE, True), LUT_MODE=5),
     "*bf16"),
    ("gemv_table_select", "lut_gemv_kernel", dict(variant_consts("lut_gemv_kernel", 2, TABLE, False), LUT_MODE=5),
     "*fp16"),
    ("dequant_even_k", "lut_dequant_kernel", dict(variant_consts("lut_dequant_kernel", 2, TABLE, True), EVEN_K=True),
     "*fp16"),
    ("dequant_onehot_cat", "lut_dequant_kernel",
     dict(variant_consts("lut_dequant_kernel", 4, AFFINE, False), HAS_XCAT=True, CAT_BLOCK=1024), "*fp16"),
    ("dequant_rows_nk", "lut_dequant_kernel", dict(variant_consts("lut_dequant_kernel", 4, AFFINE, False), ROWS_NK=True),
     "*fp16"),
    ("dequant_rows_nk_binary", "lut_dequant_kernel",
     dict(variant_consts("lut_dequant_kernel", 3, BINARY, True), ROWS_NK=True), "*bf16"),
    ("dequant_bias_row", "lut_dequant_kernel",
     dict(variant_consts("lut_dequant_kernel", 4, AFFINE, False), ROWS_NK=True, HAS_BIAS_ROW=True, HAS_BIAS=True),
     "*fp16"),
]


def compile_variant(kernel: str, bits: int, lut_mode: int, fused: bool, act: str = "*fp16", cc: int = 90,
                    num_warps: int = 4, num_stages: int = 3):
    """Lower one kernel instantiation to PTX and cubin for ``sm_<cc>``; returns Triton's compiled kernel."""
    return _compile(getattr(kernels, kernel), variant_consts(kernel, bits, lut_mode, fused), act, cc, num_warps,
                    num_stages)


def ptxas_report(compiled, cc: int) -> str:
    """ptxas -v's register / spill line for a compiled kernel, from the ptxas Triton bundles (its
    PTX may be newer than the CUDA toolkit's ptxas reads); '' when there is none."""
    try:
        from triton.backends.nvidia.compiler import get_ptxas
        ptxas = get_ptxas(cc).path
    except Exception:  # pragma: no cover - depends on the Triton build
        ptxas = shutil.which("ptxas")
    if not ptxas:
        return ""
    arch = f"sm_{cc}a" if cc >= 90 else f"sm_{cc}"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "k.ptx")
        with open(path, "w") as fh:
            fh.write(compiled.asm["ptx"])
        out = subprocess.run([ptxas, f"-arch={arch}", "-v", path, "-o", os.devnull], capture_output=True, text=True)
    lines = [ln.split("info    : ")[-1] for ln in out.stderr.splitlines() if re.search(r"registers|spill", ln)]
    return "; ".join(lines)


def _compile(fn, consts, act, cc, num_warps, num_stages):
    if not hasattr(fn, "cache_key"):
        raise RuntimeError("the Triton kernels were imported under TRITON_INTERPRET=1, which cannot lower them; "
                           "run the compile in a process without it")
    for name, prm in inspect.signature(fn.fn).parameters.items():   # constexprs left at their defaults
        if name not in consts and prm.default is not inspect.Parameter.empty and "constexpr" in str(prm.annotation):
            consts = dict(consts, **{name: prm.default})
    src = ASTSource(fn=fn, signature=_signature(fn, consts, act), constexprs=consts)
    return triton.compile(src, target=GPUTarget("cuda", cc, 32), options=dict(num_warps=num_warps,
                                                                              num_stages=num_stages))


def config_sweep(bits: int, lut_mode: int, cc: int = 90, masked: bool = False):
    """(path, config, ptxas report) of every tuner candidate (ops.GEMV_CONFIGS / GEMM_CONFIGS) for
    one bit width and LUT mode, bias on, no other optional input: which tiles spill. Whole tiles
    (EVEN_K / EVEN_N, as on every LLaDA shape) unless ``masked``."""
    from .ops import GEMM_CONFIGS, GEMV_CONFIGS
    base = dict(_bits_consts(bits, lut_mode), HAS_IN_SCALE=False, HAS_BIAS=True, HAS_TS=False, TS_PER_ROW=False,
                HAS_TS_LUTS=False, EVEN_K=not masked, EVEN_N=not masked)
    for bn, bk, sk, w, st in GEMV_CONFIGS:
        c = _compile(kernels.lut_gemv_kernel, dict(base, SPLIT_K=sk, BLOCK_N=bn, BLOCK_K=bk), "*fp16", cc, w, st)
        yield "gemv", dict(BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=sk, num_warps=w, num_stages=st), ptxas_report(c, cc)
    for bm, bn, bk, sk, w, st in GEMM_CONFIGS:
        consts = dict(base, SPLIT_K=sk, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, DOT_F32=False)
        c = _compile(kernels.lut_gemm_kernel, consts, "*fp16", cc, w, st)
        yield "gemm", dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=sk, num_warps=w, num_stages=st), \
            ptxas_report(c, cc)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cc", type=int, nargs="+", default=[80, 90])
    ap.add_argument("--sweep", type=int, nargs=2, metavar=("BITS", "LUT_MODE"),
                    help="report every tuner candidate config for one bit width and LUT mode instead")
    ap.add_argument("--masked", action="store_true", help="with --sweep: the masked (partial-tile) forms")
    args = ap.parse_args(argv)
    print(f"triton {triton.__version__}")
    for cc in args.cc:
        if args.sweep:
            for path, cfg, rep in config_sweep(*args.sweep, cc=cc, masked=args.masked):
                print(f"sm_{cc} {path} {cfg} | {rep}")
            continue
        for v in VARIANTS:
            c = compile_variant(*v, cc=cc)
            kernel, bits, mode, fused, act = v
            print(f"sm_{cc} {kernel:18s} bits={bits} lut_mode={mode} fused={int(fused)} {act[1:]:4s} "
                  f"smem={c.metadata.shared} | {ptxas_report(c, cc)}")
        for label, name, consts, act in AUX_KERNELS:
            c = _compile(getattr(kernels, name), consts, act, cc, 4, 3)
            print(f"sm_{cc} {label} {act[1:]} smem={c.metadata.shared} | {ptxas_report(c, cc)}")


if __name__ == "__main__":
    main()
