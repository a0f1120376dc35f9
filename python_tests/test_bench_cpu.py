"""CPU-side parts of the kernel pipeline, timed with pytest-benchmark (packing, quantizing, the
Triton repack). These assert correctness only; the timings are reported, never asserted.
Run alone with ``python -m pytest python_tests/test_bench_cpu.py --benchmark-only``."""
import pytest
import torch

from quantdllm_kernels import pack_codes, quantize_weight, unpack_codes

pytest.importorskip("pytest_benchmark")


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_bench_pack_unpack(benchmark, bits):
    codes = torch.randint(0, 1 << bits, (256, 4096))
    packed = benchmark(pack_codes, codes, bits)
    assert torch.equal(unpack_codes(packed, bits, 4096), codes)


@pytest.mark.parametrize("method", ["rtn", "binary"])
def test_bench_quantize(benchmark, method):
    W = torch.randn(256, 4096)
    qw = benchmark(quantize_weight, W, bits=2, group_size=128, method=method)
    assert qw.shape == (256, 4096)


def test_bench_pack_for_triton(benchmark):
    pytest.importorskip("triton")
    from quantdllm_kernels.triton.layout import pack_for_triton
    qw = quantize_weight(torch.randn(256, 4096), bits=3, group_size=128, method="rtn")
    tw = benchmark(pack_for_triton, qw)
    assert tw.plane0.shape == (4096 // 16, 256) and tw.plane1.shape == (4096 // 32, 256)
