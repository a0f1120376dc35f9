"""Masked-diffusion generation and the LLaDA model definition (issue 7)."""
import pytest
import torch

pytest.importorskip("transformers")

from quantdllm_kernels import (LLaDAConfig, LLaDAModelLM, QuantConfig, QuantLinear, generate,  # noqa: E402
                               quantize_model)
from quantdllm_kernels.timestep_context import current_timestep  # noqa: E402

MASK = 250


def tiny(seed=0, layers=2):
    torch.manual_seed(seed)
    return LLaDAModelLM(LLaDAConfig(d_model=128, n_layers=layers, n_heads=4, mlp_hidden_size=256, vocab_size=256,
                                    mask_token_id=MASK)).eval()


def test_llada_names_and_bidirectional_attention(gen):
    m = tiny()
    names = set(m.state_dict())
    for n in ("model.transformer.wte.weight", "model.transformer.ln_f.weight", "model.transformer.ff_out.weight",
              "model.transformer.blocks.1.attn_out.weight", "model.transformer.blocks.0.ff_proj.weight",
              "model.transformer.blocks.0.up_proj.weight", "model.transformer.blocks.0.ff_out.weight",
              "model.transformer.blocks.0.attn_norm.weight", "model.transformer.blocks.0.ff_norm.weight"):
        assert n in names
    ids = torch.randint(0, 250, (2, 10), generator=gen)
    y = m(ids).logits
    assert y.shape == (2, 10, 256)
    ids2 = ids.clone()
    ids2[:, -1] = (ids2[:, -1] + 1) % 250
    assert not torch.allclose(m(ids2).logits[:, 0], y[:, 0])  # position 0 sees the last token
    assert LLaDAConfig.llada_8b().d_model == 4096 and LLaDAConfig.llada_8b().mask_token_id == 126336
    with pytest.raises(ValueError, match="divisible"):
        LLaDAConfig(d_model=100, n_heads=3)


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_generate_fills_every_mask_and_keeps_the_prompt(remasking, gen):
    m = tiny()
    prompt = torch.randint(0, 250, (3, 7), generator=gen)
    out = generate(m, prompt, gen_length=16, steps=8, block_length=8, mask_token_id=MASK, remasking=remasking,
                   generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 23) and torch.equal(out[:, :7], prompt) and not (out == MASK).any()
    again = generate(m, prompt, gen_length=16, steps=8, block_length=8, mask_token_id=MASK, remasking=remasking,
                     generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_generate_block_order_and_step_counts(gen):
    """With one token per step, the first block is finished before the second one starts."""
    m = tiny()
    seen = []
    m.register_forward_hook(lambda mod, inp, out: seen.append((inp[0] == MASK).clone()))
    generate(m, torch.randint(0, 250, (1, 4), generator=gen), gen_length=8, steps=8, block_length=4,
             mask_token_id=MASK)
    assert len(seen) == 8
    assert [int(s[0, 4:8].sum()) for s in seen[:4]] == [4, 3, 2, 1]
    assert all(int(s[0, 8:].sum()) == 4 for s in seen[:4]) and int(seen[4][0, 4:8].sum()) == 0


def test_generate_passes_per_sequence_timesteps(gen):
    m = tiny()
    quantize_model(m, QuantConfig(bits=4, group_size=128), verbose=False, progress=False)
    assert isinstance(m.model.transformer.blocks[0].q_proj, QuantLinear)
    ts = []
    m.model.transformer.blocks[0].q_proj.register_forward_hook(lambda *a: ts.append(current_timestep().clone()))
    prompts = [torch.randint(0, 250, (n,), generator=gen) for n in (3, 6)]
    out = generate(m, prompts, gen_length=8, steps=4, mask_token_id=MASK, pad_token_id=0)
    assert out.shape == (2, 14) and not (out[:, 6:] == MASK).any()
    assert len(ts) == 4 and ts[0].shape == (2,)
    # sequence 0: 3 real prompt tokens + 8 masks = 8/11; sequence 1: 8/14
    torch.testing.assert_close(ts[0], torch.tensor([8 / 11, 8 / 14]))
    assert torch.all(ts[-1] < ts[0])


def test_generate_with_guidance_and_sampling(gen):
    m = tiny()
    out = generate(m, torch.randint(0, 250, (2, 5), generator=gen), gen_length=8, steps=4, mask_token_id=MASK,
                   cfg_scale=1.0, temperature=0.7, generator=torch.Generator().manual_seed(1))
    assert not (out == MASK).any()


def test_generate_with_a_masked_lm_head_model(gen):
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(0)
    bert = BertForMaskedLM(BertConfig(vocab_size=128, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=128)).eval()
    out = generate(bert, torch.randint(0, 100, (1, 4), generator=gen), gen_length=6, steps=3, mask_token_id=103)
    assert out.shape == (1, 10) and not (out == 103).any()


def test_generate_bad_arguments(gen):
    m = tiny()
    p = torch.randint(0, 250, (1, 4), generator=gen)
    with pytest.raises(ValueError, match="block_length"):
        generate(m, p, gen_length=10, block_length=4, steps=4, mask_token_id=MASK)
    with pytest.raises(ValueError, match="steps"):
        generate(m, p, gen_length=8, block_length=4, steps=3, mask_token_id=MASK)
    with pytest.raises(ValueError, match="remasking"):
        generate(m, p, gen_length=8, steps=4, mask_token_id=MASK, remasking="topk")


def test_llada_calibrates_end_to_end(gen):
    m = tiny(layers=2)
    data = torch.randint(0, 250, (8, 16), generator=gen)
    quantize_model(m, QuantConfig(bits=2, group_size=64, method="daq", timestep_buckets=4), calib_data=data,
                   mask_token_id=MASK, progress=False, verbose=False)
    assert len(m.quantdllm_report) == 14   # the head stays in full precision
    out = generate(m, data[:2, :4], gen_length=8, steps=4, mask_token_id=MASK)
    assert not (out == MASK).any()
