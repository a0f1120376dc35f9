"""The large-M wgmma path (csrc/lut_wgmma_kernel.cuh, sm_90a) vs the exact product: bits x group size x
dtype, odd M (partial token tiles) and N (partial row blocks, N % 8 != 0), K not a multiple of the
super-chunk, in_scale, bias and per-row / one-t timestep bias; routing from lut_matmul; a CUDA
graph replay with a new x and t. GPU (compute capability 9.0) only."""
import pytest
import torch

from quantdllm_kernels import available_backends, lut_matmul
from quantdllm_kernels.testing import (assert_chain_matches, bias_and_timestep_case, chain_weight, exact_matmul,
                                       kernel_tolerance, rel_error, rtn_qweight)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif("cuda" not in available_backends(), reason="CUDA backend not built / no GPU")]

if "cuda" in available_backends():
    from quantdllm_kernels.backends import cuda_backend as cb

    if not cb.wgmma_supported(torch.device("cuda")):
        pytestmark.append(pytest.mark.skip(reason="lut_wgmma needs compute capability 9.0 and a 9.0a build"))


def rtn(N, K, bits, g, dtype, gen, in_scale=False):
    return rtn_qweight(N, K, bits, g, dtype, gen, in_scale=in_scale)


def run_op(x, mw, bias=None, t=None, bounds=None, ts_bias=None):
    return torch.ops.quantdllm.lut_wgmma(x, mw.codes, mw.sz, mw.N, mw.K, mw.bits, mw.group_shift, mw.in_scale,
                                         bias, t, bounds, ts_bias)


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("group_size", [64, 128, None])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("in_scale", [False, True])
def test_matches_reference(bits, group_size, dtype, in_scale, gen):
    N, K = 333, 640  # 3 row blocks, the last partial, N % 8 != 0; 640: not a multiple of the 3-bit super-chunk
    qw = rtn(N, K, bits, group_size, dtype, gen, in_scale=in_scale)
    mw = cb.mma_pack(qw, dtype)
    assert mw is not None
    bias = torch.randn(N, generator=gen).to(dtype).cuda()
    for M in (1, 65, 128, 129, 300):
        x = torch.randn(M, K, generator=gen).to(dtype).cuda()
        y = run_op(x, mw, bias)
        assert y.dtype == dtype and y.shape == (M, N)
        assert rel_error(y, exact_matmul(x, qw, bias)) <= kernel_tolerance(dtype, K), M


@pytest.mark.parametrize("bn", ["64", "128/2", "256", "256/2"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("group_size", [64, 128, None])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_x_as_stored(bits, bn, dtype, group_size, gen, monkeypatch):
    """Codes without in_scale can read x as stored (4-bit: the code words reordered inside each lane
    quad; 2-bit: code bits exchanged inside it; 3-bit: code blocks gathered through shared memory)
    instead of through the pre-pass: both forms, forced by QUANTDLLM_WGMMA_PREPASS = 0 / 1, vs the
    exact product and each other, per tile and K split
    ("BN/slices"), partial tiles (2/3-bit: a partial last super-chunk), bias and a per-row timestep
    bias."""
    # 2/3-bit: K = 1344 ends in a partial super-chunk (groups of 128 need 1408: 3-bit's is partial)
    N, K = 333, 1280 if bits == 4 else 1408 if group_size == 128 else 1344
    qw = rtn(N, K, bits, group_size, dtype, gen)
    mw = cb.mma_pack(qw, dtype)
    bias = torch.randn(N, generator=gen).to(dtype).cuda()
    bounds = torch.tensor([0.25, 0.5, 0.75], device="cuda")
    ts_bias = torch.randn(4, N, generator=gen).to(dtype).cuda()
    tile, _, ks = bn.partition("/")
    monkeypatch.setenv("QUANTDLLM_WGMMA_BN", tile)
    if ks:
        monkeypatch.setenv("QUANTDLLM_WGMMA_KSPLIT", ks)
    for M in (1, 65, 300):
        x = torch.randn(M, K, generator=gen).to(dtype).cuda()
        t = torch.rand(M, generator=gen).cuda()
        want = exact_matmul(x, qw, bias) + ts_bias[torch.searchsorted(bounds, t, right=True)].double()
        y = {}
        for prepass in ("0", "1"):
            monkeypatch.setenv("QUANTDLLM_WGMMA_PREPASS", prepass)
            y[prepass] = run_op(x, mw, bias, t, bounds, ts_bias)
            assert rel_error(y[prepass], want) <= kernel_tolerance(dtype, K), (M, prepass)
        assert rel_error(y["0"], y["1"].double()) <= kernel_tolerance(dtype, K), M


@pytest.mark.parametrize("bn", ["64", "128", "256"])
@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_token_tile(bn, bits, dtype, gen, monkeypatch):
    """QUANTDLLM_WGMMA_BN forces each tile (the plan picks by waves), partial tiles at both ends,
    with in_scale, bias and a per-row timestep bias."""
    N, K = 200, 768
    qw = rtn(N, K, bits, 128, dtype, gen, in_scale=True)
    mw = cb.mma_pack(qw, dtype)
    bias = torch.randn(N, generator=gen).to(dtype).cuda()
    bounds = torch.tensor([0.3, 0.6], device="cuda")
    ts_bias = torch.randn(3, N, generator=gen).to(dtype).cuda()
    monkeypatch.setenv("QUANTDLLM_WGMMA_BN", bn)
    for M in (70, 256, 300):
        x = torch.randn(M, K, generator=gen).to(dtype).cuda()
        t = torch.rand(M, generator=gen).cuda()
        want = exact_matmul(x, qw, bias) + ts_bias[torch.searchsorted(bounds, t, right=True)].double()
        y = run_op(x, mw, bias, t, bounds, ts_bias)
        assert rel_error(y, want) <= kernel_tolerance(dtype, K), M


@pytest.mark.parametrize("ks", ["2", "3", "5"])
@pytest.mark.parametrize("bn", ["64", "128", "256"])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_k_split(ks, bn, bits, gen, monkeypatch):
    """QUANTDLLM_WGMMA_KSPLIT forces K slices, one cluster per tile (20 chunks: slices of 12 + 8,
    8 + 8 + 4, or 4 x 5 -- the last 3-bit super-chunk partial), partial row block and token tile,
    in_scale, bias and per-row timestep bias added once. Two slices sum by bulk copies between the
    slices' shared memories, more by loads over the cluster: M = 65 leaves a last token tile of one
    token (at 64 tokens: one slice receives nothing)."""
    N, K = 333, 1280
    qw = rtn(N, K, bits, 128, torch.float16, gen, in_scale=True)
    mw = cb.mma_pack(qw, torch.float16)
    bias = torch.randn(N, generator=gen).half().cuda()
    bounds = torch.tensor([0.3, 0.6], device="cuda")
    ts_bias = torch.randn(3, N, generator=gen).half().cuda()
    monkeypatch.setenv("QUANTDLLM_WGMMA_BN", bn)
    monkeypatch.setenv("QUANTDLLM_WGMMA_KSPLIT", ks)
    for M in (65, 300):
        x = torch.randn(M, K, generator=gen).half().cuda()
        t = torch.rand(M, generator=gen).cuda()
        want = exact_matmul(x, qw, bias) + ts_bias[torch.searchsorted(bounds, t, right=True)].double()
        y = run_op(x, mw, bias, t, bounds, ts_bias)
        assert rel_error(y, want) <= kernel_tolerance(torch.float16, K), M
        assert torch.equal(run_op(x, mw, bias, t, bounds, ts_bias), y)  # slices summed in order


def test_k_split_eight_slices(gen, monkeypatch):
    """The largest cluster: 8 slices of 4 chunks (K = 2048), the 128-token tile."""
    N, K, M = 300, 2048, 200
    qw = rtn(N, K, 4, 128, torch.float16, gen)
    monkeypatch.setenv("QUANTDLLM_WGMMA_BN", "128")
    monkeypatch.setenv("QUANTDLLM_WGMMA_KSPLIT", "8")
    x = torch.randn(M, K, generator=gen).half().cuda()
    y = run_op(x, cb.mma_pack(qw, torch.float16))
    assert rel_error(y, exact_matmul(x, qw)) <= kernel_tolerance(torch.float16, K)


@pytest.mark.parametrize("bits", [3, 4])
@pytest.mark.parametrize("split_from", ["1", "7", "14"])
def test_k_split_tail(bits, split_from, gen, monkeypatch):
    """Only the tiles from QUANTDLLM_WGMMA_SPLIT_FROM on (rounded down to a multiple of the 2 slices:
    the clusters align with the grid) are split (stream-K's tail; 15 tiles of 64 tokens here): whole-K
    and split tiles in one launch, with bias and per-row timestep bias."""
    N, K, M = 333, 1280, 300
    qw = rtn(N, K, bits, 128, torch.float16, gen)
    mw = cb.mma_pack(qw, torch.float16)
    x, bias, t, bounds, ts_bias, want = bias_and_timestep_case(qw, M, torch.float16, gen)
    for k, v in (("QUANTDLLM_WGMMA_BN", "64"), ("QUANTDLLM_WGMMA_KSPLIT", "2"), ("QUANTDLLM_WGMMA_SPLIT_FROM", split_from)):
        monkeypatch.setenv(k, v)
    y = run_op(x, mw, bias, t, bounds, ts_bias)
    assert rel_error(y, want) <= kernel_tolerance(torch.float16, K)


@pytest.mark.parametrize("shift", ["0", "1", "2", "3", "99"])
@pytest.mark.parametrize("split_from", ["0", "7"])
@pytest.mark.parametrize("bn", ["64", "256"])
def test_timestep_slice_shift(shift, split_from, bn, gen, monkeypatch):
    """With a timestep table and 4-bit codes, slice 0 of a split tile hands its last
    QUANTDLLM_WGMMA_TS_SHIFT chunks to slice 1 (it runs the table's chunk first): every chunk is
    still summed once and whole-K tiles of the same launch keep all of theirs (the first form of the
    shift dropped one). 20 chunks in slices of 12 + 8; 99 is clamped by the plan to 11 (slice 0
    keeps one chunk). Group 128 (two chunks) has shifts that split a group's scales."""
    N, K, M = 333, 1280, 300
    for group in (64, 128):
        qw = rtn(N, K, 4, group, torch.float16, gen)
        mw = cb.mma_pack(qw, torch.float16)
        bounds = torch.tensor([0.25, 0.5], device="cuda")
        ts_bias = torch.randn(3, N, generator=gen).half().cuda()
        x = torch.randn(M, K, generator=gen).half().cuda()
        t = torch.rand(M, generator=gen).cuda()
        want = exact_matmul(x, qw) + ts_bias[torch.searchsorted(bounds, t, right=True)].double()
        for k, v in (("QUANTDLLM_WGMMA_BN", bn), ("QUANTDLLM_WGMMA_KSPLIT", "2"), ("QUANTDLLM_WGMMA_SPLIT_FROM", split_from),
                     ("QUANTDLLM_WGMMA_TS_SHIFT", shift)):
            monkeypatch.setenv(k, v)
        y = run_op(x, mw, None, t, bounds, ts_bias)
        assert rel_error(y, want) <= kernel_tolerance(torch.float16, K), group
        y1 = run_op(x, mw, None, t[:1].expand(M).contiguous(), bounds, ts_bias)  # one bucket for all rows
        want1 = exact_matmul(x, qw) + ts_bias[torch.searchsorted(bounds, t[:1], right=True)].double()
        assert rel_error(y1, want1) <= kernel_tolerance(torch.float16, K), group


@pytest.mark.parametrize("M", [384, 512, 700, 768])
def test_partial_last_wave(M, gen):
    """(4096, 12288) at these M leaves a last, partial wave on a 132-SM GPU: the plan splits that
    wave's tiles along K (the stream-K tail); it must give the product."""
    N, K = 12288, 4096
    qw = rtn(N, K, 4, 128, torch.float16, gen)
    x = torch.randn(M, K, generator=gen).half().cuda()
    y = run_op(x, cb.mma_pack(qw, torch.float16))
    assert rel_error(y, exact_matmul(x, qw)) <= kernel_tolerance(torch.float16, K)


@pytest.mark.parametrize("M", [65, 128, 256, 512])
def test_k_split_plan(M, gen, monkeypatch):
    """(K, N) = (12288, 4096) leaves SMs idle at these M: the plan splits K, the same result as one
    slice (QUANTDLLM_WGMMA_KSPLIT=1) up to fp32 summation order."""
    N, K = 4096, 12288
    qw = rtn(N, K, 4, 128, torch.float16, gen)
    mw = cb.mma_pack(qw, torch.float16)
    x = torch.randn(M, K, generator=gen).half().cuda()
    want = exact_matmul(x, qw)
    y_split = run_op(x, mw)
    monkeypatch.setenv("QUANTDLLM_WGMMA_KSPLIT", "1")
    y_one = run_op(x, mw)
    assert rel_error(y_split, want) <= kernel_tolerance(torch.float16, K)
    assert rel_error(y_one, want) <= kernel_tolerance(torch.float16, K)


@pytest.mark.parametrize("M", [64, 300])
def test_chained_launches_read_the_previous_output(M, gen):
    """The x pre-pass (2- and 3-bit, and 4-bit at M = 64) and lut_wgmma reading x as stored (4-bit at
    M = 300) are programmatic dependent launches of whatever ran before them, and lut_wgmma lets the
    next launch start after its main loop: each call here reads the previous one's output."""
    K = 1024
    qws = [chain_weight(K, bits, gen) for bits in (4, 4, 2, 3, 4)]
    mws = [cb.mma_pack(qw, torch.float16) for qw in qws]
    assert_chain_matches(lambda x, i: run_op(x, mws[i]), qws, M, gen)


def test_k_split_graph_replay(gen, monkeypatch):
    monkeypatch.setenv("QUANTDLLM_WGMMA_KSPLIT", "4")
    N, K, M = 256, 2048, 128
    qw = rtn(N, K, 4, 128, torch.float16, gen)
    mw = cb.mma_pack(qw, torch.float16)
    x = torch.randn(M, K, generator=gen).half().cuda()
    run_op(x, mw)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        y = run_op(x, mw)
    for _ in range(2):
        x.copy_(torch.randn(M, K, generator=gen).half().cuda())
        g.replay()
        assert rel_error(y, exact_matmul(x, qw)) <= kernel_tolerance(torch.float16, K)


@pytest.mark.parametrize("NK", [(4096, 4096), (256, 12288), (12288, 256)])
@pytest.mark.parametrize("M", [128, 512, 1000])
def test_shapes(NK, M, gen):
    N, K = NK
    qw = rtn(N, K, 4, 128, torch.float16, gen)
    x = torch.randn(M, K, generator=gen).half().cuda()
    y = run_op(x, cb.mma_pack(qw, torch.float16))
    assert rel_error(y, exact_matmul(x, qw)) <= kernel_tolerance(torch.float16, K)


@pytest.mark.parametrize("T", [4, 11, 64])
@pytest.mark.parametrize("per_row", [True, False])
@pytest.mark.parametrize("table", ["half", "float", "unaligned"])
@pytest.mark.parametrize("bn", ["64", "128/2", "256"])
def test_timestep_bias(T, per_row, table, bn, gen, monkeypatch):
    """The table as lut_wgmma's extra K chunk: 1 and 4 k16 steps (T = 4 / 11 / 64), fp16 and fp32
    tables (fp32 rounded to the activation dtype), a table at an odd address, N % 8 != 0, 64-, 128-
    (K split in two: slice 0 adds the table) and 256-token tiles, per-row and one t."""
    K, M = 1024, 300
    tile, _, ks = bn.partition("/")
    monkeypatch.setenv("QUANTDLLM_WGMMA_BN", tile)
    if ks:
        monkeypatch.setenv("QUANTDLLM_WGMMA_KSPLIT", ks)
    for N in (200, 333):
        qw = rtn(N, K, 4, 128, torch.float16, gen)
        mw = cb.mma_pack(qw, torch.float16)
        bounds = torch.sort(torch.rand(T - 1, generator=gen)).values.cuda()
        values = torch.randn(T, N, generator=gen)
        if table == "unaligned":  # storage offset of one element: 2-byte aligned
            ts_bias = torch.empty(T * N + 1, dtype=torch.float16, device="cuda")[1:].view(T, N)
            ts_bias.copy_(values)
        else:
            ts_bias = values.to(torch.float16 if table == "half" else torch.float32).cuda()
        t = torch.rand(M if per_row else 1, generator=gen).cuda()
        x = torch.randn(M, K, generator=gen).half().cuda()
        want = exact_matmul(x, qw) + ts_bias[torch.searchsorted(bounds, t, right=True)].double()
        y = run_op(x, mw, None, t, bounds, ts_bias)
        assert rel_error(y, want) <= kernel_tolerance(torch.float16, K), N


def test_lut_matmul_routes_mid_m(gen, monkeypatch):
    """M past the measured lower end (cb._wgmma_min_m) takes lut_wgmma through
    lut_matmul(backend="cuda"); QUANTDLLM_WGMMA_MAX_M=0 turns it off; QUANTDLLM_WGMMA_MIN_M moves its start."""
    qw = rtn(256, 512, 4, 128, torch.float16, gen)
    x = torch.randn(cb.MMA_MAX_M + 3, 512, generator=gen).half().cuda()
    calls = []
    real = torch.ops.quantdllm.lut_wgmma

    class Spy:
        def __call__(self, *a):
            calls.append(1)
            return real(*a)

    monkeypatch.setattr(cb.torch.ops.quantdllm, "lut_wgmma", Spy(), raising=False)
    y = lut_matmul(x, qw, backend="cuda")
    assert calls and rel_error(y, exact_matmul(x, qw)) <= kernel_tolerance(torch.float16, 512)
    monkeypatch.setenv("QUANTDLLM_WGMMA_MAX_M", "0")
    calls.clear()
    lut_matmul(x, qw, backend="cuda")
    assert not calls
    monkeypatch.delenv("QUANTDLLM_WGMMA_MAX_M")
    # the measured lower end (cb._wgmma_min_m): 33 by default, 25 for 3-bit at K <= 4096 and 4-bit
    # at K, N <= 4096, 48 for K >= 8192, 17 for N >= 32768
    w2 = rtn(256, 512, 2, 128, torch.float16, gen)
    deep = rtn(256, 8192, 4, 128, torch.float16, gen)
    cases = ((qw, 48, True), (qw, 25, True), (qw, 24, False), (w2, 33, True), (w2, 32, False),
             (deep, 48, True), (deep, 40, False), (rtn(256, 512, 3, 128, torch.float16, gen), 32, True),
             (rtn(256, 512, 3, 128, torch.float16, gen), 24, False),
             (rtn(32768, 256, 4, 128, torch.float16, gen), 17, True), (rtn(32768, 256, 4, 128, torch.float16, gen), 16, False))
    for w, M, want in cases:
        calls.clear()
        xm = torch.randn(M, w.in_features, generator=gen).half().cuda()
        y = lut_matmul(xm, w, backend="cuda")
        assert bool(calls) == want, (w.shape, w.bits, M)
        assert rel_error(y, exact_matmul(xm, w)) <= kernel_tolerance(torch.float16, w.in_features), (w.shape, M)
    # QUANTDLLM_WGMMA_MIN_M moves the lower end: M = 20 on lut_wgmma, M = 16 still on lut_mma
    monkeypatch.setenv("QUANTDLLM_WGMMA_MIN_M", "17")
    for M, want in ((20, True), (16, False)):
        calls.clear()
        xm = torch.randn(M, 512, generator=gen).half().cuda()
        y = lut_matmul(xm, qw, backend="cuda")
        assert bool(calls) == want and rel_error(y, exact_matmul(xm, qw)) <= kernel_tolerance(torch.float16, 512), M


def test_graph_replay(gen):
    N, K, M = 256, 1024, 256
    qw = rtn(N, K, 4, 128, torch.float16, gen)
    mw = cb.mma_pack(qw, torch.float16)
    bounds = torch.tensor([0.5], device="cuda")
    ts_bias = torch.randn(2, N, generator=gen).half().cuda()
    x = torch.randn(M, K, generator=gen).half().cuda()
    t = torch.full((1,), 0.25, device="cuda")
    run_op(x, mw, None, t, bounds, ts_bias)  # warm-up outside the capture
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        y = run_op(x, mw, None, t, bounds, ts_bias)
    x.copy_(torch.randn(M, K, generator=gen).half().cuda())
    t.fill_(0.75)
    g.replay()
    want = exact_matmul(x, qw) + ts_bias[1].float()
    assert rel_error(y, want) <= kernel_tolerance(torch.float16, K)


def test_op_rejects_bad_arguments(gen):
    qw = rtn(64, 256, 4, 128, torch.float16, gen)
    mw = cb.mma_pack(qw, torch.float16)
    x = torch.randn(130, 256, generator=gen).half().cuda()
    with pytest.raises(RuntimeError, match="x must be"):
        run_op(x[:, :128], mw)
    with pytest.raises(RuntimeError, match="x must be"):
        run_op(x.float(), mw)
    with pytest.raises(RuntimeError, match="bias must have N"):
        run_op(x, mw, torch.zeros(3, dtype=torch.float16, device="cuda"))
