import pytest
import torch

from quantdllm_kernels import dequantize, quantize_weight
from quantdllm_kernels.testing import rel_error


@pytest.mark.parametrize("method", ["rtn", "kmeans", "binary"])
@pytest.mark.parametrize("group_size", [32, 128, None])
def test_error_falls_with_bits(method, group_size, gen):
    W = torch.randn(64, 256, generator=gen)
    errs = [rel_error(dequantize(quantize_weight(W, bits=b, group_size=group_size, method=method), torch.float64), W)
            for b in (2, 3, 4)]
    assert errs[0] > errs[1] > errs[2], errs
    assert errs[2] < 0.2


def test_kinds_and_lut_dtype(gen):
    W = torch.randn(16, 128, generator=gen)
    assert quantize_weight(W, method="rtn").lut_kind == "scaled"
    assert quantize_weight(W, method="kmeans").lut_kind == "table"
    q = quantize_weight(W, method="binary", bits=3, lut_dtype=torch.bfloat16)
    assert q.lut_kind == "binary" and q.lut_dtype == torch.bfloat16 and q.alpha.shape == (16, 1, 3)


def test_kmeans_deterministic_and_not_worse_than_rtn(gen):
    W = torch.randn(32, 256, generator=gen)
    a = quantize_weight(W, bits=3, method="kmeans", seed=3)
    b = quantize_weight(W, bits=3, method="kmeans", seed=3)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.table, b.table)
    r = quantize_weight(W, bits=3, method="rtn", lut_dtype=torch.float32)
    k = quantize_weight(W, bits=3, method="kmeans", lut_dtype=torch.float32)
    assert rel_error(dequantize(k, torch.float64), W) <= rel_error(dequantize(r, torch.float64), W) + 1e-6


def test_rtn_exact_on_grid(gen):
    # Weights already on a 4-bit grid per group are reproduced (up to the fp32 LUT rounding).
    levels = torch.randint(0, 16, (8, 128), generator=gen).float()
    levels[:, 0], levels[:, 1] = 0, 15  # span the grid
    W = levels * 0.01 - 0.07
    q = quantize_weight(W, bits=4, group_size=None, method="rtn", lut_dtype=torch.float32)
    assert rel_error(dequantize(q, torch.float64), W) < 1e-6


def test_constant_group_is_fine():
    W = torch.full((4, 64), 0.25)
    for m in ("rtn", "kmeans", "binary"):
        q = quantize_weight(W, bits=2, group_size=32, method=m, lut_dtype=torch.float32)
        assert torch.allclose(dequantize(q), W)


def test_bad_arguments():
    W = torch.randn(4, 64)
    with pytest.raises(ValueError, match="bits"):
        quantize_weight(W, bits=8)
    with pytest.raises(ValueError, match="method"):
        quantize_weight(W, method="gptq")
    with pytest.raises(ValueError, match="group_size"):
        quantize_weight(W, group_size=48)
    with pytest.raises(ValueError, match="divisible"):
        quantize_weight(torch.randn(4, 96), group_size=64)
    with pytest.raises(ValueError, match="W contains NaN"):
        quantize_weight(torch.full((4, 64), float("nan")))
    with pytest.raises(ValueError, match="W must have 2"):
        quantize_weight(torch.randn(64))
    with pytest.raises(TypeError, match="lut_dtype"):
        quantize_weight(W, lut_dtype=torch.int8)
