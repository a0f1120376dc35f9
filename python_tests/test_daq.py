import pytest
import torch

from quantdllm_kernels import dequantize, lut_matmul, quantize_weight
from quantdllm_kernels.calibrate import daq_quantize, damped_hessian, weighted_error


def problem(gen, N=64, K=256):
    W = torch.randn(N, K, generator=gen) * 0.02
    mix = torch.eye(K) + 0.3 * torch.randn(K, K, generator=gen) / K ** 0.5
    X = (torch.randn(512, K, generator=gen) @ mix) * (torch.rand(K, generator=gen) * 3 + 0.1)
    return W, X, damped_hessian(X)


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_objective_never_increases_and_beats_greedy(bits, gen):
    W, _, H = problem(gen)
    hist = []
    q = daq_quantize(W, H, bits=bits, group_size=64, iters=8, history=hist, lut_dtype=torch.float32)
    assert len(hist) >= 2
    assert all(b <= a * (1 + 1e-12) for a, b in zip(hist, hist[1:])), hist
    assert hist[-1] < hist[0]
    greedy = quantize_weight(W, bits=bits, group_size=64, method="binary", lut_dtype=torch.float32)
    assert weighted_error(W, dequantize(q, torch.float64), H) < weighted_error(W, dequantize(greedy, torch.float64), H)


def test_output_format_and_determinism(gen):
    W, X, H = problem(gen, N=32, K=128)
    a = daq_quantize(W, H, bits=2, group_size=32, iters=3)
    b = daq_quantize(W, H, bits=2, group_size=32, iters=3)
    assert a.lut_kind == "binary" and a.in_scale is not None and a.in_scale.shape == (128,)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.alpha, b.alpha) and torch.equal(a.in_scale, b.in_scale)
    x = X[:5].float()
    ref = x.double() @ dequantize(a, torch.float64).T
    assert float((lut_matmul(x, a).double() - ref).norm() / ref.norm()) < 1e-5


def test_bad_arguments(gen):
    W, _, H = problem(gen, N=8, K=64)
    with pytest.raises(ValueError, match="H must be"):
        daq_quantize(W, H[:32, :32])
    with pytest.raises(ValueError, match="divisible"):
        daq_quantize(W, H, group_size=48)
    with pytest.raises(ValueError, match="bits"):
        daq_quantize(W, H, bits=5)
