"""CUDA C++ backend (csrc/) vs the reference. Every test needs a GPU and the built extension
(``pip install --no-build-isolation -e .`` on a CUDA machine); they are skipped elsewhere."""
import pytest
import torch

from quantdllm_kernels import BackendUnavailableError, QuantLinear, TimestepTables, available_backends, lut_matmul
from quantdllm_kernels.reference import lut_matmul_reference
from quantdllm_kernels.testing import (KERNEL_TEST_FORMATS, exact_matmul, kernel_tolerance, random_mixed_qweight,
                                       random_qweight, rel_error)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif("cuda" not in available_backends(), reason="CUDA backend not built / no GPU")]
FORMATS = KERNEL_TEST_FORMATS


tol, exact = kernel_tolerance, exact_matmul


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("fmt", range(len(FORMATS)))
@pytest.mark.parametrize("group_size", [32, 64, 128, 256, None])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_matches_reference(bits, fmt, group_size, dtype, gen):
    kind, extra = FORMATS[fmt]
    N, K = 77, 512
    qw = random_qweight(N, K, bits=bits, lut_kind=kind, group_size=group_size, lut_dtype=dtype,
                        in_scale=(fmt % 2 == 0), generator=gen, **extra).to("cuda")
    bias = torch.randn(N, generator=gen).to(dtype).cuda() if fmt != 1 else None
    for M in (1, 2, 3, 5, 16, 33):
        x = torch.randn(M, K, generator=gen).to(dtype).cuda()
        y = lut_matmul(x, qw, bias, backend="cuda")
        assert y.dtype == dtype and y.shape == (M, N)
        assert rel_error(y, exact(x, qw, bias)) <= tol(dtype, K), M


@pytest.mark.parametrize("M", [1, 2, 4, 7, 16, 17, 300])
@pytest.mark.parametrize("NK", [(4096, 4096), (300, 4480), (12288, 128), (77, 12288)])
def test_shapes_tiles_and_ksplit(M, NK, gen):
    # several 4096-code tiles plus a partial one; small N forces the K split (atomic partials)
    N, K = NK
    qw = random_qweight(N, K, bits=4, lut_kind="scaled", group_size=128, generator=gen, in_scale=True).to("cuda")
    x = torch.randn(M, K, generator=gen).half().cuda()
    assert rel_error(lut_matmul(x, qw, backend="cuda"), exact(x, qw)) <= tol(torch.float16, K)


def test_lut_dtype_differs_from_activations(gen):
    qw = random_qweight(64, 256, bits=3, lut_kind="binary", lut_dtype=torch.float32, in_scale=True,
                        generator=gen).to("cuda")
    x = torch.randn(3, 256, generator=gen).bfloat16().cuda()
    assert rel_error(lut_matmul(x, qw, backend="cuda"), exact(x, qw)) <= tol(torch.bfloat16, 256)


def test_mixed_precision_segments(gen):
    qw = random_mixed_qweight(96, widths=((2, 256), (3, 128), (4, 128)), group_size=64, generator=gen).to("cuda")
    for M in (1, 40):
        x = torch.randn(M, 512, generator=gen).half().cuda()
        assert rel_error(lut_matmul(x, qw, backend="cuda"), exact(x, qw)) <= tol(torch.float16, 512) * 2


def test_mixed_affine_segments_with_one_bit(gen):
    """Affine 1/2/3-bit segments (as ABMP makes them): up to 16 tokens the 1-bit segment runs the
    GEMV, from 17 to 64 the tensor-core path in the 2-bit layout, past 64 the dequant path."""
    from quantdllm_kernels import MixedQuantizedWeight
    qw = random_mixed_qweight(96, widths=((1, 256), (2, 128), (3, 128)), lut_kind="scaled", group_size=64,
                              generator=gen)
    segs = [s._replace(codebook=(torch.arange(1 << s.bits) * 0.5 - 0.25).to(s.lut_dtype)) for s in qw.segments]
    qw = MixedQuantizedWeight(qw.perm, segs).to("cuda")
    for M in (1, 16, 17, 40, 64, 65):
        x = torch.randn(M, 512, generator=gen).half().cuda()
        assert rel_error(lut_matmul(x, qw, backend="cuda"), exact(x, qw)) <= tol(torch.float16, 512) * 2, M


def _with_tables(qw, gen, luts: bool):
    T, N = 5, qw.out_features
    bounds = torch.tensor([0.1, 0.3, 0.6, 0.9])
    bias = torch.randn(T, N, generator=gen).to(qw.lut_dtype)
    lut = None
    if luts:
        lut = {"scale": torch.stack([qw.scale.cpu() * (1 + 0.2 * b) for b in range(T)])}
    ts = TimestepTables(bounds, bias, lut)
    return qw.with_timestep_tables(ts._apply(lambda t: t.to(qw.device)))


@pytest.mark.parametrize("luts", [False, True])
@pytest.mark.parametrize("M", [1, 4, 64])
def test_timestep_tables_fused(luts, M, gen):
    K = 384
    qw = _with_tables(random_qweight(200, K, bits=4, lut_kind="scaled", generator=gen).to("cuda"), gen, luts)
    x = torch.randn(M, K, generator=gen).half().cuda()
    for t in (0.0, 0.1, 0.5, torch.tensor(0.95, device="cuda"), torch.rand(M, generator=gen).cuda()):
        y = lut_matmul(x, qw, timestep=t, backend="cuda")
        ref = lut_matmul_reference(x.double(), qw, timestep=t)
        assert rel_error(y, ref) <= tol(torch.float16, K), t


def test_cuda_graph_replay_follows_timestep_and_inputs(gen):
    from quantdllm_kernels.testing import assert_graph_replay_follows_timestep
    qw = _with_tables(random_qweight(256, 512, bits=2, lut_kind="scaled", generator=gen).to("cuda"), gen, True)
    assert_graph_replay_follows_timestep(QuantLinear(qw, backend="cuda"), 4, gen)


def test_torch_compile_fullgraph(gen):
    torch._dynamo.reset()
    K = 256
    model = torch.nn.Sequential(
        QuantLinear(random_qweight(384, K, bits=4, lut_kind="table", generator=gen), backend="cuda"),
        torch.nn.GELU(),
        QuantLinear(random_qweight(K, 384, bits=2, lut_kind="binary", generator=gen), backend="cuda"),
    ).cuda()
    compiled = torch.compile(model, fullgraph=True)
    for M in (1, 40):
        x = torch.randn(M, K, generator=gen).half().cuda()
        assert rel_error(compiled(x), model(x)) <= 1e-3


def test_bad_inputs_named_before_launch(gen):
    qw = random_qweight(64, 256, bits=4, generator=gen).to("cuda")
    with pytest.raises(BackendUnavailableError, match="float16 or bfloat16"):
        lut_matmul(torch.randn(2, 256, device="cuda"), qw, backend="cuda")
    with pytest.raises(ValueError, match="x must have shape"):
        lut_matmul(torch.randn(2, 255, device="cuda").half(), qw, backend="cuda")
    with pytest.raises(BackendUnavailableError, match="multiple of 128"):
        lut_matmul(torch.randn(2, 96, device="cuda").half(),
                   random_qweight(8, 96, bits=4, group_size=32, generator=gen).to("cuda"), backend="cuda")
    with pytest.raises(ValueError, match="bias"):
        lut_matmul(torch.randn(2, 256, device="cuda").half(), qw, torch.zeros(63, device="cuda"), backend="cuda")
    # the raw op checks its arguments too
    f = torch.ops.quantdllm.lut_gemv
    x = torch.randn(2, 256, device="cuda").half()
    with pytest.raises(RuntimeError, match="codes must be contiguous int32"):
        f(x, qw.codes.float(), qw.codebook, qw.scale, qw.zero, [0, 0, 0], None, None, None, None, None, None,
          4, 1, 128, False)
    with pytest.raises(RuntimeError, match="x must be"):
        f(x[:, :128], qw.codes, qw.codebook, qw.scale, qw.zero, [0, 0, 0], None, None, None, None, None, None,
          4, 1, 128, False)
    with pytest.raises(RuntimeError, match="per-bucket LUT fields need"):
        f(x, qw.codes, qw.codebook, qw.scale, qw.zero, [0, 5, 0], None, None, None, None, None, None,
          4, 1, 128, False)
    # automatic selection falls back instead of failing on a shape the CUDA kernels cannot take
    odd = random_qweight(8, 96, bits=4, group_size=32, generator=gen).to("cuda")
    x96 = torch.randn(2, 96, device="cuda").half()
    assert rel_error(lut_matmul(x96, odd), exact(x96, odd)) <= tol(torch.float16, 96)
