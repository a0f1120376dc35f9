"""Launching the Triton kernels: path by M, a small deliberate config set per path, and a
measured tuner whose choices can be saved to / loaded from JSON.

Tuning key: (path, M bucket, N, K, bits, lut_mode, group_size, x dtype). On a GPU the first call
for a key times every candidate with ``triton.testing.do_bench`` (median) and keeps the fastest;
``QUANTDLLM_TRITON_TUNE=0`` uses the first legal candidate instead. ``save_tuned_configs`` /
``load_tuned_configs`` (or ``QUANTDLLM_TRITON_CONFIGS=path``, read at import) persist the choices.
"""
from __future__ import annotations

import json
import os
import threading
from typing import Dict, List, Optional, Tuple

import torch
import triton

from ..timing import median_ms
from .kernels import lut_dequant_kernel, lut_gemm_kernel, lut_gemv_kernel
from .layout import BINARY, TABLE, TABLE_SELECT, TritonWeight

GEMV_MAX_M = 1
_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

# (BLOCK_N, BLOCK_K, SPLIT_K, num_warps, num_stages)
GEMV_CONFIGS = [
    (128, 64, 8, 4, 2), (128, 128, 4, 4, 2), (256, 64, 4, 8, 2), (64, 128, 8, 4, 3),
    (128, 64, 16, 4, 2), (256, 128, 2, 8, 2), (64, 64, 16, 2, 3), (128, 32, 16, 4, 3),
    (128, 128, 1, 4, 3), (64, 256, 4, 4, 2), (32, 256, 4, 2, 3), (32, 128, 8, 1, 3),
    # no split: no zeroed fp32 buffer and no cast after, two launches fewer (~2 µs each under graph
    # replay); narrow column tiles keep enough programs, deeper pipelines keep the loads in flight
    (32, 128, 1, 2, 4), (64, 128, 1, 4, 4), (16, 128, 1, 1, 5),
]
# (BLOCK_M, BLOCK_N, BLOCK_K, SPLIT_K, num_warps, num_stages)
GEMM_CONFIGS = [
    (16, 64, 64, 4, 4, 3), (16, 128, 64, 2, 4, 3), (16, 128, 128, 4, 4, 3), (32, 128, 64, 1, 4, 3),
    (32, 64, 128, 2, 4, 3), (64, 128, 64, 1, 4, 3), (64, 256, 64, 1, 8, 3), (128, 128, 64, 1, 8, 3),
    (128, 256, 64, 1, 8, 3), (128, 128, 32, 1, 4, 4), (256, 128, 64, 1, 8, 3), (64, 128, 32, 1, 4, 4),
    # small M without split-K: no zeroed fp32 buffer and no cast launch (see GEMV_CONFIGS)
    (16, 64, 128, 1, 4, 4), (16, 32, 128, 1, 2, 4),
]
# dequantize W once (dequantize_t), then cuBLAS: (BLOCK_N, BLOCK_K, num_warps); offered for M > DEQUANT_MIN_M
DEQUANT_CONFIGS = [(128, 64, 4), (256, 32, 4)]
DEQUANT_MIN_M = 64
_INTERPRET_GEMV = (32, 32, 2, 1, 1)
_INTERPRET_GEMM = (16, 32, 32, 2, 1, 1)

_lock = threading.Lock()
_TUNED: Dict[str, dict] = {}


def m_bucket(M: int) -> int:
    return 1 << max(0, (M - 1).bit_length()) if M <= 4096 else 8192


def _key(path, M, tw: TritonWeight, dtype) -> str:
    return f"{path}|{m_bucket(M)}|{tw.N}|{tw.K}|{tw.bits}|{tw.lut_mode}|{tw.group_size}|{str(dtype).split('.')[-1]}"


def _legal_bk(bk: int, tw: TritonWeight) -> bool:
    """A K tile stays in one group and holds whole packed words of every plane (3-bit: the 1-bit
    plane packs 32 codes a word, so BLOCK_K must be a multiple of 32)."""
    whole_words = all(bk % (32 // b) == 0 for b in (tw.b0, tw.b1) if b)
    return whole_words and (tw.groups == 1 or tw.group_size % bk == 0)


def _selectable(tw: TritonWeight) -> bool:
    """A table of at most 3 bits: the kernels can read it by a select tree instead of a gather."""
    return tw.lut_mode == TABLE and tw.bits <= 3


def _kernel_mode(tw: TritonWeight, select: bool) -> int:
    """The kernels' LUT_MODE: the weight's, or the select-tree read of a table (config LUT_SELECT)."""
    if select and not _selectable(tw):
        raise ValueError(f"LUT_SELECT needs a table weight of at most 3 bits, got lut_mode {tw.lut_mode}, "
                         f"{tw.bits} bits")
    return TABLE_SELECT if select else tw.lut_mode


def _even_k(tw: TritonWeight, bk: int) -> bool:
    """Every K tile is whole (no padding, no tail): the kernels drop their K masks."""
    return tw.Kp == tw.K and tw.K % bk == 0


def _unpipelined(tw: TritonWeight) -> bool:
    """Triton 3.6 miscompiles the GEMM of 3-bit (two-plane) gathered weights when pipelined: binary
    at 64 x 128 x 32 tiles with 3 and 4 stages (probe), and table at 64 / 128 x 128 x 32 with 4
    stages (every-candidate GPU test); 1 stage is right, as is the interpreter (H200, 2026-11-29).
    The affine 3-bit GEMM passes pipelined."""
    return bool(tw.b1) and tw.lut_mode in (TABLE, BINARY)


def _candidates(path: str, M: int, tw: TritonWeight) -> List[dict]:
    k_tiles = lambda bk: -(-tw.Kp // bk)  # noqa: E731
    out = []
    if path == "gemv":
        for bn, bk, sk, w, s in ([_INTERPRET_GEMV] if _INTERPRET else GEMV_CONFIGS):
            if _legal_bk(bk, tw) and sk <= k_tiles(bk):
                out.append(dict(BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=sk, num_warps=w, num_stages=s))
        if tw.lut_mode == 0 and not _INTERPRET:   # affine: the word-row form too, the tuner measures both
            out += [dict(c, WORD_ROWS=True) for c in out]
        if _selectable(tw) and not _INTERPRET:   # gather or select tree: measured
            out += [dict(c, LUT_SELECT=True) for c in out]
    else:
        for bm, bn, bk, sk, w, s in ([_INTERPRET_GEMM] if _INTERPRET else GEMM_CONFIGS):
            if not _legal_bk(bk, tw) or sk > k_tiles(bk):
                continue
            if M > 256 and bm < 64 or M <= 64 and bm > 64:   # keep the set deliberate per M range
                continue
            if _unpipelined(tw):
                s = 1
            out.append(dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=sk, num_warps=w, num_stages=s))
        if _selectable(tw) and not _INTERPRET:
            out += [dict(c, LUT_SELECT=True) for c in out]
        if M > DEQUANT_MIN_M or _INTERPRET:
            for bn, bk, w in ([(32, 32, 1)] if _INTERPRET else DEQUANT_CONFIGS):
                if _legal_bk(bk, tw):
                    out.append(dict(DEQUANT=1, BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=1, num_warps=w, num_stages=1))
    if not out:  # group size 32: only 32-wide K tiles are legal
        if path == "gemv":
            out.append(dict(BLOCK_N=128, BLOCK_K=32, SPLIT_K=min(8, k_tiles(32)), num_warps=4, num_stages=3))
        else:
            out.append(dict(BLOCK_M=64 if M > 64 else 16, BLOCK_N=128, BLOCK_K=32, SPLIT_K=1, num_warps=4,
                            num_stages=1 if _unpipelined(tw) else 4))
    return out


def _lut_args(tw: TritonWeight, ts):
    """(scale, zero, lut, bucket strides, HAS_TS_LUTS): the weight's per-bucket LUT sets when it has
    them and a timestep is given, else its own LUTs."""
    dummy = tw.plane1
    if ts is not None and tw.ts_luts is not None:
        s = tw.ts_luts
        return s.scale, s.zero if s.zero is not None else dummy, s.lut, s.strides, True
    return tw.scale, tw.zero if tw.zero is not None else dummy, tw.lut, (0, 0, 0), False


def _launch(path: str, cfg: dict, x2: torch.Tensor, tw: TritonWeight, bias: Optional[torch.Tensor],
            out_dtype: torch.dtype, ts=None) -> torch.Tensor:
    """``ts``: None or (t (1,) or (M,) fp32, boundaries (T-1,) fp32, bias table (T, N) or None),
    contiguous. The weight's per-bucket LUT sets (``tw.ts_luts``) are used whenever ``ts`` is given."""
    M, K = x2.shape
    N = tw.N
    per_row = ts is not None and ts[0].numel() > 1
    if cfg.get("DEQUANT") and per_row and tw.ts_luts is not None:
        # one dequantized W cannot serve rows of different buckets: the fused GEMM takes them
        cfg = next(c for c in _candidates("gemm", M, tw) if not c.get("DEQUANT"))
        path = "gemm"
    if cfg.get("DEQUANT"):
        if ts is not None and ts[2] is not None and not per_row:   # one timestep: its row joins the bias
            return _dequant_then_cublas_bias_row(cfg, x2, tw, bias, out_dtype, ts)
        if per_row and ts[2] is not None:
            return _dequant_then_cublas_ts_rows(cfg, x2, tw, bias, out_dtype, ts)
        return _dequant_then_cublas(cfg, x2, tw, bias, out_dtype, ts)
    split = cfg["SPLIT_K"]
    y = (torch.zeros if split > 1 else torch.empty)((M, N), device=x2.device,
                                                     dtype=torch.float32 if split > 1 else out_dtype)
    dummy = tw.plane1
    scale, zero, lut, strides, ts_luts = _lut_args(tw, ts)
    has_tb = ts is not None and ts[2] is not None
    t_args = (ts[0], ts[1], ts[2] if has_tb else dummy, ts[1].numel()) if ts is not None else (dummy, dummy, dummy, 0)
    args = (x2, y, bias if bias is not None else dummy, tw.in_scale if tw.in_scale is not None else dummy,
            tw.plane0, tw.plane1, scale, zero, lut, *t_args, *strides,
            M, N, K, tw.Kp, x2.stride(0), y.stride(0), tw.group_size)
    select = cfg.get("LUT_SELECT", False)
    if select:   # a tuner choice, not a kernel argument
        cfg = {k: v for k, v in cfg.items() if k != "LUT_SELECT"}
    flags = dict(BITS=tw.bits, B0=tw.b0, B1=tw.b1, LUT_MODE=_kernel_mode(tw, select),
                 HAS_ZERO=tw.zero is not None, HAS_BIAS=bias is not None, HAS_IN_SCALE=tw.in_scale is not None,
                 HAS_TS=has_tb, TS_PER_ROW=per_row, HAS_TS_LUTS=ts_luts, EVEN_K=_even_k(tw, cfg["BLOCK_K"]),
                 EVEN_N=N % cfg["BLOCK_N"] == 0)
    if path == "gemv":
        grid = (triton.cdiv(N, cfg["BLOCK_N"]), split)
        lut_gemv_kernel[grid](*args, **flags, **cfg)
    else:
        grid = (triton.cdiv(M, cfg["BLOCK_M"]) * triton.cdiv(N, cfg["BLOCK_N"]), split)
        lut_gemm_kernel[grid](*args, **flags, GROUP_M=8, DOT_F32=_INTERPRET and x2.dtype == torch.bfloat16, **cfg)
    if split > 1:   # bias and timestep rows were added by the first K slice
        y = y.to(out_dtype)
    return y


def dequantize_t(tw: TritonWeight, dtype: torch.dtype, cfg: Optional[dict] = None, ts=None,
                 out: Optional[torch.Tensor] = None, cat=None, rows_nk: bool = False,
                 bias_row=None) -> torch.Tensor:
    """W^T ``(K, N)`` in ``dtype`` (in_scale folded in), from the Triton layout; with ``ts`` (as in
    ``_launch``, one timestep) and per-bucket LUT sets, those of the timestep's bucket. ``out``: a
    contiguous ``(>= K, N)`` buffer whose first K rows receive it. ``cat = (x, xa, tp)`` with per-row
    ``ts`` and a bias table: the same launch also writes ``xa = [x, onehot(bucket(t))]`` (tp columns)
    and the table as ``out``'s rows K..K + tp (zeros past T). ``rows_nk``: stored as W ``(N, K)``
    and returned as its transposed view, so that ``x @ W^T`` is the GEMM F.linear runs (H200,
    (4096, 12288): cuBLAS 560 vs 607 µs at M = 4096, 141 vs 150 at 1024, against a contiguous W^T).
    ``bias_row = (bias or None, bvec)`` with one timestep and a bias table: the same launch writes
    ``bvec (N,) = table[bucket(t)] (+ bias)``, for the GEMM's bias epilogue."""
    cfg = cfg or dict(BLOCK_N=128, BLOCK_K=min(64, tw.group_size if tw.groups > 1 else 64), num_warps=4)
    if ts is not None and tw.ts_luts is not None and ts[0].numel() != 1:
        raise ValueError("dequantize_t takes one timestep: per-row timesteps need the fused GEMM")
    if rows_nk and (out is not None or cat is not None):
        raise ValueError("dequantize_t(rows_nk=True) allocates W itself and takes no cat")
    if rows_nk:
        wt = torch.empty((tw.N, tw.K), device=tw.plane0.device, dtype=dtype).t()
    else:
        wt = out if out is not None else torch.empty((tw.K, tw.N), device=tw.plane0.device, dtype=dtype)
    dummy = tw.plane1
    scale, zero, lut, strides, ts_luts = _lut_args(tw, ts)
    t_args = (ts[0], ts[1], ts[1].numel()) if ts is not None else (dummy, dummy, 0)
    nk, nn = triton.cdiv(tw.K, cfg["BLOCK_K"]), triton.cdiv(tw.N, cfg["BLOCK_N"])
    cat_block = 64 if _INTERPRET else 1024
    if cat is not None:
        x, xa, tp = cat
        if ts is None or ts[2] is None or wt.shape[0] < tw.K + tp or xa.shape[1] != tw.K + tp:
            raise ValueError("dequantize_t(cat=...) needs per-row ts with a bias table and buffers of K + tp")
        pieces = x.shape[0] * triton.cdiv(tw.K + tp, cat_block) + tp * triton.cdiv(tw.N, cat_block)
        nc = triton.cdiv(pieces, nn)   # program rows of pieces, ahead of the K tiles in each grid row
        cat_args = (x, xa, ts[2], x.shape[0], ts[2].shape[0], tp, nc, x.stride(0), xa.stride(0))
    else:
        nc, cat_args = 0, (dummy, dummy, dummy, 0, 0, 0, 0, 0, 0)
    row_args, has_row, has_bias = (dummy, dummy), False, False
    if bias_row is not None:
        bias, bvec = bias_row
        if cat is not None or ts is None or ts[2] is None or ts[0].numel() != 1:
            raise ValueError("dequantize_t(bias_row=...) needs one timestep with a bias table, and no cat")
        if bvec.shape != (tw.N,) or not bvec.is_contiguous() or (bias is not None and bias.shape != (tw.N,)):
            raise ValueError(f"dequantize_t(bias_row=(bias, bvec)): bias and bvec must be ({tw.N},), bvec contiguous")
        cat_args = (dummy, dummy, ts[2]) + cat_args[3:]
        row_args, has_row, has_bias = (bias.contiguous() if bias is not None else dummy, bvec), True, bias is not None
    grid = (nc + nk + has_row, nn)
    lut_dequant_kernel[grid](wt, tw.in_scale if tw.in_scale is not None else dummy, tw.plane0, tw.plane1, scale,
                             zero, lut, *t_args, *strides, tw.N, tw.K, tw.Kp, tw.group_size, *cat_args, *row_args,
                             BITS=tw.bits, B0=tw.b0, B1=tw.b1,
                             LUT_MODE=_kernel_mode(tw, cfg.get("LUT_SELECT", False)), HAS_ZERO=tw.zero is not None,
                             HAS_IN_SCALE=tw.in_scale is not None, BLOCK_N=cfg["BLOCK_N"],
                             BLOCK_K=cfg["BLOCK_K"], num_warps=cfg["num_warps"], HAS_TS_LUTS=ts_luts,
                             EVEN_K=_even_k(tw, cfg["BLOCK_K"]), EVEN_N=tw.N % cfg["BLOCK_N"] == 0,
                             HAS_XCAT=cat is not None, CAT_BLOCK=cat_block, ROWS_NK=rows_nk,
                             HAS_BIAS_ROW=has_row, HAS_BIAS=has_bias)
    return wt


def _cublas(x2, wt, bias, out_dtype):
    y = torch.addmm(bias.to(x2.dtype), x2, wt) if bias is not None else torch.mm(x2, wt)
    return y if y.dtype == out_dtype else y.to(out_dtype)


def _dequant_then_cublas(cfg, x2, tw, bias, out_dtype, ts=None):
    return _cublas(x2, dequantize_t(tw, x2.dtype, cfg, ts, rows_nk=True), bias, out_dtype)


def _dequant_then_cublas_bias_row(cfg, x2, tw, bias, out_dtype, ts):
    """One timestep with a bias table: the dequant launch also gathers the bucket's row (plus the
    bias) into an N-vector for cuBLAS's bias epilogue; torch's searchsorted + index_select (+ add)
    were two or three more launches ahead of the GEMM."""
    bvec = torch.empty(tw.N, device=x2.device, dtype=x2.dtype)
    wt = dequantize_t(tw, x2.dtype, cfg, ts, rows_nk=True, bias_row=(bias, bvec))
    return _cublas(x2, wt, bvec, out_dtype)


def _dequant_then_cublas_ts_rows(cfg, x2, tw, bias, out_dtype, ts):
    """Per-row timestep bias on the cuBLAS path: [x, onehot(bucket)] @ [W^T; bias table], so the
    bias rows join the GEMM's fp32 sum; the dequant launch writes both extensions. The one-hot block
    is 64 wide: cuBLAS at K + 8 ran 2.8 µs slower than at K, at K + 64 0.5 µs (M = 256,
    (4096, 12288), H200 probe). In all +2.6% at M = 256 there (+8.5% on (4096, 4096), where the copy
    of x weighs more against a 32 µs call), against +5.9% for the pass over y (2 M N elements) it
    replaced and +5.3% with the copy in a launch of its own."""
    M, K = x2.shape
    T, N = ts[2].shape
    tp = -(-T // 64) * 64
    wt = torch.empty((K + tp, N), device=x2.device, dtype=x2.dtype)
    xa = torch.empty((M, K + tp), device=x2.device, dtype=x2.dtype)
    dequantize_t(tw, x2.dtype, cfg, ts, out=wt, cat=(x2, xa, tp))
    return _cublas(xa, wt, bias, out_dtype)


def _ts_form(ts, tw: TritonWeight) -> str:
    """Which timestep form a call runs, for the tuner's key: the forms run different kernels on the
    large-M path (per-row bias: the dequant launch also writes [x, onehot] and W^T's extra rows, for
    a GEMM in the other orientation; one t: a bias row in the dequant launch), and a config tuned
    on the plain call was measured 1.1-9.4% slower on them (H200, M = 256, the tuner's pick moving
    between two near-equal dequant tiles from run to run)."""
    if ts is None:
        return ""
    per_row = ts[0].numel() > 1
    form = ("tsrow" if per_row else "tsone") if ts[2] is not None else ""
    return form + ("+luts" if tw.ts_luts is not None else "")


def _tune(key: str, path: str, cands: List[dict], x2, tw, bias, out_dtype, ts=None) -> dict:
    if len(cands) == 1 or _INTERPRET or os.environ.get("QUANTDLLM_TRITON_TUNE", "1") == "0" or not x2.is_cuda \
            or torch.cuda.is_current_stream_capturing():
        return cands[0]
    def time_cfg(cfg):
        return median_ms(lambda: _launch(path, cfg, x2, tw, bias, out_dtype, ts))[0]

    times = []
    for cfg in cands:
        try:
            times.append((time_cfg(cfg), cfg))
        except Exception:  # a config that does not compile or fit (shared memory) is skipped
            continue
    return _settle(times, time_cfg) if times else cands[0]


def _settle(times: List[Tuple[float, dict]], time_cfg, margin: float = 0.05, rounds: int = 3) -> dict:
    """The first pass's winner, unless other candidates came within ``margin`` of it: those are
    re-timed in ``rounds`` interleaved rounds and the lowest median wins. One pass's ranking of
    near-equal candidates flipped between runs (H200, M = 256 dequant tiles 1-2 µs apart), and the
    pick then moved a timestep path's cost by 3-9%."""
    times = sorted(times, key=lambda tc: tc[0])
    close = [cfg for t, cfg in times if t <= times[0][0] * (1 + margin)][:4]
    if len(close) == 1:
        return close[0]
    runs = [[] for _ in close]
    for _ in range(rounds):
        for i, cfg in enumerate(close):
            runs[i].append(time_cfg(cfg))
    med = [sorted(r)[len(r) // 2] for r in runs]
    return close[min(range(len(close)), key=med.__getitem__)]


def triton_lut_matmul(x2: torch.Tensor, tw: TritonWeight, bias: Optional[torch.Tensor],
                      out_dtype: torch.dtype, config: Optional[dict] = None, ts=None) -> torch.Tensor:
    """``x2 (M, K)`` contiguous fp16/bf16 -> ``(M, N)`` in ``out_dtype``; ``ts`` as in ``_launch``.
    Each timestep form is tuned on its own (``_ts_form``), with its tables in the timed launch."""
    M = x2.shape[0]
    path = "gemv" if M <= GEMV_MAX_M else "gemm"
    if config is not None and not _legal_bk(config["BLOCK_K"], tw):
        raise ValueError(f"config BLOCK_K={config['BLOCK_K']} does not fit this weight: a K tile must hold "
                         f"whole packed words ({tw.bits}-bit) and stay inside one group (group_size "
                         f"{tw.group_size})")
    if config is None:
        form = _ts_form(ts, tw)
        key = _key(path, M, tw, x2.dtype) + (f"|{form}" if form else "")
        config = _TUNED.get(key)
        if config is None:
            with _lock:
                config = _TUNED.get(key)
                if config is None:
                    config = _tune(key, path, _candidates(path, M, tw), x2, tw, bias, out_dtype, ts)
                    _TUNED[key] = config
    return _launch(path, config, x2, tw, bias, out_dtype, ts)


def candidate_configs(M: int, tw: TritonWeight) -> Tuple[str, List[dict]]:
    path = "gemv" if M <= GEMV_MAX_M else "gemm"
    return path, _candidates(path, M, tw)


def save_tuned_configs(path: str) -> None:
    """Write every tuned (key -> config) choice of this process to ``path`` (JSON)."""
    with open(path, "w") as fh:
        json.dump({"triton": triton.__version__, "device": torch.cuda.get_device_name() if torch.cuda.is_available()
                   else "cpu", "configs": _TUNED}, fh, indent=1, sort_keys=True)


def load_tuned_configs(path: str) -> int:
    """Load choices saved by :func:`save_tuned_configs`; returns how many were read."""
    with open(path) as fh:
        data = json.load(fh)
    cfgs = data.get("configs") if isinstance(data, dict) else None
    if not isinstance(cfgs, dict):
        raise ValueError(f"{path}: not a quantdllm Triton config file")
    _TUNED.update(cfgs)
    return len(cfgs)


if os.environ.get("QUANTDLLM_TRITON_CONFIGS"):
    load_tuned_configs(os.environ["QUANTDLLM_TRITON_CONFIGS"])
