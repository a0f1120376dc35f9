"""Masked-diffusion generation in the style of LLaDA (Nie et al., 2025), with the timestep passed
to every QuantLinear.

The answer starts as ``gen_length`` mask tokens after the prompt and is filled in
semi-autoregressive blocks of ``block_length``; each block gets ``steps / num_blocks`` denoising
steps. At every step the model predicts all masked positions at once, and of the current block's
masked positions the ``k`` most confident predictions (``remasking="low_confidence"``) or ``k``
random ones (``"random"``) are kept, the rest stay masked; ``k`` spreads the block's masks evenly
over its steps. ``temperature > 0`` samples with Gumbel noise instead of taking the argmax;
``cfg_scale > 0`` turns on classifier-free guidance (the prompt masked out for the unconditional
pass).

The timestep of a sequence at a step is the fraction of its tokens that are masks -- the masking
ratio t the model sees, the quantity the calibration's masked samples and the timestep tables are
indexed by. Each sequence has its own, so a batch mixes timesteps; they reach every QuantLinear
through ``quantdllm_kernels.timestep``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from .timestep_context import timestep

__all__ = ["generate"]


def _pad_prompts(prompt_ids, pad_id: int, device):
    """Left-pad a list of 1-D prompts; returns ids (B, P) and the attention mask or None."""
    if isinstance(prompt_ids, torch.Tensor):
        if prompt_ids.dim() == 1:
            prompt_ids = prompt_ids.unsqueeze(0)
        if prompt_ids.dim() != 2 or prompt_ids.dtype not in (torch.int32, torch.int64):
            raise ValueError("prompt_ids must be integer token ids of shape (P,) or (B, P), or a list of 1-D tensors")
        return prompt_ids.to(device).long(), None
    prompts = [torch.as_tensor(p).reshape(-1).long() for p in prompt_ids]
    if not prompts:
        raise ValueError("prompt_ids is empty")
    P = max(p.numel() for p in prompts)
    ids = torch.full((len(prompts), P), pad_id, dtype=torch.long)
    att = torch.zeros(len(prompts), P, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, P - p.numel():] = p
        att[i, P - p.numel():] = 1
    if bool(att.all()):
        return ids.to(device), None
    return ids.to(device), att.to(device)


def _transfer_counts(n_masked: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, steps): how many masks to fill at each step, n // steps each, the remainder first."""
    base = n_masked // steps
    rem = n_masked % steps
    k = base.unsqueeze(1).repeat(1, steps)
    k += (torch.arange(steps, device=n_masked.device).unsqueeze(0) < rem.unsqueeze(1)).long()
    return k


def _gumbel_argmax(logits: torch.Tensor, temperature: float, generator) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float64)
    g = -torch.log(-torch.log(u.clamp_min(1e-20)))
    return (logits.double() / temperature + g).argmax(-1)


@torch.no_grad()
def generate(model, prompt_ids: Union[torch.Tensor, Sequence[torch.Tensor]], *, gen_length: int = 128,
             steps: int = 128, block_length: Optional[int] = None, mask_token_id: int,
             remasking: str = "low_confidence", temperature: float = 0.0, cfg_scale: float = 0.0,
             pad_token_id: Optional[int] = None, generator: Optional[torch.Generator] = None,
             pass_timestep: bool = True) -> torch.Tensor:
    """Token ids (B, P + gen_length): the (left-padded) prompts followed by the generated tokens.

    ``model(input_ids[, attention_mask]).logits`` must give (B, L, vocab) with bidirectional
    attention (an LLaDA/Dream-style model or a masked-LM head model). ``prompt_ids``: (P,), (B, P),
    or a list of 1-D prompts of different lengths (left-padded with ``pad_token_id``, default the
    mask id, and hidden by an attention mask). ``block_length`` defaults to ``gen_length``;
    ``gen_length`` must be a multiple of it and ``steps`` a multiple of the number of blocks.
    ``pass_timestep=False`` leaves the timestep context alone (an engine that sets it itself)."""
    if remasking not in ("low_confidence", "random"):
        raise ValueError(f"remasking must be 'low_confidence' or 'random', got {remasking!r}")
    block_length = block_length or gen_length
    if gen_length < 1 or block_length < 1 or gen_length % block_length:
        raise ValueError(f"gen_length ({gen_length}) must be a positive multiple of block_length ({block_length})")
    n_blocks = gen_length // block_length
    if steps < n_blocks or steps % n_blocks:
        raise ValueError(f"steps ({steps}) must be a positive multiple of the number of blocks ({n_blocks})")
    steps_per_block = steps // n_blocks
    device = next(model.parameters()).device
    prompt, att = _pad_prompts(prompt_ids, mask_token_id if pad_token_id is None else pad_token_id, device)
    B, P = prompt.shape
    x = torch.cat([prompt, torch.full((B, gen_length), mask_token_id, dtype=torch.long, device=device)], 1)
    if att is not None:
        att = torch.cat([att, torch.ones(B, gen_length, dtype=att.dtype, device=device)], 1)
    is_prompt = torch.zeros_like(x, dtype=torch.bool)
    is_prompt[:, :P] = True
    if att is not None:
        is_prompt &= att.bool()
    real = att.bool() if att is not None else torch.ones_like(x, dtype=torch.bool)

    def logits_of(ids):
        rep = ids.shape[0] // B                   # 2 under classifier-free guidance
        kw = {} if att is None else {"attention_mask": att.repeat(rep, 1)}
        masked = (ids == mask_token_id) & real.repeat(rep, 1)
        t = masked.sum(1).float() / real.repeat(rep, 1).sum(1).float()
        if pass_timestep:
            with timestep(t):
                return model(ids, **kw).logits
        return model(ids, **kw).logits

    for nb in range(n_blocks):
        lo, hi = P + nb * block_length, P + (nb + 1) * block_length
        k_steps = _transfer_counts((x[:, lo:hi] == mask_token_id).sum(1), steps_per_block)
        for i in range(steps_per_block):
            mask = x == mask_token_id
            if cfg_scale > 0:
                un = torch.where(is_prompt, torch.full_like(x, mask_token_id), x)
                both = logits_of(torch.cat([x, un]))
                cond, unc = both[:B], both[B:]
                logits = unc + (cfg_scale + 1) * (cond - unc)
            else:
                logits = logits_of(x)
            logits[..., mask_token_id] = -float("inf")   # a filled position never holds the mask
            x0 = _gumbel_argmax(logits, temperature, generator)
            if remasking == "low_confidence":
                p = torch.softmax(logits.float(), -1)
                conf = torch.gather(p, -1, x0.unsqueeze(-1)).squeeze(-1)
            else:
                conf = torch.rand(x0.shape, generator=generator, device=device)
            conf[:, hi:] = -float("inf")
            x0 = torch.where(mask, x0, x)
            conf = torch.where(mask, conf, torch.full_like(conf, -float("inf")))
            k = k_steps[:, i]
            order = conf.argsort(1, descending=True)
            ranks = torch.empty_like(order).scatter_(1, order, torch.arange(x.shape[1], device=device).expand_as(order))
            take = (ranks < k.unsqueeze(1)) & mask
            x = torch.where(take, x0, x)
    return x
