import pytest
import torch

import quantdllm_kernels as qd
from quantdllm_kernels import QuantLinear, TimestepTables, lut_matmul, set_timestep, timestep, timestep_lookup
from quantdllm_kernels.testing import random_qweight


@pytest.fixture
def layer(gen):
    qw = random_qweight(12, 64, bits=2, lut_kind="scaled", group_size=32, lut_dtype=torch.float32, generator=gen)
    tt = TimestepTables(torch.tensor([0.25, 0.5, 0.75]), bias=torch.randn(4, 12, generator=gen))
    return QuantLinear(qw.with_timestep_tables(tt)), qw, tt


def test_context_reaches_layers(layer, gen):
    q, qw, tt = layer
    x = torch.randn(3, 64, generator=gen)
    base = lut_matmul(x, qw)
    assert torch.equal(q(x), base)  # no timestep in force: tables unused
    with timestep(0.6):
        y = q(x)
        with timestep(torch.tensor([0.0, 0.25, 0.99])):  # nested, per row
            y_rows = q(x)
        assert torch.equal(q(x), y)  # inner context restored
    assert torch.allclose(y, base + tt.bias[2])
    assert torch.allclose(y_rows, base + tt.bias[[0, 1, 3]])
    assert torch.equal(q(x), base) and qd.current_timestep() is None


def test_persistent_tensor_updated_in_place(layer, gen):
    q, qw, tt = layer
    x = torch.randn(2, 64, generator=gen)
    t = torch.zeros(2)
    set_timestep(t)
    try:
        y0 = q(x)
        t.copy_(torch.tensor([0.9, 0.3]))  # an engine updates the buffer between graph replays
        y1 = q(x)
        with timestep(0.1):  # a context overrides the default
            assert torch.allclose(q(x), lut_matmul(x, qw) + tt.bias[0])
    finally:
        set_timestep(None)
    assert torch.allclose(y0, lut_matmul(x, qw) + tt.bias[0])
    assert torch.allclose(y1, lut_matmul(x, qw) + tt.bias[[3, 1]])


def test_timestep_lookup_op_and_edges(gen):
    table = torch.randn(4, 3, generator=gen)
    bounds = torch.tensor([0.25, 0.5, 0.75])
    t = torch.tensor([0.0, 0.25, 0.2499, 0.5, 0.75, 1.0])
    out = timestep_lookup(table, t, bounds)
    assert torch.equal(out, table[[0, 1, 0, 2, 3, 3]])  # boundary value goes to the upper bucket
    assert torch.equal(timestep_lookup(table, 0.6, bounds), table[2])
    assert hasattr(torch.ops.quantdllm, "timestep_lookup")
    torch.library.opcheck(torch.ops.quantdllm.timestep_lookup.default, (table, t, bounds))


@pytest.mark.gpu
def test_timestep_lookup_replays_in_a_cuda_graph(gen):
    """The public wrapper does not synchronise (a NaN check of GPU boundaries did): it captures,
    and a replay follows t changed in place."""
    from quantdllm_kernels.timing import capture_graph
    table = torch.randn(4, 5, generator=gen).cuda()
    bounds = torch.tensor([0.25, 0.5, 0.75]).cuda()
    t = torch.tensor([0.1, 0.9]).cuda()
    out = {}
    g = capture_graph(lambda: out.__setitem__("y", timestep_lookup(table, t, bounds)))
    t.copy_(torch.tensor([0.6, 0.3]))
    g.replay()
    assert torch.equal(out["y"], table[[2, 1]])


def test_bad_timesteps(layer, gen):
    q, _, _ = layer
    with pytest.raises(TypeError, match="timestep must be"):
        with timestep("late"):
            pass
    with pytest.raises(TypeError, match="timestep must be"):
        set_timestep(True)
    with pytest.raises(ValueError, match="timestep must be a scalar"):
        with timestep(torch.rand(5)):
            q(torch.randn(3, 64))
    with pytest.raises(ValueError, match="buckets"):
        timestep_lookup(torch.randn(3, 2), 0.5, torch.tensor([0.25, 0.5, 0.75]))


def test_per_sequence_timestep_broadcasts_over_tokens(layer, gen):
    """t of shape (B,) for x (B, L, K): one timestep per sequence, every token of it."""
    layer = layer[0]
    x = torch.randn(3, 5, layer.in_features, generator=gen)
    t = torch.tensor([0.05, 0.5, 0.95])
    y = layer(x, timestep=t)
    torch.testing.assert_close(y, layer(x, timestep=t.view(3, 1).expand(3, 5)), rtol=0, atol=0)
    with timestep(t):
        torch.testing.assert_close(layer(x), y, rtol=0, atol=0)
    with pytest.raises(ValueError, match="prefix"):
        layer(x, timestep=torch.rand(4))
