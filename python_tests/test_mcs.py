import pytest
import torch

from quantdllm_kernels.calibrate.mcs import masked_calibration_batches


def test_masked_fraction_follows_t(gen):
    ids = torch.randint(0, 1000, (64, 256), generator=gen)
    batches = masked_calibration_batches(ids, mask_token_id=1000, batch_size=16, seed=3)
    t = torch.cat([b["timestep"] for b in batches])
    frac = torch.cat([(b["input_ids"] == 1000).float().mean(1) for b in batches])
    assert t.shape == (64,) and bool((t > 0).all()) and bool((t <= 1).all())
    assert float((frac - t).abs().max()) < 0.15  # binomial(256, t) spread
    assert abs(float((frac - t).mean())) < 0.02
    unmasked = torch.cat([b["input_ids"] for b in batches]) != 1000
    assert torch.equal(torch.cat([b["input_ids"] for b in batches])[unmasked], ids[unmasked])


def test_stratified_buckets_and_reproducible(gen):
    ids = torch.randint(0, 50, (40, 32), generator=gen)
    a = masked_calibration_batches(ids, mask_token_id=99, buckets=4, seed=1)
    b = masked_calibration_batches(ids, mask_token_id=99, buckets=4, seed=1)
    t = torch.cat([x["timestep"] for x in a])
    assert torch.bincount((t * 4).ceil().long() - 1, minlength=4).tolist() == [10, 10, 10, 10]
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(a, b))


def test_inputs_without_mask_token_and_formats(gen):
    seqs = [torch.randint(0, 9, (40,), generator=gen) for _ in range(5)]
    out = masked_calibration_batches(seqs, seq_len=32, n=3, batch_size=2)
    assert [b["input_ids"].shape for b in out] == [(2, 32), (1, 32)] and "timestep" not in out[0]
    dicts = masked_calibration_batches([{"input_ids": torch.ones(1, 8, dtype=torch.long)}], mask_token_id=0)
    assert dicts[0]["input_ids"].shape == (1, 8)
    with pytest.raises(ValueError, match="input_ids"):
        masked_calibration_batches([{"x": 1}])
