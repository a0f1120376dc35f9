"""An LLaDA-architecture masked-diffusion LM: Llama blocks with bidirectional attention.

transformers ships no LLaDA model (the checkpoints come with their own ``modeling_llada.py``), so
this is a small definition whose parameter names match those checkpoints' state dicts
(``model.transformer.wte``, ``.blocks.{i}.q_proj/k_proj/v_proj/attn_out/ff_proj/up_proj/ff_out``,
``.attn_norm``, ``.ff_norm``, ``.ln_f``, the head ``model.transformer.ff_out``), so a real LLaDA
state dict loads with ``load_state_dict``. transformers' building blocks are reused (RMSNorm,
rotary application, the output dataclass); attention is ``F.scaled_dot_product_attention``
without a causal mask. Built from a config with random weights for tests and benchmarks:
``LLaDAConfig.llada_8b()`` is the LLaDA-8B shape.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LLaDAConfig", "LLaDAModelLM"]


@dataclass
class LLaDAConfig:
    d_model: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: Optional[int] = None
    mlp_hidden_size: int = 12288
    vocab_size: int = 126464
    rope_theta: float = 500000.0
    rms_norm_eps: float = 1e-5
    mask_token_id: int = 126336
    max_sequence_length: int = 4096
    init_std: float = 0.02

    @classmethod
    def llada_8b(cls) -> "LLaDAConfig":
        return cls()

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        kv = self.n_kv_heads or self.n_heads
        if self.n_heads % kv:
            raise ValueError(f"n_heads ({self.n_heads}) must be divisible by n_kv_heads ({kv})")
        if not 0 <= self.mask_token_id < self.vocab_size:
            raise ValueError(f"mask_token_id ({self.mask_token_id}) must be a token id < vocab_size ({self.vocab_size})")


def _rms_norm(dim, eps):
    from transformers.models.llama.modeling_llama import LlamaRMSNorm
    return LlamaRMSNorm(dim, eps=eps)


class LLaDABlock(nn.Module):
    def __init__(self, cfg: LLaDAConfig):
        super().__init__()
        d, h = cfg.d_model, cfg.n_heads
        kv = cfg.n_kv_heads or h
        self.n_heads, self.n_kv, self.head_dim = h, kv, d // h
        self.attn_norm = _rms_norm(d, cfg.rms_norm_eps)
        self.ff_norm = _rms_norm(d, cfg.rms_norm_eps)
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, kv * self.head_dim, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.ff_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=False)   # gate
        self.up_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=False)
        self.ff_out = nn.Linear(cfg.mlp_hidden_size, d, bias=False)    # down

    def forward(self, x, cos, sin, attn_mask=None):
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
        B, L, _ = x.shape
        h = self.attn_norm(x)
        q = self.q_proj(h).view(B, L, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, L, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, L, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=False,
                                           enable_gqa=self.n_kv != self.n_heads)
        x = x + self.attn_out(a.transpose(1, 2).reshape(B, L, -1))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class _Transformer(nn.Module):
    def __init__(self, cfg: LLaDAConfig):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.d_model),
            blocks=nn.ModuleList(LLaDABlock(cfg) for _ in range(cfg.n_layers)),
            ln_f=_rms_norm(cfg.d_model, cfg.rms_norm_eps),
            ff_out=nn.Linear(cfg.d_model, cfg.vocab_size, bias=False),
        ))


class LLaDAModelLM(nn.Module):
    """``model(input_ids, attention_mask=None).logits``: (B, L, vocab), every position sees every
    other (no causal mask). ``attention_mask`` (B, L) of 1/0 hides padding keys."""

    def __init__(self, cfg: LLaDAConfig):
        super().__init__()
        self.config = cfg
        self.model = _Transformer(cfg)
        hd = cfg.d_model // cfg.n_heads
        inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        self.register_buffer("inv_freq", inv, persistent=False)
        self.apply(self._init)

    def _init(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.config.init_std)

    @property
    def blocks(self):
        return self.model.transformer.blocks

    def get_output_embeddings(self):
        return self.model.transformer.ff_out

    def get_input_embeddings(self):
        return self.model.transformer.wte

    def _rope(self, L, device, dtype):
        pos = torch.arange(L, device=device, dtype=torch.float32)
        f = torch.outer(pos, self.inv_freq.to(device))
        emb = torch.cat([f, f], -1)
        return emb.cos().to(dtype)[None], emb.sin().to(dtype)[None]

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, **unused):
        from transformers.modeling_outputs import MaskedLMOutput
        tr = self.model.transformer
        x = tr.wte(input_ids)
        cos, sin = self._rope(input_ids.shape[1], x.device, x.dtype)
        mask = None
        if attention_mask is not None:
            mask = attention_mask.bool()[:, None, None, :]
        for blk in tr.blocks:
            x = blk(x, cos, sin, mask)
        return MaskedLMOutput(logits=tr.ff_out(tr.ln_f(x)))
