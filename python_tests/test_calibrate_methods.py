"""GPTQ, weighted k-means, ABMP and per-timestep bias correction (issue 6)."""
import itertools

import pytest
import torch

from quantdllm_kernels import MixedQuantizedWeight, QuantConfig, dequantize, lut_matmul, timestep
from quantdllm_kernels.calibrate import (abmp_quantize, allocate_bits, damped_hessian, gptq_quantize,
                                         quantize_layer, weighted_error)
from quantdllm_kernels.calibrate.timestep_bias import BucketMeans, attach_bias, bias_tables, uniform_boundaries
from quantdllm_kernels.quantizers import kmeans_groups, quantize_weight


def correlated(gen, n_tok=512, K=256, scales=None):
    """Activations with correlated channels and, optionally, per-channel magnitudes."""
    Z = torch.randn(n_tok, K, generator=gen)
    X = Z @ (torch.eye(K) + 0.3 * torch.randn(K, K, generator=gen) / K ** 0.5)
    return X * scales if scales is not None else X


@pytest.mark.parametrize("method", ["rtn", "kmeans"])
@pytest.mark.parametrize("g", [32, 128, 256])
def test_gptq_beats_its_grid(method, g, gen):
    W = torch.randn(48, 256, generator=gen)
    H = damped_hessian(correlated(gen))
    cfg = QuantConfig(bits=2, group_size=g, method=method)
    plain = weighted_error(W, dequantize(quantize_layer(W, H, cfg, torch.float32), torch.float64), H)
    qw = gptq_quantize(W, H, bits=2, group_size=g, method=method, lut_dtype=torch.float32)
    comp = weighted_error(W, dequantize(qw, torch.float64), H)
    assert qw.lut_kind == ("scaled" if method == "rtn" else "table")
    assert comp < 0.9 * plain, (comp, plain)


def test_gptq_dead_channels_and_bad_input(gen):
    W = torch.randn(8, 128, generator=gen)
    X = correlated(gen, K=128)
    X[:, 5] = 0
    H = X.double().T @ X.double()
    H.diagonal().add_(0.01 * H.diagonal().mean())
    H[5, 5] = 0                      # a channel that never fires
    qw = gptq_quantize(W, H, bits=3, group_size=64, lut_dtype=torch.float32)
    assert torch.isfinite(dequantize(qw)).all()
    with pytest.raises(ValueError, match="rtn"):
        gptq_quantize(W, H, bits=2, group_size=64, method="daq")
    with pytest.raises(ValueError, match="positive definite"):
        gptq_quantize(W, -torch.eye(128, dtype=torch.float64), bits=2, group_size=64)


def test_weighted_kmeans_objective_never_increases(gen):
    w = torch.randn(16, 4, 64, generator=gen)
    sw = torch.rand(1, 4, 64, generator=gen) * 10
    prev = float("inf")
    for iters in range(0, 12):
        codes, table = kmeans_groups(w, 2, torch.float32, iters=iters, sample_weight=sw)
        obj = float((sw * (w - torch.gather(table, -1, codes)) ** 2).sum())
        assert obj <= prev + 1e-4 * abs(prev if prev != float("inf") else 0)
        prev = obj


def test_weighted_kmeans_uses_the_hessian_diagonal(gen):
    W = torch.randn(32, 128, generator=gen)
    H = damped_hessian(correlated(gen, K=128, scales=torch.logspace(-1, 1, 128)))
    cfg = QuantConfig(bits=2, group_size=128, method="kmeans")
    weighted = quantize_layer(W, H, cfg, torch.float32)
    plain = quantize_weight(W, bits=2, group_size=128, method="kmeans", lut_dtype=torch.float32)
    diag = torch.diag(torch.diag(H))
    assert weighted_error(W, dequantize(weighted, torch.float64), diag) < \
        weighted_error(W, dequantize(plain, torch.float64), diag)


def test_allocate_bits_is_exact_and_optimal(gen):
    widths = (1, 2, 3)
    for nb in (4, 5, 6):
        costs = torch.rand(nb, 3, generator=gen).sort(dim=1, descending=True).values
        got = allocate_bits(costs, widths, 2.0)
        assert sum(got) == 2 * nb
        best = min((sum(float(costs[b, widths.index(w)]) for b, w in enumerate(c)), c)
                   for c in itertools.product(widths, repeat=nb) if sum(c) == 2 * nb)
        assert abs(sum(float(costs[b, widths.index(w)]) for b, w in enumerate(got)) - best[0]) < 1e-12
    assert sum(allocate_bits(torch.rand(4, 3, generator=gen), widths, 2.5)) == 10
    with pytest.raises(ValueError, match="not reachable exactly"):
        allocate_bits(torch.rand(3, 3, generator=gen), widths, 2.5)
    with pytest.raises(ValueError, match="outside"):
        allocate_bits(torch.rand(2, 3, generator=gen), widths, 3.5)


@pytest.mark.parametrize("method", ["daq", "rtn"])
def test_abmp_exact_budget_and_lower_error(method, gen):
    K, block = 512, 128
    scales = torch.ones(K)
    scales[:block] = 8.0                         # one block that matters much more than the rest
    H = damped_hessian(correlated(gen, K=K, scales=scales))
    W = torch.randn(32, K, generator=gen)
    uni = quantize_layer(W, H, QuantConfig(bits=2, group_size=128, method=method), torch.float32)
    mix = quantize_layer(W, H, QuantConfig(bits=2, group_size=128, method=method, mixed_precision=True,
                                           avg_bits=2.0), torch.float32)
    assert isinstance(mix, MixedQuantizedWeight)
    assert mix.bits == 2.0                       # exactly the budget
    assert sorted(s.in_features for s in mix.segments) != [K]
    assert mix.segments[0].bits == max(s.bits for s in mix.segments)
    e_uni = weighted_error(W, dequantize(uni, torch.float64), H)
    e_mix = weighted_error(W, dequantize(mix, torch.float64), H)
    assert e_mix < e_uni
    x = torch.randn(5, K, generator=gen)
    torch.testing.assert_close(lut_matmul(x, mix, backend="torch"), x @ dequantize(mix).T, rtol=1e-4, atol=1e-4)


def test_abmp_uniform_when_one_width_wins(gen):
    """Equal convex costs: 2 + 2 bits beats 1 + 3, so a plain QuantizedWeight comes back; a 1-bit
    uniform choice still comes back mixed (1-bit exists only as a segment)."""
    from quantdllm_kernels import QuantizedWeight
    W = torch.randn(8, 256, generator=gen)
    costs = torch.tensor([[3.0, 1.0, 0.5], [3.0, 1.0, 0.5]])
    rtn = lambda Ws, Hs, b: quantize_weight(Ws, bits=b, group_size=128, method="rtn")  # noqa: E731
    out = abmp_quantize(W, None, avg_bits=2.0, widths=(1, 2, 3), block=128, probe=None, costs=costs, quantize=rtn)
    assert isinstance(out, QuantizedWeight) and out.bits == 2
    skew = torch.tensor([[1.0, 0.5, 0.4], [9.0, 3.0, 0.1]])        # block 1 gains most from bits
    out = abmp_quantize(W, None, avg_bits=2.0, widths=(1, 2, 3), block=128, probe=None, costs=skew, quantize=rtn)
    assert isinstance(out, MixedQuantizedWeight) and [s.bits for s in out.segments] == [3, 1]
    assert torch.equal(out.perm[:128], torch.arange(128, 256))     # the 3-bit block (block 1) comes first
    ones = abmp_quantize(W, None, avg_bits=1.0, widths=(1, 2), block=128, probe=None, costs=costs[:, :2],
                         quantize=rtn)
    assert isinstance(ones, MixedQuantizedWeight) and ones.bits == 1.0


def test_config_validation():
    with pytest.raises(ValueError, match="gptq"):
        QuantConfig(method="daq", gptq=True)
    with pytest.raises(ValueError, match="avg_bits"):
        QuantConfig(bits=2, mixed_precision=True, avg_bits=3.5)
    with pytest.raises(ValueError, match="mixed_precision"):
        QuantConfig(bits=2, avg_bits=2.5)
    with pytest.raises(ValueError, match="abmp_block"):
        QuantConfig(bits=2, group_size=128, mixed_precision=True, abmp_block=64)
    with pytest.raises(ValueError, match="timestep_buckets"):
        QuantConfig(timestep_buckets=65)
    with pytest.raises(ValueError, match="bias_correction"):
        QuantConfig(bias_correction="mean")
    assert QuantConfig.from_dict(QuantConfig(bits=2, mixed_precision=True, abmp_widths=[1, 2, 3]).to_dict()).abmp_widths == \
        (1, 2, 3)


def test_bias_tables_zero_the_mean_error_per_bucket(gen):
    N, K, T = 24, 128, 4
    W = torch.randn(N, K, generator=gen)
    qw = quantize_weight(W, bits=2, group_size=64, method="rtn", lut_dtype=torch.float32)
    X = torch.randn(12, 10, K, generator=gen) + torch.linspace(-1, 1, 12).view(12, 1, 1)
    t = torch.rand(12, generator=gen)
    bounds = uniform_boundaries(T)
    bucket = torch.searchsorted(bounds, t, right=True)
    fp, q = BucketMeans(T, K, "cpu"), BucketMeans(T, K, "cpu")
    fp.add(X, bucket)
    q.add(X, bucket)
    tb = bias_tables(W, qw, fp, q)
    corrected = attach_bias(qw, tb.float(), bounds)
    for b in range(T):
        sel = bucket == b
        if not sel.any():
            assert tb[b].abs().max() == 0
            continue
        xb = X[sel]
        tt = t[sel].view(-1, 1).expand(-1, 10)
        y = lut_matmul(xb, corrected, timestep=tt, backend="torch")
        assert (xb @ W.T - y).mean((0, 1)).abs().max() < 1e-4
    with pytest.raises(ValueError, match="leading size"):
        fp.add(X[:3], bucket)


transformers = pytest.importorskip("transformers")
from quantdllm_kernels import load_quantized, quantize_model, save_quantized  # noqa: E402
from quantdllm_kernels.testing import tiny_llama  # noqa: E402


def _data(gen):
    return torch.randint(0, 255, (16, 24), generator=gen)


@pytest.mark.parametrize("cfg", [
    dict(method="rtn", gptq=True),
    dict(method="kmeans", gptq=True, mixed_precision=True, avg_bits=3.0, bits=3),
    dict(method="daq", mixed_precision=True, avg_bits=2.0, abmp_block=128, group_size=64, timestep_buckets=4),
    dict(method="rtn", timestep_buckets=3, bias_correction="drift"),
])
def test_pipeline_round_trip(cfg, tmp_path, gen):
    cfg = {"bits": 2, "group_size": 64, "abmp_block": 64, **cfg}
    model = tiny_llama(0, hidden=256, layers=2)
    data = _data(gen)
    quantize_model(model, QuantConfig(**cfg), calib_data=data, mask_token_id=255, progress=False, verbose=False)
    rep = model.quantdllm_report
    assert len(rep) == 14 and all(r["weighted_rel_error"] is not None for r in rep)
    if cfg.get("mixed_precision"):
        # the exact budget holds per layer (layers whose K the block divides)
        assert all(abs(r["bits"] - cfg["avg_bits"]) < 1e-12 for r in rep)
    if cfg.get("timestep_buckets"):
        for r in rep:
            qw = model.get_submodule(r["name"]).qweight
            seg0 = qw.segments[0] if isinstance(qw, MixedQuantizedWeight) else qw
            assert seg0.timestep is not None and seg0.timestep.num_buckets == cfg["timestep_buckets"]
    ids = torch.randint(0, 255, (2, 12), generator=gen)
    with torch.no_grad(), timestep(torch.tensor([0.1, 0.9])):
        y = model(ids).logits
        save_quantized(model, str(tmp_path))
        fresh = load_quantized(tiny_llama(5, hidden=256, layers=2), str(tmp_path))
        torch.testing.assert_close(fresh(ids).logits, y, rtol=0, atol=0)


def test_data_aware_pipeline_is_reproducible(gen):
    data = _data(gen)
    cfg = QuantConfig(bits=2, group_size=64, method="kmeans", gptq=True, mixed_precision=True, abmp_block=64,
                      timestep_buckets=4, seed=3)
    a = quantize_model(tiny_llama(0, hidden=256), cfg, calib_data=data, mask_token_id=255, progress=False,
                       verbose=False)
    b = quantize_model(tiny_llama(0, hidden=256), cfg, calib_data=data, mask_token_id=255, progress=False,
                       verbose=False)
    for (na, ta), (nb, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(ta, tb), na


def test_bias_correction_lowers_masked_nll_error(gen):
    """Per-timestep tables must bring the quantized model's outputs closer to the fp model's on
    masked inputs from the calibration distribution."""
    data = _data(gen)
    ref = tiny_llama(0, hidden=256, layers=2)
    cfgs = dict(bits=2, group_size=64, method="rtn")
    plain = quantize_model(tiny_llama(0, hidden=256, layers=2), QuantConfig(**cfgs), calib_data=data,
                           mask_token_id=255, progress=False, verbose=False)
    corr = quantize_model(tiny_llama(0, hidden=256, layers=2), QuantConfig(timestep_buckets=4, **cfgs),
                          calib_data=data, mask_token_id=255, progress=False, verbose=False)
    t = torch.rand(16, generator=gen)
    ids = torch.where(torch.rand(16, 24, generator=gen) < t[:, None], torch.full_like(data, 255), data)
    with torch.no_grad(), timestep(t):
        y = ref(ids).logits
        e_plain = (plain(ids).logits - y).pow(2).mean()
        e_corr = (corr(ids).logits - y).pow(2).mean()
    assert e_corr < e_plain


def test_data_aware_options_need_data():
    for kw in (dict(gptq=True), dict(mixed_precision=True), dict(timestep_buckets=4)):
        with pytest.raises(ValueError, match="calib_data"):
            quantize_model(tiny_llama(), QuantConfig(**kw))
    with pytest.raises(ValueError, match="mask_token_id"):
        quantize_model(tiny_llama(), QuantConfig(timestep_buckets=4), calib_data=torch.zeros(2, 8, dtype=torch.long))


@pytest.mark.gpu
def test_offloaded_calibration_on_gpu(gen):
    """The model stays on the CPU; blocks visit the GPU one at a time; the result runs on either."""
    model = tiny_llama(0, hidden=256, layers=2)
    data = _data(gen)
    quantize_model(model, QuantConfig(bits=2, group_size=64, method="daq", timestep_buckets=4), calib_data=data,
                   mask_token_id=255, device="cuda", progress=False, verbose=False)
    assert next(model.parameters()).device.type == "cpu"
    assert all(b.device.type == "cpu" for b in model.buffers())
    ids = torch.randint(0, 255, (2, 12), generator=gen)
    with torch.no_grad(), timestep(0.5):
        y_cpu = model(ids).logits
        y_gpu = model.cuda()(ids.cuda()).logits.cpu()
    torch.testing.assert_close(y_gpu, y_cpu, rtol=2e-2, atol=2e-2)


def test_input_groups_follow_shared_inputs():
    """q/k/v share one input, gate/up another; o_proj and down_proj stand alone -- whatever the
    allocator does with freed buffers."""
    from quantdllm_kernels.calibrate.pipeline import _input_groups
    model = tiny_llama(0, hidden=256, layers=1)
    blk = model.model.layers[0]
    lins = {n: m for n, m in blk.named_modules() if isinstance(m, torch.nn.Linear)}
    cache = []

    class Catch(torch.nn.Module):
        def forward(self, *a, **k):
            cache.append((a, k))
            raise RuntimeError("stop")
    model.model.layers[0] = Catch()
    with pytest.raises(RuntimeError, match="stop"), torch.no_grad():
        model(torch.randint(0, 255, (2, 8)))
    model.model.layers[0] = blk
    with torch.no_grad():
        groups = _input_groups(blk, lins, cache)
    assert groups == [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["self_attn.o_proj"],
                      ["mlp.gate_proj", "mlp.up_proj"], ["mlp.down_proj"]]
