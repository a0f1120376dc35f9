import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from quantdllm_kernels import (CheckpointError, QuantConfig, QuantLinear, TimestepTables, load_quantized,
                               quantize_model, save_quantized)
from quantdllm_kernels.checkpoint import MANIFEST, TENSORS
from quantdllm_kernels.testing import random_mixed_qweight


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(128, 256), nn.GELU(), nn.Linear(256, 128), nn.LayerNorm(128), nn.Linear(128, 64))


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def saved(tmp_path, gen):
    model = make_model()
    quantize_model(model, QuantConfig(bits=3, group_size=64, method="binary", exclude=("4",)),
                   progress=False, verbose=False)
    # exercise timestep tables and a mixed-precision layer in the checkpoint
    qw = model[0].qweight.with_timestep_tables(TimestepTables(torch.tensor([0.3, 0.7]), bias=torch.randn(3, 256)))
    model[0] = QuantLinear(qw, model[0].bias)
    model[2] = QuantLinear(random_mixed_qweight(128, widths=((1, 64), (2, 64), (3, 128)), generator=gen))
    save_quantized(model, str(tmp_path))
    return model, tmp_path


def test_round_trip_identical(saved, gen):
    model, d = saved
    fresh = make_model(seed=123)  # different random weights: everything must come from the checkpoint
    load_quantized(fresh, str(d))
    assert isinstance(fresh[0], QuantLinear) and isinstance(fresh[2], QuantLinear) and isinstance(fresh[4], nn.Linear)
    assert same_state(fresh.state_dict(), model.state_dict())
    x = torch.randn(5, 128, generator=gen)
    assert torch.equal(fresh(x), model(x))
    assert torch.equal(fresh[0](x, timestep=0.5), model[0](x, timestep=0.5))
    assert fresh.quantdllm_config == model.quantdllm_config
    # loading into an already-quantized model works too
    load_quantized(fresh, str(d))
    assert same_state(fresh.state_dict(), model.state_dict())


def _expect_untouched(d, match):
    victim = make_model(seed=7)
    before = snapshot(victim)
    with pytest.raises(CheckpointError, match=match):
        load_quantized(victim, str(d))
    assert same_state(victim.state_dict(), before)
    assert all(not isinstance(m, QuantLinear) for m in victim.modules())


def test_truncated_file(saved):
    _, d = saved
    p = os.path.join(d, TENSORS)
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) - 100])
    _expect_untouched(d, "truncated")
    # same size in the manifest but corrupted header: safetensors refuses
    m = json.load(open(os.path.join(d, MANIFEST)))
    m["tensors_bytes"] = len(data) - 100
    json.dump(m, open(os.path.join(d, MANIFEST), "w"))
    _expect_untouched(d, "cannot read tensors")


def test_missing_tensor(saved):
    _, d = saved
    p = os.path.join(d, TENSORS)
    t = load_file(p)
    del t["q::0::alpha"]  # layer 0 is binary
    save_file(t, p)
    m = json.load(open(os.path.join(d, MANIFEST)))
    m["tensors_bytes"] = os.path.getsize(p)
    json.dump(m, open(os.path.join(d, MANIFEST), "w"))
    _expect_untouched(d, "layer '0'.*requires field 'alpha'")


def test_shape_mismatch(saved):
    _, d = saved
    wide = nn.Sequential(nn.Linear(128, 255), nn.GELU(), nn.Linear(256, 128), nn.LayerNorm(128), nn.Linear(128, 64))
    before = snapshot(wide)
    with pytest.raises(CheckpointError, match="shape"):
        load_quantized(wide, str(d))
    assert same_state(wide.state_dict(), before)


def test_dense_dtype_mismatch(saved):
    _, d = saved
    victim = make_model().half()
    with pytest.raises(CheckpointError, match="dtype"):
        load_quantized(victim, str(d))


def test_unknown_version_and_foreign_files(saved, tmp_path):
    _, d = saved
    mpath = os.path.join(d, MANIFEST)
    m = json.load(open(mpath))
    m["format_version"] = 99
    json.dump(m, open(mpath, "w"))
    _expect_untouched(d, "unknown format_version 99")
    open(mpath, "w").write("{not json")
    _expect_untouched(d, "not valid JSON")
    json.dump({"format": "something-else"}, open(mpath, "w"))
    _expect_untouched(d, "not a quantdllm manifest")
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_untouched(empty, "not a quantdllm checkpoint")


def test_save_requires_quantized_model(tmp_path):
    with pytest.raises(ValueError, match="no QuantLinear"):
        save_quantized(make_model(), str(tmp_path))
