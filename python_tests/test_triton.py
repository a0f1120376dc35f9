"""Triton backend vs the reference. On a CPU machine these run under TRITON_INTERPRET=1 at small
shapes (conftest sets it); tests marked ``gpu`` run real shapes on a GPU."""
import json

import pytest
import torch

from quantdllm_kernels import QuantLinear, dequantize, lut_matmul, quantize_weight
from quantdllm_kernels.testing import (KERNEL_TEST_FORMATS, exact_matmul, kernel_tolerance, random_mixed_qweight,
                                       random_qweight, rel_error)

triton = pytest.importorskip("triton")
from quantdllm_kernels import available_backends  # noqa: E402

pytestmark = pytest.mark.skipif("triton" not in available_backends(), reason="triton backend unavailable")
DEV = "cuda" if torch.cuda.is_available() else "cpu"
FORMATS = KERNEL_TEST_FORMATS


tol, exact = kernel_tolerance, exact_matmul


def _affine_codebook(qw):
    # random_qweight's shared codebook is jittered; make the first format truly affine (0..2^b-1)
    E = 1 << qw.bits
    return qw._replace(codebook=torch.arange(E, dtype=qw.lut_dtype, device=qw.device))


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("fmt", range(len(FORMATS)))
@pytest.mark.parametrize("group_size", [32, 64, 128, None])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_matches_reference(bits, fmt, group_size, dtype, gen):
    kind, extra = FORMATS[fmt]
    N, K = 40, 256
    qw = random_qweight(N, K, bits=bits, lut_kind=kind, group_size=group_size, lut_dtype=dtype,
                        in_scale=(fmt % 2 == 0), generator=gen, **extra)
    if fmt == 0:
        qw = _affine_codebook(qw)
    qw = qw.to(DEV)
    bias = torch.randn(N, generator=gen).to(dtype).to(DEV)
    M = [1, 3, 17, 33][(bits + fmt + (group_size or 0)) % 4]
    x = torch.randn(M, K, generator=gen).to(dtype).to(DEV)
    y = lut_matmul(x, qw, bias if bits != 3 else None, backend="triton")
    assert y.dtype == dtype and y.shape == (M, N)
    assert rel_error(y, exact(x, qw, bias if bits != 3 else None)) <= tol(dtype, K)


@pytest.mark.parametrize("M", [1, 2, 4, 5, 33, 257])
def test_odd_shapes(M, gen):
    N, K = 77, 96  # N not a multiple of any block; K not a multiple of 64
    qw = random_qweight(N, K, bits=3, lut_kind="table", group_size=32, generator=gen).to(DEV)
    x = torch.randn(2, M, K, generator=gen).half().to(DEV)
    y = lut_matmul(x, qw, backend="triton")
    assert y.shape == (2, M, N)
    assert rel_error(y, exact(x, qw)) <= tol(torch.float16, K)


def test_per_row_group_unaligned_k(gen):
    N, K = 24, 80  # one group per row; K not a multiple of 32 (the layout pads)
    qw = random_qweight(N, K, bits=4, lut_kind="binary", group_size=None, generator=gen).to(DEV)
    for M in (1, 6):
        x = torch.randn(M, K, generator=gen).half().to(DEV)
        assert rel_error(lut_matmul(x, qw, backend="triton"), exact(x, qw)) <= tol(torch.float16, K)


def test_mixed_precision_segments(gen):
    mq = random_mixed_qweight(48, widths=((1, 64), (2, 128), (3, 64)), generator=gen).to(DEV)
    bias = torch.randn(48, generator=gen).half().to(DEV)
    for M in (1, 9):
        x = torch.randn(M, mq.in_features, generator=gen).half().to(DEV)
        y = lut_matmul(x, mq, bias, backend="triton")
        assert rel_error(y, exact(x, mq, bias)) <= tol(torch.float16, mq.in_features)


def test_quantlinear_and_repack_after_change(gen):
    lin = torch.nn.Linear(128, 64).half().to(DEV)
    q = QuantLinear.from_linear(lin, bits=4, group_size=64, method="rtn", backend="triton")
    x = torch.randn(3, 128, generator=gen).half().to(DEV)
    y1 = q(x)
    assert rel_error(y1, exact(x, q.qweight, q.bias)) <= tol(torch.float16, 128)
    with torch.no_grad():
        q.qweight_scale.mul_(2)  # in-place change must invalidate the packed copy
    y2 = q(x)
    assert rel_error(y2, exact(x, q.qweight, q.bias)) <= tol(torch.float16, 128)


def test_rejects_fp32_and_falls_back(gen):
    from quantdllm_kernels import BackendUnavailableError
    qw = random_qweight(8, 64, bits=2, group_size=32, generator=gen).to(DEV)
    x = torch.randn(2, 64, generator=gen).to(DEV)
    with pytest.raises(BackendUnavailableError, match="float16 or bfloat16"):
        lut_matmul(x, qw, backend="triton")
    assert lut_matmul(x, qw).dtype == torch.float32  # automatic choice falls back


def test_tuned_config_round_trip(tmp_path, gen):
    from quantdllm_kernels.triton import ops
    qw = random_qweight(32, 64, bits=2, group_size=32, generator=gen).to(DEV)
    lut_matmul(torch.randn(1, 64, generator=gen).half().to(DEV), qw, backend="triton")
    p = tmp_path / "cfg.json"
    ops.save_tuned_configs(str(p))
    saved = json.load(open(p))["configs"]
    assert saved and all(isinstance(v, dict) for v in saved.values())
    ops._TUNED.clear()
    assert ops.load_tuned_configs(str(p)) == len(saved)
    with pytest.raises(ValueError, match="not a quantdllm Triton config"):
        (tmp_path / "bad.json").write_text("[]")
        ops.load_tuned_configs(str(tmp_path / "bad.json"))


@pytest.mark.gpu
@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("method", ["rtn", "kmeans", "binary"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gpu_real_shapes(bits, method, dtype, gen):
    N, K = 4096 + 64, 4096
    W = torch.randn(N, K, generator=gen, device="cpu").to("cuda") * 0.02
    qw = quantize_weight(W, bits=bits, group_size=128, method=method, lut_dtype=dtype)
    for M in (1, 3, 16, 33, 257, 1024):
        x = torch.randn(M, K, device="cuda", dtype=dtype)
        y = lut_matmul(x, qw, backend="triton")
        assert rel_error(y, exact(x, qw)) <= tol(dtype, K), (M,)


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", range(len(FORMATS)))
@pytest.mark.parametrize("M", [1, 33, 300])
@pytest.mark.parametrize("group_size", [32, 128])
def test_gpu_every_tuner_candidate(fmt, M, group_size, gen):
    """Every config the tuner may pick is right, not only the one it picks here: Triton 3.6
    miscompiled the binary 3-bit GEMM when pipelined (2026-11-29, H200), which a test of the
    chosen config alone caught only for group size 32."""
    from quantdllm_kernels.backends.triton_backend import pack_for
    from quantdllm_kernels.triton.ops import candidate_configs, triton_lut_matmul
    kind, extra = FORMATS[fmt]
    N, K = 200, 512
    qw = random_qweight(N, K, bits=3, lut_kind=kind, group_size=group_size, in_scale=fmt == 1, generator=gen,
                        **extra)
    qw = (_affine_codebook(qw) if fmt == 0 else qw).to(DEV)
    x = torch.randn(M, K, generator=gen).half().to(DEV)
    ref = exact(x, qw)
    for cfg in candidate_configs(M, pack_for(qw))[1]:
        y = triton_lut_matmul(x, pack_for(qw), None, torch.float16, config=cfg)
        assert rel_error(y, ref) <= tol(torch.float16, K), cfg


@pytest.mark.parametrize("fmt", range(len(FORMATS)))
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_dequant_then_matmul_path(fmt, bits, gen):
    """The large-M path (W^T dequantized once by a Triton kernel, then cuBLAS / torch.mm)."""
    from quantdllm_kernels.backends.triton_backend import pack_for
    from quantdllm_kernels.triton.ops import dequantize_t, triton_lut_matmul
    kind, extra = FORMATS[fmt]
    qw = random_qweight(72, 160, bits=bits, lut_kind=kind, group_size=32, in_scale=True, generator=gen, **extra)
    qw = (_affine_codebook(qw) if fmt == 0 else qw).to(DEV)
    tw = pack_for(qw)
    ref_w = dequantize(qw, torch.float64).T
    for dt, rtol in ((torch.float32, 1e-6), (torch.float16, 2e-3)):
        for rows_nk in (False, True):  # W^T stored as (K, N), or as W (N, K) returned transposed
            wt = dequantize_t(tw, dt, dict(BLOCK_N=32, BLOCK_K=32, num_warps=1), rows_nk=rows_nk)
            assert wt.shape == (160, 72) and wt.is_contiguous() != rows_nk and wt.t().is_contiguous() == rows_nk
            assert torch.allclose(wt.double(), ref_w, rtol=rtol, atol=rtol * 1e-1), (dt, rows_nk)
    x = torch.randn(70, 160, generator=gen).half().to(DEV)
    bias = torch.randn(72, generator=gen).half().to(DEV)
    cfg = dict(DEQUANT=1, BLOCK_N=32, BLOCK_K=32, SPLIT_K=1, num_warps=1, num_stages=1)
    y = triton_lut_matmul(x, tw, bias, torch.float16, config=cfg)
    assert rel_error(y, exact(x, qw, bias)) <= tol(torch.float16, 160)


def test_bad_inputs_named_before_launch(gen):
    qw = random_qweight(16, 64, bits=2, group_size=32, generator=gen).to(DEV)
    x = torch.randn(2, 64, generator=gen).half().to(DEV)
    with pytest.raises(ValueError, match="bias must have shape"):
        lut_matmul(x, qw, torch.randn(15).half().to(DEV), backend="triton")
    with pytest.raises(TypeError, match="bias must have dtype"):
        lut_matmul(x, qw, torch.ones(16, dtype=torch.int32, device=DEV), backend="triton")
    with pytest.raises(ValueError, match="x must have shape"):
        lut_matmul(torch.randn(2, 63, generator=gen).half().to(DEV), qw, backend="triton")
    if DEV == "cuda":
        from quantdllm_kernels import BackendUnavailableError
        with pytest.raises(BackendUnavailableError, match="x is on cpu"):
            lut_matmul(x.cpu(), qw, backend="triton")


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("word_rows", [False, True])
def test_affine_gemv_both_forms(bits, word_rows, gen):
    """The affine GEMV's tile form and word-row form (the tuner measures both) agree with the reference."""
    from quantdllm_kernels.backends.triton_backend import pack_for
    from quantdllm_kernels.triton.ops import triton_lut_matmul
    qw = _affine_codebook(random_qweight(40, 256, bits=bits, group_size=64, in_scale=True, generator=gen)).to(DEV)
    assert pack_for(qw).lut_mode == 0
    x = torch.randn(1, 256, generator=gen).half().to(DEV)
    cfg = dict(BLOCK_N=32, BLOCK_K=32, SPLIT_K=2, num_warps=1, num_stages=1, WORD_ROWS=word_rows)
    y = triton_lut_matmul(x, pack_for(qw), None, torch.float16, config=cfg)
    assert rel_error(y, exact(x, qw)) <= tol(torch.float16, 256)


# one small explicit config per kernel path (GEMV at M = 1, fused GEMM, dequant + matmul)
_PATH_CFGS = {"gemv": dict(BLOCK_N=32, BLOCK_K=32, SPLIT_K=2, num_warps=1, num_stages=1),
              "gemm": dict(BLOCK_M=16, BLOCK_N=32, BLOCK_K=32, SPLIT_K=1, num_warps=1, num_stages=1),
              "dequant": dict(DEQUANT=1, BLOCK_N=32, BLOCK_K=32, SPLIT_K=1, num_warps=1, num_stages=1)}


@pytest.mark.parametrize("fmt", range(len(FORMATS)))
@pytest.mark.parametrize("path", ["gemv", "gemm", "dequant"])
def test_whole_tiles_drop_their_masks(fmt, path, gen):
    """N and K multiples of the tile (EVEN_N / EVEN_K: the kernels drop their masks) on every path
    and LUT format, vs the reference; the odd shapes elsewhere keep the masked forms covered."""
    from quantdllm_kernels.backends.triton_backend import pack_for
    from quantdllm_kernels.triton.ops import _even_k, triton_lut_matmul
    kind, extra = FORMATS[fmt]
    N, K = 64, 128
    qw = random_qweight(N, K, bits=[2, 3, 4][fmt % 3], lut_kind=kind, group_size=64, in_scale=fmt % 2 == 0,
                        generator=gen, **extra)
    qw = (_affine_codebook(qw) if fmt == 0 else qw).to(DEV)
    cfg = _PATH_CFGS[path]
    assert _even_k(pack_for(qw), 32) and N % 32 == 0
    x = torch.randn(1 if path == "gemv" else 5, K, generator=gen).half().to(DEV)
    bias = torch.randn(N, generator=gen).half().to(DEV)
    y = triton_lut_matmul(x, pack_for(qw), bias, torch.float16, config=cfg)
    assert rel_error(y, exact(x, qw, bias)) <= tol(torch.float16, K)


@pytest.mark.parametrize("bits", [1, 2, 3])
@pytest.mark.parametrize("path", ["gemv", "gemm", "dequant"])
def test_table_select_tree_matches_the_gather(bits, path, gen):
    """LUT_SELECT reads a table by a select tree on the code bits (the tuner offers it beside the
    gather at <= 3 bits); same result as the reference on every path. A 4-bit or non-table weight
    is refused by name."""
    from quantdllm_kernels.backends.triton_backend import pack_for
    from quantdllm_kernels.triton.ops import triton_lut_matmul
    N, K = 40, 256
    qw = random_qweight(N, K, bits=bits, lut_kind="table", group_size=64, generator=gen).to(DEV)
    cfg = _PATH_CFGS[path]
    x = torch.randn(1 if path == "gemv" else 5, K, generator=gen).half().to(DEV)
    y = triton_lut_matmul(x, pack_for(qw), None, torch.float16, config=dict(cfg, LUT_SELECT=True))
    assert rel_error(y, exact(x, qw)) <= tol(torch.float16, K)
    for bad in (random_qweight(N, K, bits=4, lut_kind="table", group_size=64, generator=gen),
                random_qweight(N, K, bits=2, lut_kind="scaled", group_size=64, generator=gen)):
        with pytest.raises(ValueError, match="LUT_SELECT needs a table weight"):
            triton_lut_matmul(x, pack_for(bad.to(DEV)), None, torch.float16, config=dict(cfg, LUT_SELECT=True))


def test_config_must_hold_whole_words(gen):
    """3-bit's 1-bit plane packs 32 codes a word: a 16-wide K tile is refused, not run wrong."""
    from quantdllm_kernels.backends.triton_backend import pack_for
    from quantdllm_kernels.triton.ops import candidate_configs, triton_lut_matmul
    qw = random_qweight(16, 64, bits=3, group_size=32, generator=gen).to(DEV)
    x = torch.randn(1, 64, generator=gen).half().to(DEV)
    with pytest.raises(ValueError, match="BLOCK_K=16 does not fit"):
        triton_lut_matmul(x, pack_for(qw), None, torch.float16,
                          config=dict(BLOCK_N=32, BLOCK_K=16, SPLIT_K=1, num_warps=1, num_stages=1))
    for M in (1, 40, 300):
        assert all(c["BLOCK_K"] % 32 == 0 for c in candidate_configs(M, pack_for(qw))[1])


@pytest.mark.parametrize("cfg", [
    None,                                                                      # the default path for M
    dict(BLOCK_M=16, BLOCK_N=32, BLOCK_K=32, SPLIT_K=2, num_warps=1, num_stages=1),   # split-K: host epilogue
    dict(DEQUANT=1, BLOCK_N=32, BLOCK_K=32, SPLIT_K=1, num_warps=1, num_stages=1),    # dequant + mm
])
@pytest.mark.parametrize("M", [1, 7])
@pytest.mark.parametrize("per_row", [False, True])
def test_timestep_bias_fused(cfg, M, per_row, gen):
    """Timestep bias tables in the Triton epilogue: bucket of each row's t computed in the kernel,
    edges (t equal to a boundary) included; vs the reference."""
    from quantdllm_kernels import TimestepTables
    from quantdllm_kernels.backends.triton_backend import pack_for
    from quantdllm_kernels.reference import lut_matmul_reference
    from quantdllm_kernels.triton.ops import triton_lut_matmul
    if cfg is not None and M == 1 and cfg.get("SPLIT_K", 1) > 1:
        cfg = dict(BLOCK_N=32, BLOCK_K=32, SPLIT_K=2, num_warps=1, num_stages=1)   # the GEMV's split-K
    qw = random_qweight(40, 128, bits=3, lut_kind="scaled", group_size=32, generator=gen)
    tt = TimestepTables(torch.tensor([0.25, 0.5, 0.75]), bias=torch.randn(4, 40, generator=gen).half())
    qw = qw.with_timestep_tables(tt).to(DEV)
    x = torch.randn(M, 128, generator=gen).half().to(DEV)
    bias = torch.randn(40, generator=gen).half().to(DEV)
    t = (torch.tensor([0.0, 0.25, 0.5, 0.74, 0.75, 0.99, 1.0])[:M] if per_row else torch.tensor([0.5])).to(DEV)
    ts = (t.float(), tt.boundaries.to(DEV), tt.bias.to(DEV))
    y = triton_lut_matmul(x, pack_for(qw), bias, torch.float16, config=cfg, ts=ts)
    ref = lut_matmul_reference(x.float(), qw, bias.float(), timestep=t if per_row else 0.5)
    assert rel_error(y, ref) <= tol(torch.float16, 128)
    # through the public entry point as well
    y2 = lut_matmul(x, qw, bias, timestep=t if per_row else 0.5, backend="triton")
    assert rel_error(y2, ref) <= tol(torch.float16, 128)


def test_tuner_settles_near_ties_by_interleaved_rounds():
    """Candidates within 5% of the first pass's best are re-timed in rounds and the lowest median
    wins; a clear winner is taken without re-timing."""
    from quantdllm_kernels.triton.ops import _settle
    a, b, c = dict(name="a"), dict(name="b"), dict(name="c")
    later = {"a": iter([10.5, 10.6, 10.4]), "b": iter([10.0, 10.1, 9.9])}
    calls = []

    def time_cfg(cfg):
        calls.append(cfg["name"])
        return next(later[cfg["name"]])
    assert _settle([(10.0, a), (10.3, b), (12.0, c)], time_cfg) is b
    assert calls == ["a", "b"] * 3   # interleaved, c (20% behind) never re-timed
    calls.clear()
    assert _settle([(10.0, a), (11.0, b)], time_cfg) is a and calls == []


def test_each_timestep_form_is_tuned_under_its_own_key(gen):
    """The tuner keys a call by its timestep form (plain, per-row bias, one t's bias, LUT sets): the
    forms run different large-M kernels, so a config tuned on one is not reused for another."""
    from quantdllm_kernels import TimestepTables
    from quantdllm_kernels.backends.triton_backend import pack_for
    from quantdllm_kernels.triton import ops
    qw = random_qweight(40, 128, bits=4, group_size=32, lut_dtype=torch.float16, generator=gen)
    tt = TimestepTables(torch.tensor([0.5]), bias=torch.randn(2, 40, generator=gen).half())
    qw = qw.with_timestep_tables(tt).to(DEV)
    tw = pack_for(qw)
    x = torch.randn(3, 128, generator=gen).half().to(DEV)
    b, tb = tt.boundaries.float().to(DEV), tt.bias.to(DEV)
    base = ops._key("gemm", 3, tw, torch.float16)
    ops._TUNED.clear()
    ops.triton_lut_matmul(x, tw, None, torch.float16)
    ops.triton_lut_matmul(x, tw, None, torch.float16, ts=(torch.rand(3).to(DEV), b, tb))
    ops.triton_lut_matmul(x, tw, None, torch.float16, ts=(torch.rand(1).to(DEV), b, tb))
    assert set(ops._TUNED) == {base, base + "|tsrow", base + "|tsone"}


@pytest.mark.parametrize("T", [3, 8, 9])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("with_bias", [False, True])
def test_dequant_path_adds_timestep_rows_inside_the_gemm(T, dtype, with_bias, gen):
    """Per-row timestep bias on the dequant + cuBLAS path: [x, onehot] @ [W^T; table], with the
    table padded with zero rows to a multiple of 64; vs the reference."""
    from quantdllm_kernels import TimestepTables
    from quantdllm_kernels.backends.triton_backend import pack_for
    from quantdllm_kernels.reference import lut_matmul_reference
    from quantdllm_kernels.triton.ops import triton_lut_matmul
    N, K, M = 40, 128, 9
    qw = random_qweight(N, K, bits=3, group_size=32, lut_dtype=dtype, in_scale=True, generator=gen)
    tt = TimestepTables(torch.linspace(0, 1, T + 1)[1:-1], bias=torch.randn(T, N, generator=gen).to(dtype))
    qw = qw.with_timestep_tables(tt).to(DEV)
    bias = torch.randn(N, generator=gen).to(dtype).to(DEV) if with_bias else None
    x = torch.randn(M, K, generator=gen).to(dtype).to(DEV)
    t = torch.rand(M, generator=gen).to(DEV)
    cfg = dict(DEQUANT=1, BLOCK_N=32, BLOCK_K=32, SPLIT_K=1, num_warps=1, num_stages=1)
    y = triton_lut_matmul(x, pack_for(qw), bias, dtype, config=cfg,
                          ts=(t, tt.boundaries.float().to(DEV), tt.bias.to(DEV)))
    ref = lut_matmul_reference(x.float(), qw, None if bias is None else bias.float(), timestep=t)
    assert y.dtype == dtype and rel_error(y, ref) <= tol(dtype, K)


@pytest.mark.parametrize("M", [1, 5, 70])
def test_dequant_launch_writes_x_onehot_and_the_table_rows(M, gen):
    """The extra programs of the dequant launch (HAS_XCAT), ahead of its K tiles: xa = [x, onehot(bucket)],
    and W^T's rows past K are the bias table then zeros, whatever the buffers held before (NaN
    here); W^T's first K rows are the plain dequant's. M = 70 needs several program rows of them."""
    from quantdllm_kernels.backends.triton_backend import pack_for
    from quantdllm_kernels.triton.ops import dequantize_t
    K, N, T, tp = 96, 40, 3, 64
    qw = random_qweight(N, K, bits=4, group_size=32, lut_dtype=torch.float16, generator=gen).to(DEV)
    tw = pack_for(qw)
    x = torch.randn(M, K, generator=gen).half().to(DEV)
    t = torch.rand(M, generator=gen).to(DEV)
    t[0] = 0.5   # on a boundary: searchsorted right puts it above
    bounds = torch.tensor([0.25, 0.5]).to(DEV)
    tb = torch.randn(T, N, generator=gen).half().to(DEV)
    xa = torch.full((M, K + tp), float("nan"), dtype=torch.float16, device=DEV)
    wt = torch.full((K + tp, N), float("nan"), dtype=torch.float16, device=DEV)
    cfg = dict(BLOCK_N=32, BLOCK_K=32, num_warps=1)
    dequantize_t(tw, torch.float16, cfg, (t, bounds, tb), out=wt, cat=(x, xa, tp))
    hot = torch.zeros(M, tp, dtype=torch.float16, device=DEV)
    hot[torch.arange(M), torch.searchsorted(bounds, t, right=True)] = 1
    assert torch.equal(xa, torch.cat([x, hot], 1))
    assert torch.equal(wt[K:K + T], tb) and torch.equal(wt[K + T:], torch.zeros_like(wt[K + T:]))
    assert torch.equal(wt[:K], dequantize_t(tw, torch.float16, cfg))
    with pytest.raises(ValueError, match="K \\+ tp"):
        dequantize_t(tw, torch.float16, cfg, (t, bounds, tb), out=wt[:K + 1], cat=(x, xa, tp))


@pytest.mark.parametrize("t", [0.0, 0.25, 0.6, 1.0])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_dequant_launch_writes_one_timesteps_bias_row(t, with_bias, dtype, gen):
    """One timestep (HAS_BIAS_ROW): the dequant launch's last grid row writes table[bucket(t)] + bias
    into an N-vector (N = 40: a partial column tile), t on a boundary included; W is the plain
    dequant's; bad buffers and per-row t are rejected."""
    from quantdllm_kernels.backends.triton_backend import pack_for
    from quantdllm_kernels.triton.ops import dequantize_t
    K, N, T = 96, 40, 5
    qw = random_qweight(N, K, bits=4, group_size=32, lut_dtype=dtype, generator=gen).to(DEV)
    tw = pack_for(qw)
    bounds = torch.tensor([0.25, 0.5, 0.75, 0.9]).to(DEV)
    tb = torch.randn(T, N, generator=gen).to(dtype).to(DEV)
    bias = torch.randn(N, generator=gen).to(dtype).to(DEV) if with_bias else None
    tt = torch.tensor([t]).to(DEV)
    bvec = torch.full((N,), float("nan"), dtype=dtype, device=DEV)
    cfg = dict(BLOCK_N=32, BLOCK_K=32, num_warps=1)
    w = dequantize_t(tw, dtype, cfg, (tt, bounds, tb), rows_nk=True, bias_row=(bias, bvec))
    row = tb[torch.searchsorted(bounds, tt, right=True)].reshape(-1).float()
    want = row + (bias.float() if with_bias else 0)
    # one rounding to dtype (the interpreter's fp32 -> bf16 truncates, the GPU's rounds)
    assert torch.allclose(bvec.float(), want, rtol=2 ** -7 if dtype == torch.bfloat16 else 2 ** -10, atol=0)
    assert torch.equal(w, dequantize_t(tw, dtype, cfg, rows_nk=True))
    with pytest.raises(ValueError, match="bvec"):
        dequantize_t(tw, dtype, cfg, (tt, bounds, tb), rows_nk=True, bias_row=(bias, bvec[:-1]))
    with pytest.raises(ValueError, match="one timestep"):
        dequantize_t(tw, dtype, cfg, (tt.repeat(3), bounds, tb), rows_nk=True, bias_row=(bias, bvec))


_TS_CFGS = [
    None,                                                                              # default path for M
    dict(BLOCK_M=16, BLOCK_N=32, BLOCK_K=32, SPLIT_K=2, num_warps=1, num_stages=1),   # GEMM, split-K
    dict(DEQUANT=1, BLOCK_N=32, BLOCK_K=32, SPLIT_K=1, num_warps=1, num_stages=1),    # dequant + mm
]


@pytest.mark.parametrize("fmt", range(len(FORMATS)))
@pytest.mark.parametrize("fields", ["all", "first"])
@pytest.mark.parametrize("cfg", range(len(_TS_CFGS)))
def test_timestep_lut_sets_fused(fmt, fields, cfg, gen):
    """Per-bucket LUT sets in the Triton kernels: a scalar t (one set for the launch) and per-row t
    whose rows span four buckets inside one tile (the GEMM takes them bucket by bucket; the dequant
    path hands them to the GEMM), every LUT kind, every slot stacked or shared; vs the reference."""
    from quantdllm_kernels import TimestepTables
    from quantdllm_kernels.backends.triton_backend import pack_for
    from quantdllm_kernels.reference import lut_matmul_reference
    from quantdllm_kernels.testing import random_lut_sets
    from quantdllm_kernels.triton.ops import triton_lut_matmul
    kind, extra = FORMATS[fmt]
    N, K, T = 40, 128, 4
    qw = random_qweight(N, K, bits=[2, 3, 4][fmt % 3], lut_kind=kind, group_size=32, in_scale=fmt == 1,
                        generator=gen, **extra)
    if fmt == 0:
        qw = _affine_codebook(qw)   # bucket codebooks scaled away from 0..E-1: the affine mode is left
    names = None if fields == "all" else [{"scaled": "scale", "table": "table", "binary": "mu"}[kind]]
    ts_bias = torch.randn(T, N, generator=gen).half() if fmt % 2 else None
    tt = TimestepTables(torch.tensor([0.25, 0.5, 0.75]), bias=ts_bias,
                        luts=random_lut_sets(qw, T, names, generator=gen))
    qw = qw.with_timestep_tables(tt).to(DEV)
    bias = torch.randn(N, generator=gen).half().to(DEV)
    for M in (1, 7):
        x = torch.randn(M, K, generator=gen).half().to(DEV)
        c = _TS_CFGS[cfg]
        if c is not None and M == 1 and not c.get("DEQUANT"):
            c = dict(BLOCK_N=32, BLOCK_K=32, SPLIT_K=2, num_warps=1, num_stages=1)   # the GEMV's split-K
        for t in (torch.tensor([0.6]), torch.tensor([0.0, 0.25, 0.5, 0.74, 0.75, 0.99, 1.0])[:M]):
            ts = (t.float().to(DEV), tt.boundaries.to(DEV), tt.bias.to(DEV) if tt.bias is not None else None)
            y = triton_lut_matmul(x, pack_for(qw), bias, torch.float16, config=c, ts=ts)
            t_ref = t.to(DEV) if t.numel() > 1 else float(t[0])
            ref = lut_matmul_reference(x.float(), qw, bias.float(), timestep=t_ref)
            assert rel_error(y, ref) <= tol(torch.float16, K), (M, t)
        # without a timestep the weight's own LUTs serve
        assert rel_error(triton_lut_matmul(x, pack_for(qw), None, torch.float16, config=c),
                         lut_matmul_reference(x.float(), qw)) <= tol(torch.float16, K)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_timestep_lut_sets_public_entry_and_mixed(dtype, gen):
    """lut_matmul(..., backend="triton") with LUT sets, plain and inside a mixed-precision layer."""
    from quantdllm_kernels import MixedQuantizedWeight, TimestepTables
    from quantdllm_kernels.reference import lut_matmul_reference
    from quantdllm_kernels.testing import random_lut_sets
    bounds = torch.tensor([0.3, 0.7])
    qw = random_qweight(24, 64, bits=2, lut_kind="table", group_size=32, lut_dtype=dtype, generator=gen)
    qw = qw.with_timestep_tables(TimestepTables(bounds, luts=random_lut_sets(qw, 3, generator=gen))).to(DEV)
    mq = random_mixed_qweight(24, widths=((2, 64), (3, 32)), lut_dtype=dtype, generator=gen)
    s0 = mq.segments[0]
    s0 = s0.with_timestep_tables(TimestepTables(bounds, bias=torch.randn(3, 24, generator=gen).to(dtype),
                                                luts=random_lut_sets(s0, 3, generator=gen)))
    mq = MixedQuantizedWeight(mq.perm, [s0, mq.segments[1]]).to(DEV)
    for w in (qw, mq):
        x = torch.randn(2, 5, w.in_features, generator=gen).to(dtype).to(DEV)
        for t in (0.5, torch.tensor([0.1, 0.9]).to(DEV), torch.rand(2, 5, generator=gen).to(DEV)):
            y = lut_matmul(x, w, timestep=t, backend="triton")
            assert rel_error(y, lut_matmul_reference(x.float(), w, timestep=t)) <= tol(dtype, w.in_features)

@pytest.mark.gpu
@pytest.mark.parametrize("M", [1, 4, 96])
def test_gpu_graph_replay_follows_timestep_with_lut_sets(M, gen):
    """CUDA graph captured once, replayed with new x and t (scalar and per row): the Triton kernels
    read t and pick buckets on the device, so the outputs follow t with no re-capture."""
    from quantdllm_kernels import TimestepTables
    from quantdllm_kernels.testing import assert_graph_replay_follows_timestep, random_lut_sets
    K, N, T = 1024, 512, 5
    qw = random_qweight(N, K, bits=4, lut_kind="scaled", group_size=128, generator=gen)
    tt = TimestepTables(torch.tensor([0.1, 0.3, 0.6, 0.9]), bias=torch.randn(T, N, generator=gen).half(),
                        luts=random_lut_sets(qw, T, generator=gen))
    assert_graph_replay_follows_timestep(QuantLinear(qw.with_timestep_tables(tt).to("cuda"), backend="triton"),
                                         M, gen)
