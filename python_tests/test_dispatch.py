import os

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


def test_measured_choice_picks_fastest_nearest_point():
    from quantdllm_kernels.dispatch import _measured_rows, measured_choice

    rows = _measured_rows()
    assert rows, "measured_dispatch.json ships with the package"
    r = next(r for r in rows if r["K"] == 4096 and r["N"] == 12288 and r["bits"] == 4 and r["method"] == "rtn")
    assert measured_choice(("cuda", "triton"), 12288, 4096, 4, "scaled", r["M"]) == r["backend"]
    # only one candidate: that one; none measured: None
    assert measured_choice(("triton",), 12288, 4096, 4, "scaled", 3) == "triton"
    assert measured_choice(("nope",), 12288, 4096, 4, "scaled", 3) is None


@pytest.mark.gpu
def test_mixed_weights_use_the_measured_choice(gen):
    """A MixedQuantizedWeight is dispatched like its whole shape at its rounded mean width."""
    from quantdllm_kernels.dispatch import _gpu_name, available_backends, measured_choice, select_backend
    from quantdllm_kernels.testing import random_mixed_qweight
    runnable = [b for b in available_backends() if b != "torch"]
    if len(runnable) < 2:
        pytest.skip("needs two kernel backends")
    qw = random_mixed_qweight(256, [(2, 128), (3, 128), (1, 128)], generator=gen).to("cuda")
    x = torch.randn(32, qw.in_features, device="cuda", dtype=torch.float16)
    want = measured_choice(tuple(runnable), qw.out_features, qw.in_features, 2, qw.segments[0].lut_kind, 32,
                           _gpu_name(x.device))
    assert select_backend(qw, x).name == want


def test_dispatch_table_takes_each_backends_latest_measurement(tmp_path, monkeypatch):
    # a kernel that got slower must lose the slot it won with an older version
    import json
    import sys
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    sys.modules.pop("make_dispatch_table", None)
    import make_dispatch_table

    def result(path, rows):
        rows = [{"series": s, "shape": [4096, 12288], "M": 64, "us": us} for s, us in rows]
        path.write_text(json.dumps({"device": "gpu", "rows": rows}))
        return str(path)

    old = result(tmp_path / "old.json", [("cuda-w4-rtn", 60.0), ("triton-w4-rtn", 90.0)])
    new = result(tmp_path / "new.json", [("cuda-w4-rtn", 95.0), ("fp16-cublas", 50.0)])
    out = tmp_path / "table.json"
    make_dispatch_table.main([old, new], out=str(out))
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["backend"], row["us"], row["device"]) == ("triton", 90.0, "gpu")


def test_dispatch_prefers_the_running_gpus_measurements(tmp_path):
    """Rows of the GPU model in use decide where it measured the kind at a shape within 2x; other
    GPUs' rows serve where it did not; a table of one's own replaces the packaged one and a bad one is refused on load."""
    import json
    from quantdllm_kernels import load_dispatch_table
    from quantdllm_kernels.dispatch import _measured_rows, measured_choice

    def row(device, backend, M):
        return {"device": device, "K": 4096, "N": 12288, "bits": 4, "method": "rtn", "M": M, "backend": backend,
                "us": 1.0}
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"rows": [row("GPU A", "cuda", 1), row("GPU B", "triton", 1),
                                         row("GPU B", "triton", 64)]}))
    try:
        assert load_dispatch_table(str(path)) == 3
        names = ("cuda", "triton")
        assert measured_choice(names, 12288, 4096, 4, "scaled", 1, "GPU A") == "cuda"
        assert measured_choice(names, 12288, 4096, 4, "scaled", 1, "GPU B") == "triton"
        # GPU A's only row wins over GPU B's nearer M = 64 row: same-GPU rows are used alone
        assert measured_choice(names, 12288, 4096, 4, "scaled", 64, "GPU A") == "cuda"
        # an unmeasured GPU (or the CPU) takes the nearest row of any GPU
        assert measured_choice(names, 12288, 4096, 4, "scaled", 64, "GPU C") == "triton"
        assert measured_choice(names, 12288, 4096, 4, "scaled", 1) in names
        # GPU A has no table-kind (kmeans) row: GPU B's rows of that kind serve it
        kinds = tmp_path / "kinds.json"
        kinds.write_text(json.dumps({"rows": [row("GPU A", "cuda", 1), dict(row("GPU B", "triton", 1), method="kmeans")]}))
        assert load_dispatch_table(str(kinds)) == 2
        assert measured_choice(names, 12288, 4096, 4, "table", 1, "GPU A") == "triton"
        assert measured_choice(names, 12288, 4096, 4, "scaled", 1, "GPU A") == "cuda"
        # GPU A measured only (4096, 12288): at a shape more than 2x away, (4096, 4096) and the
        # transposed (12288, 4096), GPU B's row of that shape decides
        shapes = tmp_path / "shapes.json"
        shapes.write_text(json.dumps({"rows": [row("GPU A", "cuda", 32), dict(row("GPU B", "triton", 32), N=4096),
                                               dict(row("GPU B", "triton", 32), N=4096, K=12288)]}))
        assert load_dispatch_table(str(shapes)) == 3
        assert measured_choice(names, 12288, 4096, 4, "scaled", 32, "GPU A") == "cuda"
        assert measured_choice(names, 14336, 4096, 4, "scaled", 32, "GPU A") == "cuda"   # within 2x: own rows
        assert measured_choice(names, 4096, 4096, 4, "scaled", 32, "GPU A") == "triton"
        assert measured_choice(names, 4096, 12288, 4, "scaled", 32, "GPU A") == "triton"
        assert load_dispatch_table(str(path)) == 3
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"rows": [{"K": 1}]}))
        with pytest.raises(ValueError, match="lacks"):
            load_dispatch_table(str(bad))
        assert len(_measured_rows()) == 3   # the good table stays in force
    finally:
        load_dispatch_table(None)
    rows = _measured_rows()
    assert rows and all(r["device"] for r in rows)   # the packaged table names its GPU on every row


def test_lut_sets_under_a_timestep_go_to_triton(gen, monkeypatch):
    """Per-bucket LUT sets with a timestep pick Triton (it fuses them; CUDA falls back, H200 data),
    whatever the table says; without a timestep, or without LUT sets, the table decides."""
    from quantdllm_kernels import TimestepTables, dispatch
    from quantdllm_kernels.testing import random_lut_sets

    class Fake(dispatch.Backend):
        def __init__(self, name):
            self.name = name

        def availability(self):
            return True, ""

        def can_implement(self, qw, x):
            return True, ""

    dispatch._ensure_loaded()
    for name in ("cuda", "triton"):
        monkeypatch.setitem(dispatch._REGISTRY, name, Fake(name))
    monkeypatch.setattr(dispatch, "_AVAILABLE", ["cuda", "triton", "torch"])
    monkeypatch.setattr(dispatch, "measured_choice", lambda *a, **k: "cuda")
    qw = random_qweight(16, 64, bits=2, group_size=32, generator=gen)
    x = torch.randn(3, 64, generator=gen)
    bounds = torch.tensor([0.5])
    with_sets = qw.with_timestep_tables(TimestepTables(bounds, luts=random_lut_sets(qw, 2, generator=gen)))
    bias_only = qw.with_timestep_tables(TimestepTables(bounds, bias=torch.randn(2, 16, generator=gen).half()))
    assert dispatch.select_backend(with_sets, x, timestep=0.3).name == "triton"
    assert dispatch.select_backend(with_sets, x).name == "cuda"
    assert dispatch.select_backend(bias_only, x, timestep=0.3).name == "cuda"


def test_wgmma_range_starts_by_shape(monkeypatch):
    """lut_mma / lut_wgmma split (CPU: the rule only; the GPU routing test runs the kernels)."""
    from quantdllm_kernels.backends import cuda_backend as cb
    monkeypatch.delenv("QUANTDLLM_WGMMA_MIN_M", raising=False)
    assert cb._wgmma_min_m(4096, 12288, 4) == 33
    assert cb._wgmma_min_m(4096, 12288, 2) == 33
    assert cb._wgmma_min_m(12288, 4096, 3) == 48
    assert cb._wgmma_min_m(12288, 4096, 4) == 48
    assert cb._wgmma_min_m(4096, 4096, 3) == 25
    assert cb._wgmma_min_m(4096, 4096, 4) == 25
    assert cb._wgmma_min_m(4096, 4096, 2) == 33
    assert cb._wgmma_min_m(4096, 126464, 2) == cb.GEMV_MAX_M + 1
    monkeypatch.setenv("QUANTDLLM_WGMMA_MIN_M", "65")
    assert cb._wgmma_min_m(4096, 126464, 4) == 65
