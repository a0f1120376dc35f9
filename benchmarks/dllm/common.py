"""The small dLLM's data, tokenizer and model config, shared by training and evaluation.

Corpus: the Python 3.11 language and library reference topics that CPython ships as
``pydoc_data.topics`` (part of the standard library of the ``python3.11`` Debian package and of
every CPython build), joined in sorted topic order and committed gzipped here so training and
evaluation see the same bytes on any machine. English technical prose, 466 KB. The last 10% is
held out. Tokens are bytes (0..255); 256 is the mask token.
"""
from __future__ import annotations

import gzip
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus_pydoc_topics_py311.txt.gz")
CHECKPOINT = os.path.join(HERE, "small_dllm.safetensors")
MASK_ID = 256
SEQ_LEN = 256


def model_config():
    from quantdllm_kernels import LLaDAConfig
    return LLaDAConfig(d_model=256, n_layers=4, n_heads=4, mlp_hidden_size=768, vocab_size=264,
                       mask_token_id=MASK_ID, rope_theta=10000.0, max_sequence_length=SEQ_LEN)


def corpus_bytes() -> torch.Tensor:
    with gzip.open(CORPUS, "rb") as f:
        data = f.read()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


def split():
    """(train, held_out) byte tensors: the first 90% and the last 10%."""
    ids = corpus_bytes()
    cut = int(0.9 * ids.numel())
    return ids[:cut], ids[cut:]


def chunks(ids: torch.Tensor, n: int, seq_len: int = SEQ_LEN, seed: int = 0) -> torch.Tensor:
    """``n`` windows of ``seq_len`` at random offsets (seeded): (n, seq_len)."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, ids.numel() - seq_len, (n,), generator=g)
    return torch.stack([ids[s:s + seq_len] for s in start.tolist()])


def tiled(ids: torch.Tensor, seq_len: int = SEQ_LEN) -> torch.Tensor:
    """Non-overlapping windows covering ``ids``: (n, seq_len)."""
    n = ids.numel() // seq_len
    return ids[:n * seq_len].view(n, seq_len)


def load_model(device="cpu", dtype=torch.float32):
    from safetensors.torch import load_file

    from quantdllm_kernels import LLaDAModelLM
    m = LLaDAModelLM(model_config())
    m.load_state_dict({k: v.to(dtype) for k, v in load_file(CHECKPOINT).items()})
    return m.to(device, dtype).eval()
