import pytest
import torch
from torch import nn

from quantdllm_kernels import QuantConfig, QuantLinear, lut_matmul, quantize_model
from quantdllm_kernels.testing import random_mixed_qweight, rel_error

transformers = pytest.importorskip("transformers")
from quantdllm_kernels.testing import tiny_llama as _tiny_llama  # noqa: E402


def tiny_llama(seed=0):
    return _tiny_llama(seed, vocab=256)


def test_from_linear_and_repr(gen):
    lin = nn.Linear(256, 96)
    q = QuantLinear.from_linear(lin, bits=4, group_size=64, method="kmeans")
    x = torch.randn(3, 256, generator=gen)
    assert rel_error(q(x), lin(x)) < 0.1
    r = repr(q)
    for s in ("bits=4", "group_size=64", "lut_kind=table", "effective_bits=8.000"):
        assert s in r
    assert q.bias is not None and torch.equal(q.bias, lin.bias.detach())
    with pytest.raises(ValueError, match="bits"):
        QuantLinear.from_linear(lin, bits=1)
    with pytest.raises(TypeError, match="nn.Linear"):
        QuantLinear.from_linear(nn.Conv1d(2, 2, 1))


def test_module_moves_and_casts(gen):
    q = QuantLinear.from_linear(nn.Linear(128, 32), bits=3, method="binary", lut_dtype=torch.float32)
    q = q.to(torch.bfloat16)
    assert q.qweight.codes.dtype == torch.int32 and q.qweight.lut_dtype == torch.bfloat16
    x = torch.randn(2, 128, generator=gen).to(torch.bfloat16)
    assert q(x).dtype == torch.bfloat16
    assert any(k.endswith("qweight_codes") for k in q.state_dict())


def test_qweight_kept_while_buffers_unchanged(gen):
    """QuantLinear hands out one weight object while its buffers are the same tensors (host time
    per forward), a new one once they are replaced (.to()) or the kept one no longer holds them,
    and never one carrying packs from an earlier forward (they would outlive load_state_dict)."""
    q = QuantLinear.from_linear(nn.Linear(256, 64), bits=4, group_size=128)
    w = q.qweight
    assert q.qweight is w
    w.kernel_packs = {"stale": True}
    assert q.qweight is w and w.kernel_packs is None
    x = torch.randn(2, 256, generator=gen)
    y0 = q(x)
    other = QuantLinear.from_linear(nn.Linear(256, 64), bits=4, group_size=128)
    q.load_state_dict(other.state_dict())  # copies into the same buffers: same object, new values
    assert q.qweight is w
    assert torch.equal(q(x), other(x)) and not torch.equal(q(x), y0)
    w.scale = w.scale.clone()  # the kept weight no longer holds the buffer
    assert q.qweight is not w
    w2 = q.qweight
    q.double()  # buffers replaced
    assert q.qweight is not w2 and q.qweight.scale.dtype == torch.float64


def test_mixed_quantlinear(gen):
    mq = random_mixed_qweight(24, generator=gen)
    q = QuantLinear(mq)
    x = torch.randn(5, mq.in_features, generator=gen)
    assert torch.allclose(q(x), lut_matmul(x, mq))
    assert "mixed[" in repr(q)


@pytest.mark.parametrize("method", ["rtn", "kmeans", "binary"])
def test_quantized_transformers_model_close_to_fp32(method):
    model = tiny_llama()
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(ids).logits
    quantize_model(model, QuantConfig(bits=4, group_size=64, method=method), progress=False, verbose=False)
    names = [n for n, m in model.named_modules() if isinstance(m, QuantLinear)]
    assert len(names) == 2 * 7 and "lm_head" not in names
    assert isinstance(model.lm_head, nn.Linear)
    with torch.no_grad():
        out = model(ids).logits
    assert rel_error(out, ref) < 0.35  # 4-bit g64 through 2 random layers; 2-bit lands near 1.0


def test_error_falls_with_bits_in_model():
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1))
    errs = []
    for bits in (2, 3, 4):
        model = tiny_llama()
        with torch.no_grad():
            ref = model(ids).logits
        quantize_model(model, QuantConfig(bits=bits, group_size=64, method="kmeans"), progress=False, verbose=False)
        with torch.no_grad():
            errs.append(rel_error(model(ids).logits, ref))
    assert errs[0] > errs[1] > errs[2]


def test_include_exclude_and_summary(capsys):
    model = tiny_llama()
    quantize_model(model, QuantConfig(bits=2, group_size=64, include=("*.mlp.*",), exclude=("*.down_proj",)),
                   progress=False)
    q = sorted(n for n, m in model.named_modules() if isinstance(m, QuantLinear))
    assert q == [f"model.layers.{i}.mlp.{p}" for i in range(2) for p in ("gate_proj", "up_proj")]
    err = capsys.readouterr().err
    assert "4 linear layers" in err and "MiB" in err
    assert model.quantdllm_report[0]["effective_bits"] == pytest.approx(2 + 32 / 64, abs=0.01)  # codes + fp16 scale and zero per 64


def test_layers_the_group_does_not_divide_are_kept(capsys):
    model = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 8), nn.Linear(8, 8))
    quantize_model(model, QuantConfig(bits=4, group_size=128, exclude=()), progress=False)
    assert isinstance(model[0], QuantLinear) and isinstance(model[2], nn.Linear)
    assert "kept 2 in full precision" in capsys.readouterr().err


def test_config_validation():
    with pytest.raises(ValueError, match="bits"):
        QuantConfig(bits=5)
    with pytest.raises(ValueError, match="method"):
        QuantConfig(method="awq")
    with pytest.raises(ValueError, match="lut_dtype"):
        QuantConfig(lut_dtype="int8")
    with pytest.raises(TypeError, match="QuantConfig"):
        quantize_model(nn.Linear(4, 4), {"bits": 4})
