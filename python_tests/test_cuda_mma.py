"""The CUDA tensor-core path (csrc/lut_mma.cu) vs the reference: affine `scaled` weights (RTN),
every bits x group size x dtype, odd M and N, the K split across blocks (summed in a cluster on
sm_90, through a workspace and semaphores elsewhere or with QUANTDLLM_MMA_CLUSTER=0),
bias and per-row timestep bias, CUDA-graph replay and torch.compile through QuantLinear. GPU only."""
import pytest
import torch

from quantdllm_kernels import QuantLinear, TimestepTables, available_backends, lut_matmul
from quantdllm_kernels.reference import lut_matmul_reference
from quantdllm_kernels.testing import (assert_chain_matches, bias_and_timestep_case, capture_graph, chain_weight,
                                       exact_matmul, kernel_tolerance, rel_error, rtn_qweight)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif("cuda" not in available_backends(), reason="CUDA backend not built / no GPU")]

if "cuda" in available_backends():
    from quantdllm_kernels.backends import cuda_backend as cb


def rtn(N, K, bits, g, dtype, gen, in_scale=False):
    return rtn_qweight(N, K, bits, g, dtype, gen, in_scale=in_scale)


def run_op(x, mw, bias=None, t=None, bounds=None, ts_bias=None):
    return torch.ops.quantdllm.lut_mma(x, mw.codes, mw.sz, mw.N, mw.K, mw.bits, mw.group_shift, mw.in_scale, bias,
                                       t, bounds, ts_bias, cb._semaphores(x.device))


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("group_size", [64, 128, 256, None])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("in_scale", [False, True])  # M <= 8 runs a separate kernel without in_scale
def test_matches_reference(bits, group_size, dtype, in_scale, gen):
    N, K = 77, 1280 if group_size == 256 else 640  # rows padded to 96; 640: not a multiple of the 3-bit super-chunk
    qw = rtn(N, K, bits, group_size, dtype, gen, in_scale=in_scale)
    mw = cb.mma_pack(qw, dtype)
    assert mw is not None
    bias = torch.randn(N, generator=gen).to(dtype).cuda()
    for M in (1, 3, 17, 33, 64, 65, 130):
        x = torch.randn(M, K, generator=gen).to(dtype).cuda()
        y = run_op(x, mw, bias)
        assert y.dtype == dtype and y.shape == (M, N)
        assert rel_error(y, exact_matmul(x, qw, bias)) <= kernel_tolerance(dtype, K), M


@pytest.mark.parametrize("M", [1, 5, 16, 32, 64])
@pytest.mark.parametrize("NK", [(4096, 4096), (77, 12288), (12288, 256), (300, 4480)])
@pytest.mark.parametrize("cluster", ["1", "0"])
def test_shapes_and_k_split(M, NK, cluster, gen, monkeypatch):
    monkeypatch.setenv("QUANTDLLM_MMA_CLUSTER", cluster)
    N, K = NK
    qw = rtn(N, K, 4, 128, torch.float16, gen)
    x = torch.randn(M, K, generator=gen).half().cuda()
    for _ in range(2):  # the second launch reuses the semaphores the first left zeroed
        y = lut_matmul(x, qw, backend="cuda")
        assert rel_error(y, exact_matmul(x, qw)) <= kernel_tolerance(torch.float16, K)
    assert int(cb._semaphores(x.device).abs().sum()) == 0


@pytest.mark.parametrize("cap", ["1", "2", "4"])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_capped_token_tiles_match(cap, bits, gen, monkeypatch):
    """QUANTDLLM_MMA_MAX_NT runs M = 40 as five 8-token, three 16-token or two 32-token tiles (the
    plan alone takes 16 here: grid.y > 1 at every tiling), with bias and a per-row timestep table."""
    N, K = 96, 1024
    qw = rtn(N, K, bits, 128, torch.float16, gen)
    mw = cb.mma_pack(qw, torch.float16)
    bias = torch.randn(N, generator=gen).half().cuda()
    bounds = torch.tensor([0.25, 0.5, 0.75], device="cuda")
    ts_bias = torch.randn(4, N, generator=gen).half().cuda()
    x = torch.randn(40, K, generator=gen).half().cuda()
    t = torch.rand(40, generator=gen).cuda()
    want = exact_matmul(x, qw, bias) + ts_bias[torch.searchsorted(bounds, t, right=True)].float()
    monkeypatch.setenv("QUANTDLLM_MMA_MAX_NT", cap)
    y = run_op(x, mw, bias, t, bounds, ts_bias)
    assert rel_error(y, want) <= kernel_tolerance(torch.float16, K)


@pytest.mark.parametrize("wn,ksplit", [("1", None), ("4", None), ("4", "3"), ("2", "8"), ("1", "2")])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_plan_knobs_match(wn, ksplit, bits, gen, monkeypatch):
    """QUANTDLLM_MMA_WN / QUANTDLLM_MMA_KSPLIT (the benchmarks' A/B knobs) give plans the default rule
    does not: 4 warps along N (no cross-warp K reduction, 128-row blocks past N = 300) and forced
    K splits. Bias and a per-row timestep table ride along; the semaphores must end zeroed."""
    N, K = 300, 1536
    qw = rtn(N, K, bits, 128, torch.float16, gen)
    mw = cb.mma_pack(qw, torch.float16)
    bias = torch.randn(N, generator=gen).half().cuda()
    bounds = torch.tensor([0.3, 0.6], device="cuda")
    ts_bias = torch.randn(3, N, generator=gen).half().cuda()
    monkeypatch.setenv("QUANTDLLM_MMA_WN", wn)
    if ksplit:
        monkeypatch.setenv("QUANTDLLM_MMA_KSPLIT", ksplit)
    for M in (5, 16, 40):
        x = torch.randn(M, K, generator=gen).half().cuda()
        t = torch.rand(M, generator=gen).cuda()
        want = exact_matmul(x, qw, bias) + ts_bias[torch.searchsorted(bounds, t, right=True)].float()
        y = run_op(x, mw, bias, t, bounds, ts_bias)
        assert rel_error(y, want) <= kernel_tolerance(torch.float16, K), M
    assert int(cb._semaphores(x.device).abs().sum()) == 0


@pytest.mark.parametrize("ksplit", [None, "2", "3", "8"])
@pytest.mark.parametrize("M", [1, 7, 24, 64])
def test_cluster_and_workspace_sums_agree_bitwise(ksplit, M, gen, monkeypatch):
    """Both K-split reductions add the slices' fp32 partials in slice order from zero, so a cluster
    launch (sm_90) and the workspace form give the same bits; bias and a per-row timestep table ride
    along. (On other GPUs both runs take the workspace form.)"""
    qw = rtn(200, 4608, 4, 128, torch.bfloat16, gen)
    mw = cb.mma_pack(qw, torch.bfloat16)
    x, bias, t, bounds, ts_bias, want = bias_and_timestep_case(qw, M, torch.bfloat16, gen)
    if ksplit:
        monkeypatch.setenv("QUANTDLLM_MMA_KSPLIT", ksplit)
    ys = []
    for cluster in ("1", "0"):
        monkeypatch.setenv("QUANTDLLM_MMA_CLUSTER", cluster)
        ys.append(run_op(x, mw, bias, t, bounds, ts_bias))
    assert torch.equal(ys[0], ys[1])
    assert rel_error(ys[0], want) <= kernel_tolerance(torch.bfloat16, qw.in_features)
    assert int(cb._semaphores(x.device).abs().sum()) == 0


def test_small_groups_take_the_lookup_kernels(gen):
    # groups of 32 straddle the mma's k steps: no tensor-core pack, the GEMV / dequant path runs
    qw = rtn(96, 512, 4, 32, torch.float16, gen)
    assert cb.mma_pack(qw, torch.float16) is None
    for M in (1, 40):
        x = torch.randn(M, 512, generator=gen).half().cuda()
        assert rel_error(lut_matmul(x, qw, backend="cuda"), exact_matmul(x, qw)) <= kernel_tolerance(torch.float16, 512)


@pytest.mark.parametrize("T", [4, 11])   # 11: the bucket scan takes boundaries eight at a time
def test_timestep_bias_per_row(T, gen):
    N, K = 200, 1024
    qw = rtn(N, K, 2, 64, torch.float16, gen)
    ts = TimestepTables(torch.linspace(0, 1, T + 1)[1:-1].cuda(), torch.randn(T, N, generator=gen).half().cuda())
    qw = qw.with_timestep_tables(ts)
    bias = torch.randn(N, generator=gen).half().cuda()
    for M in (1, 7, 40):
        x = torch.randn(M, K, generator=gen).half().cuda()
        t = torch.rand(M, generator=gen).cuda()
        y = lut_matmul(x, qw, bias, timestep=t, backend="cuda")
        ref = lut_matmul_reference(x.double(), qw, bias.float(), timestep=t)
        assert rel_error(y, ref) <= kernel_tolerance(torch.float16, K)


def test_graph_replay_and_compile_through_quantlinear(gen):
    torch._dynamo.reset()
    K = 512
    lin1 = QuantLinear(rtn(384, K, 4, 128, torch.float16, gen), backend="cuda")
    lin2 = QuantLinear(rtn(K, 384, 3, 64, torch.float16, gen), backend="cuda")
    model = torch.nn.Sequential(lin1, torch.nn.GELU(), lin2).cuda()
    x = torch.randn(8, K, generator=gen).half().cuda()
    ref = model(x)  # eager first: builds the packs as non-persistent buffers
    assert "_mma_fp16_codes" in dict(lin1.named_buffers()) and "_mma_fp16_codes" not in lin1.state_dict()
    compiled = torch.compile(model, fullgraph=True)
    assert rel_error(compiled(x), ref) <= 1e-3
    static_x = x.clone()
    g, y = capture_graph(lambda: model(static_x))
    for _ in range(3):
        static_x.copy_(torch.randn(8, K, generator=gen).half())
        g.replay()
        torch.cuda.synchronize()
        assert rel_error(y, model(static_x)) <= 1e-3


@pytest.mark.parametrize("M", [1, 8, 24])
def test_chained_launches_read_the_previous_output(M, gen):
    """lut_mma is a programmatic dependent launch on sm_90: its blocks may start while the launch
    before it runs. Each launch reads the previous one's output as x (and the K-split ones reuse
    the same semaphores and workspace)."""
    K = 1024  # N = K: (1024, 1024) at M <= 8 splits K across blocks
    qws = [chain_weight(K, bits, gen) for bits in (4, 2, 4, 3)]
    mws = [cb.mma_pack(qw, torch.float16) for qw in qws]
    assert_chain_matches(lambda x, i: run_op(x, mws[i]), qws, M, gen)


def test_state_dict_reload_repacks(gen):
    lin = QuantLinear(rtn(64, 256, 4, 128, torch.float16, gen), backend="cuda").cuda()
    x = torch.randn(2, 256, generator=gen).half().cuda()
    lin(x)
    other = QuantLinear(rtn(64, 256, 4, 128, torch.float16, gen), backend="cuda").cuda()
    lin.load_state_dict(other.state_dict())
    assert rel_error(lin(x), other(x)) <= 1e-3


def test_op_rejects_bad_arguments(gen):
    qw = rtn(64, 256, 4, 128, torch.float16, gen)
    mw = cb.mma_pack(qw, torch.float16)
    x = torch.randn(2, 256, generator=gen).half().cuda()
    with pytest.raises(RuntimeError, match="x must be"):
        torch.ops.quantdllm.lut_mma(x[:, :128].contiguous(), mw.codes, mw.sz, 64, 256, 4, 7, None, None, None, None,
                                    None, cb._semaphores(x.device))
    with pytest.raises(RuntimeError, match="sz must be"):
        torch.ops.quantdllm.lut_mma(x, mw.codes, mw.sz.float(), 64, 256, 4, 7, None, None, None, None, None,
                                    cb._semaphores(x.device))
    with pytest.raises(RuntimeError, match="codes must be"):
        torch.ops.quantdllm.lut_mma(x, mw.codes, mw.sz, 64, 256, 2, 7, None, None, None, None, None,
                                    cb._semaphores(x.device))
    with pytest.raises(RuntimeError, match="float16 or bfloat16"):
        torch.ops.quantdllm.lut_mma(x.float(), mw.codes, mw.sz, 64, 256, 4, 7, None, None, None, None, None,
                                    cb._semaphores(x.device))
