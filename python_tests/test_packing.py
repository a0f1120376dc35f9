import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdllm_kernels import pack_codes, unpack_codes
from quantdllm_kernels.packing import packed_words


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("K", [1, 5, 31, 32, 33, 96, 100, 257, 4096])
def test_round_trip(bits, K, gen):
    codes = torch.randint(0, 1 << bits, (7, K), generator=gen)
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.int32 and packed.shape == (7, packed_words(K, bits))
    assert torch.equal(unpack_codes(packed, bits, K), codes)


@settings(max_examples=60, deadline=None)
@given(bits=st.sampled_from([1, 2, 3, 4]), rows=st.integers(1, 4), K=st.integers(1, 300), seed=st.integers(0, 2**31))
def test_round_trip_property(bits, rows, K, seed):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 1 << bits, (rows, K), generator=g)
    assert torch.equal(unpack_codes(pack_codes(codes, bits), bits, K), codes)


def test_leading_dims_and_layout():
    codes = torch.arange(16).repeat(2)  # 0..15, 0..15
    p = pack_codes(codes, 4)
    assert p.tolist() == [0x76543210, 0xFEDCBA98 - 2**32, 0x76543210, 0xFEDCBA98 - 2**32]
    c3 = torch.randint(0, 8, (2, 3, 40))
    assert torch.equal(unpack_codes(pack_codes(c3, 3), 3, 40), c3)


def test_three_bit_is_dense():
    assert packed_words(32, 3) == 3  # 32 codes in 96 bits, no waste
    codes = torch.full((1, 32), 7)
    assert pack_codes(codes, 3).tolist() == [[-1, -1, -1]]


def test_bad_input():
    with pytest.raises(ValueError, match="codes must lie"):
        pack_codes(torch.tensor([0, 4]), 2)
    with pytest.raises(ValueError, match="codes must lie"):
        pack_codes(torch.tensor([-1, 0]), 2)
    with pytest.raises(TypeError, match="integer"):
        pack_codes(torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="bits"):
        pack_codes(torch.tensor([0, 1]), 5)
    with pytest.raises(TypeError, match="bits"):
        pack_codes(torch.tensor([0, 1]), 2.0)
    with pytest.raises(ValueError, match="words per row"):
        unpack_codes(torch.zeros(1, 3, dtype=torch.int32), 2, 64)
    with pytest.raises(TypeError, match="int32"):
        unpack_codes(torch.zeros(1, 4, dtype=torch.int64), 2, 64)
