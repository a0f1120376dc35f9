"""Command line: ``python -m quantdllm_kernels`` (console script ``quantdllm-kernels``).

The default run quantizes a small random-weight Llama-style transformer at 4, 3 and 2 bits with
every data-free method and prints effective bits, weight bytes, output error vs fp32 and time.
Nothing is downloaded.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time

import torch

from . import __version__
from .dispatch import available_backends
from .model import QuantConfig, quantize_model
from .quantizers import METHODS


def build_demo_model(hidden: int = 512, layers: int = 4, vocab: int = 2048, seed: int = 0):
    """A small Llama-architecture model with random weights (transformers' LlamaForCausalLM)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
                      num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=512)
    return LlamaForCausalLM(cfg).eval()


def _linear_bytes(model) -> int:
    return sum(m.weight.numel() * m.weight.element_size() for m in model.modules() if isinstance(m, torch.nn.Linear))


def run_demo(args) -> int:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    base = build_demo_model(args.hidden, args.layers, seed=args.seed)
    ids = torch.randint(0, base.config.vocab_size, (2, args.seq), generator=torch.Generator().manual_seed(args.seed + 1))
    with torch.no_grad():
        ref = base(ids).logits.float()
    n_params = sum(p.numel() for p in base.parameters())
    print(f"quantdllm_kernels {__version__} | demo model: Llama-style, {args.layers} layers, hidden {args.hidden}, "
          f"{n_params / 1e6:.1f}M params, random weights | backends: {', '.join(available_backends())}")
    print(f"fp32 linear weights (head excluded from quantization): {_linear_bytes(base) / 2**20:.2f} MiB\n")
    hdr = f"{'method':<8}{'bits':>5}{'eff.bits':>10}{'quant MiB':>11}{'fp16 MiB':>10}{'rel.err':>10}{'quant s':>9}{'fwd ms':>9}"
    print(hdr)
    print("-" * len(hdr))
    for bits in args.bits:
        for method in args.methods:
            model = copy.deepcopy(base)
            t0 = time.perf_counter()
            quantize_model(model, QuantConfig(bits=bits, group_size=args.group_size, method=method,
                                              lut_dtype="float16"), progress=False, verbose=False)
            tq = time.perf_counter() - t0
            rep = model.quantdllm_report
            qbytes = sum(r["bytes_after"] for r in rep)
            fp16_bytes = sum(r["bytes_before"] for r in rep) / 2
            eff = 8 * qbytes / (fp16_bytes / 2) if fp16_bytes else float("nan")
            with torch.no_grad():
                t1 = time.perf_counter()
                out = model(ids).logits.float()
                tf = time.perf_counter() - t1
            err = float((out - ref).norm() / ref.norm())
            print(f"{method:<8}{bits:>5}{eff:>10.3f}{qbytes / 2**20:>11.2f}{fp16_bytes / 2**20:>10.2f}"
                  f"{err:>10.4f}{tq:>9.2f}{tf * 1e3:>9.1f}")
    print("\nrel.err: ||logits_q - logits_fp32|| / ||logits_fp32|| on random token ids; "
          "eff.bits: codes + LUT + scales per weight")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="quantdllm-kernels", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd")
    d = sub.add_parser("demo", help="quantize a small random transformer and report (the default)")
    for q in (p, d):
        q.add_argument("--bits", type=int, nargs="+", default=[4, 3, 2], choices=[2, 3, 4])
        q.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
        q.add_argument("--group-size", type=int, default=128)
        q.add_argument("--hidden", type=int, default=512)
        q.add_argument("--layers", type=int, default=4)
        q.add_argument("--seq", type=int, default=64)
        q.add_argument("--seed", type=int, default=0)
    sub.add_parser("backends", help="list the kernel backends that run here")
    args = p.parse_args(argv)
    if args.cmd == "backends":
        print("\n".join(available_backends()))
        return 0
    return run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
