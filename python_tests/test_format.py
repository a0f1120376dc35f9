import pytest
import torch

from quantdllm_kernels import MixedQuantizedWeight, QuantizedWeight, TimestepTables, pack_codes
from quantdllm_kernels.testing import random_mixed_qweight, random_qweight


def _fields(qw):
    return {f: getattr(qw, f) for f in QuantizedWeight.FIELDS}


def _mk(qw, **changes):
    f = _fields(qw)
    f.update(changes)
    return QuantizedWeight(**f)


@pytest.mark.parametrize("kind", ["table", "scaled", "binary"])
def test_properties(kind, gen):
    qw = random_qweight(48, 256, bits=3, lut_kind=kind, group_size=64, generator=gen)
    assert qw.shape == (48, 256) and qw.num_groups == 4 and qw.lut_dtype == torch.float16
    assert qw.nbytes == sum(t.numel() * t.element_size() for t in qw.tensors().values())
    assert qw.effective_bits == pytest.approx(8 * qw.nbytes / (48 * 256))
    moved = qw.to("cpu")
    assert moved.shape == qw.shape and torch.equal(moved.codes, qw.codes)


def test_effective_bits_match_design_table():
    # DESIGN.md: g=128, fp16 entries. table 4b -> 6.00, binary 4b -> 4.625, table 2b -> 2.50, binary 2b -> 2.375
    K, N = 4096, 64
    assert random_qweight(N, K, bits=4, lut_kind="table").effective_bits == pytest.approx(6.0)
    assert random_qweight(N, K, bits=4, lut_kind="binary").effective_bits == pytest.approx(4.625)
    assert random_qweight(N, K, bits=2, lut_kind="table").effective_bits == pytest.approx(2.5)
    assert random_qweight(N, K, bits=2, lut_kind="binary").effective_bits == pytest.approx(2.375)
    # scaled, row codebook, no zero: 4 + 16/128 + 16*16/4096
    qw = random_qweight(N, K, bits=4, lut_kind="scaled", per_row_codebook=True, zero=False)
    assert qw.effective_bits == pytest.approx(4 + 0.125 + 256 / 4096)


def test_validation_names_the_field(gen):
    qw = random_qweight(8, 128, bits=2, lut_kind="scaled", group_size=32, generator=gen)
    with pytest.raises(ValueError, match="bits"):
        _mk(qw, bits=5)
    with pytest.raises(TypeError, match="bits"):
        _mk(qw, bits=2.0)
    with pytest.raises(ValueError, match="group_size"):
        _mk(qw, group_size=48)
    with pytest.raises(ValueError, match="lut_kind"):
        _mk(qw, lut_kind="fancy")
    with pytest.raises(ValueError, match="codes"):
        _mk(qw, codes=qw.codes[:, :-1])
    with pytest.raises(TypeError, match="codes"):
        _mk(qw, codes=qw.codes.long())
    with pytest.raises(ValueError, match="scale"):
        _mk(qw, scale=qw.scale[:, :-1])
    with pytest.raises(TypeError, match="zero"):
        _mk(qw, zero=qw.zero.float())
    with pytest.raises(TypeError, match="scale"):
        _mk(qw, scale=qw.scale.to(torch.int32))
    with pytest.raises(ValueError, match="codebook"):
        _mk(qw, codebook=torch.ones(5, dtype=torch.float16))
    with pytest.raises(ValueError, match="scale contains NaN"):
        s = qw.scale.clone()
        s[0, 0] = float("nan")
        _mk(qw, scale=s)
    with pytest.raises(ValueError, match="codebook contains NaN or Inf"):
        cb = qw.codebook.clone()
        cb[1] = float("inf")
        _mk(qw, codebook=cb)
    with pytest.raises(ValueError, match="requires field 'scale'"):
        _mk(qw, scale=None)
    with pytest.raises(ValueError, match="'table' is not used"):
        _mk(qw, table=torch.ones(8, 4, 4, dtype=torch.float16))
    with pytest.raises(ValueError, match="in_scale"):
        _mk(qw, in_scale=torch.ones(100, dtype=torch.float16))
    with pytest.raises(ValueError, match="in_scale contains NaN"):
        _mk(qw, in_scale=torch.full((128,), float("nan"), dtype=torch.float16))
    with pytest.raises(ValueError, match="divisible"):
        QuantizedWeight(bits=2, group_size=64, in_features=96, codes=pack_codes(torch.zeros(2, 96, dtype=torch.long), 2),
                        lut_kind="table", table=torch.ones(2, 1, 4))
    if torch.device("meta") != qw.device:
        with pytest.raises(ValueError, match="one device"):
            _mk(qw, scale=qw.scale.to("meta"))


def test_per_row_group_and_fp32_bf16_luts(gen):
    for dt in (torch.float32, torch.bfloat16):
        qw = random_qweight(4, 96, bits=3, lut_kind="table", group_size=None, lut_dtype=dt, generator=gen)
        assert qw.group_size == 96 and qw.num_groups == 1 and qw.lut_dtype == dt


def test_mixed_validation(gen):
    mq = random_mixed_qweight(16, generator=gen)
    assert mq.shape == (16, 256) and mq.bits == pytest.approx((64 + 256 + 192) / 256)
    with pytest.raises(ValueError, match="permutation"):
        MixedQuantizedWeight(torch.zeros(256, dtype=torch.long), mq.segments)
    with pytest.raises(ValueError, match="perm has"):
        MixedQuantizedWeight(mq.perm[:-1], mq.segments)
    with pytest.raises(TypeError, match="perm must be int64"):
        MixedQuantizedWeight(mq.perm.int(), mq.segments)
    other = random_qweight(8, 64, bits=2, lut_kind="binary", group_size=32, generator=gen)
    with pytest.raises(ValueError, match="out_features"):
        MixedQuantizedWeight(torch.randperm(320), list(mq.segments) + [other])


def test_timestep_tables_validation(gen):
    qw = random_qweight(8, 64, bits=2, lut_kind="scaled", group_size=32, generator=gen)
    tt = TimestepTables(torch.tensor([0.25, 0.5, 0.75]), bias=torch.randn(4, 8))
    q2 = qw.with_timestep_tables(tt)
    assert q2.timestep is tt and q2.nbytes > qw.nbytes
    with pytest.raises(ValueError, match="strictly increasing"):
        TimestepTables(torch.tensor([0.5, 0.25]), bias=torch.randn(3, 8))
    with pytest.raises(ValueError, match="buckets"):
        TimestepTables(torch.tensor([0.5]), bias=torch.randn(3, 8))
    with pytest.raises(ValueError, match="NaN"):
        TimestepTables(torch.tensor([0.5]), bias=torch.full((2, 8), float("nan")))
    with pytest.raises(ValueError, match="timestep.bias must have shape"):
        qw.with_timestep_tables(TimestepTables(torch.tensor([0.5]), bias=torch.randn(2, 9)))
    with pytest.raises(ValueError, match="names no LUT field"):
        qw.with_timestep_tables(TimestepTables(torch.tensor([0.5]), luts={"table": torch.randn(2, 8, 2, 4)}))
    with pytest.raises(ValueError, match="luts\\['scale'\\] must have shape"):
        qw.with_timestep_tables(TimestepTables(torch.tensor([0.5]), luts={"scale": torch.randn(2, 8, 3)}))
