import pytest
import torch

from quantdllm_kernels import BackendUnavailableError, available_backends, lut_matmul
from quantdllm_kernels.testing import random_qweight


def test_torch_always_available():
    assert "torch" in available_backends()


def test_named_backends(gen):
    qw = random_qweight(8, 64, bits=2, group_size=32, generator=gen)
    x = torch.randn(2, 64, generator=gen)
    assert torch.equal(lut_matmul(x, qw, backend="torch"), lut_matmul(x, qw))
    with pytest.raises(ValueError, match="backend must be"):
        lut_matmul(x, qw, backend="opencl")
    for name in ("triton", "cuda"):
        if name not in available_backends():
            with pytest.raises(BackendUnavailableError, match=name):
                lut_matmul(x, qw, backend=name)
