import pytest
import torch

from quantdllm_kernels import TimestepTables, dequantize, lut_matmul
from quantdllm_kernels.reference import timestep_lookup_reference
from quantdllm_kernels.testing import matmul_tolerance, random_mixed_qweight, random_qweight, rel_error

KINDS = ["table", "scaled", "binary"]
DTYPES = [torch.float16, torch.bfloat16, torch.float32]


def exact(x, qw, bias=None):
    y = x.double() @ dequantize(qw, torch.float64).T
    return y + bias.double() if bias is not None else y


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("group_size", [32, 64, 128, 256, None])
@pytest.mark.parametrize("dtype", DTYPES)
def test_lut_matmul_matches_float64(bits, kind, group_size, dtype, gen):
    N, K = 24, 512
    qw = random_qweight(N, K, bits=bits, lut_kind=kind, group_size=group_size, lut_dtype=dtype,
                        in_scale=(bits == 3), generator=gen)
    bias = torch.randn(N, generator=gen).to(dtype)
    for shape in [(1, K), (3, K), (2, 5, K)]:
        x = torch.randn(*shape, generator=gen).to(dtype)
        y = lut_matmul(x, qw, bias)
        assert y.dtype == dtype and y.shape == (*shape[:-1], N)
        assert rel_error(y, exact(x, qw, bias)) <= matmul_tolerance(dtype, K)


@pytest.mark.parametrize("kind", KINDS)
def test_dequantize_formula(kind, gen):
    qw = random_qweight(5, 64, bits=2, lut_kind=kind, group_size=32, lut_dtype=torch.float32, in_scale=True,
                        generator=gen)
    W = dequantize(qw, torch.float64)
    codes = qw.unpacked_codes()
    n, k = 3, 40
    c = int(codes[n, k])
    if kind == "table":
        v = qw.table[n, 1, c]
    elif kind == "scaled":
        v = qw.codebook[c] * qw.scale[n, 1] + qw.zero[n, 1]
    else:
        v = qw.mu[n, 1] + sum(qw.alpha[n, 1, i] * (2 * ((c >> i) & 1) - 1) for i in range(2))
    assert float(W[n, k]) == pytest.approx(float(v * qw.in_scale[k]), rel=1e-6)
    assert dequantize(qw).dtype == torch.float32


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_binary_equals_expanded_table(bits, gen):
    qw = random_qweight(16, 256, bits=bits, lut_kind="binary", group_size=64, lut_dtype=torch.float32,
                        in_scale=True, generator=gen)
    tq = qw.to_table()
    assert tq.lut_kind == "table" and tq.table.shape == (16, 4, 1 << bits)
    assert torch.allclose(dequantize(qw, torch.float64), dequantize(tq, torch.float64), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mixed_precision(dtype, gen):
    mq = random_mixed_qweight(20, lut_dtype=dtype, generator=gen)
    x = torch.randn(3, 7, mq.in_features, generator=gen).to(dtype)
    y = lut_matmul(x, mq)
    # definition: sum over segments of W_s @ x[..., perm_s]
    ref = sum(x.double()[..., idx] @ dequantize(s, torch.float64).T for s, idx in mq.segment_slices())
    assert rel_error(y, ref) <= matmul_tolerance(dtype, mq.in_features)
    assert rel_error(y, exact(x, mq)) <= matmul_tolerance(dtype, mq.in_features)


def test_bad_inputs(gen):
    qw = random_qweight(8, 64, bits=2, lut_kind="scaled", group_size=32, generator=gen)
    with pytest.raises(ValueError, match="x must have shape"):
        lut_matmul(torch.randn(2, 63), qw)
    with pytest.raises(TypeError, match="x must have dtype"):
        lut_matmul(torch.randint(0, 3, (2, 64)), qw)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        lut_matmul([[1.0] * 64], qw)
    with pytest.raises(ValueError, match="bias must have shape"):
        lut_matmul(torch.randn(2, 64), qw, torch.randn(9))
    with pytest.raises(TypeError, match="qw must be"):
        lut_matmul(torch.randn(2, 64), torch.randn(8, 64))


def test_timestep_bias_and_luts(gen):
    N, K = 12, 64
    qw = random_qweight(N, K, bits=2, lut_kind="scaled", group_size=32, lut_dtype=torch.float32, generator=gen)
    bounds = torch.tensor([0.2, 0.6])
    tb = torch.randn(3, N, generator=gen)
    scales = qw.scale.unsqueeze(0) * torch.tensor([1.0, 1.5, 0.5]).view(3, 1, 1)
    q2 = qw.with_timestep_tables(TimestepTables(bounds, bias=tb, luts={"scale": scales}))
    x = torch.randn(4, K, generator=gen)
    t = torch.tensor([0.0, 0.2, 0.59, 1.0])  # buckets 0, 1 (edge goes up), 1, 2
    y = lut_matmul(x, q2, timestep=t)
    for row, b in enumerate([0, 1, 1, 2]):
        qb = qw._replace(scale=scales[b])
        ref = exact(x[row:row + 1], qb) + tb[b].double()
        assert rel_error(y[row:row + 1], ref) < 1e-5
    # scalar timestep: every row in one bucket; no timestep: tables unused
    assert torch.allclose(lut_matmul(x, q2, timestep=0.7), lut_matmul(x, q2, timestep=torch.full((4,), 0.7)))
    assert torch.allclose(lut_matmul(x, q2), lut_matmul(x, qw))
    with pytest.raises(ValueError, match="timestep must be"):
        lut_matmul(x, q2, timestep=torch.rand(3))


def test_timestep_lookup_reference():
    table = torch.arange(12.0).view(3, 4)
    out = timestep_lookup_reference(table, torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0.5, 0.8]))
    assert torch.equal(out, table[[0, 1, 2]])


def test_to_table_keeps_timestep_tables(gen):
    qw = random_qweight(6, 64, bits=2, lut_kind="binary", group_size=32, lut_dtype=torch.float32, generator=gen)
    alphas = qw.alpha.unsqueeze(0) * torch.tensor([1.0, 0.5]).view(2, 1, 1, 1)
    q2 = qw.with_timestep_tables(TimestepTables(torch.tensor([0.5]), bias=torch.randn(2, 6, generator=gen),
                                                luts={"alpha": alphas}))
    tq = q2.to_table()
    assert tq.timestep.luts["table"].shape == (2, 6, 2, 4)
    x = torch.randn(3, 64, generator=gen)
    for t in (0.2, 0.8):
        assert rel_error(lut_matmul(x, tq, timestep=t), lut_matmul(x, q2, timestep=t).double()) < 1e-6
