"""Helpers for tests and benchmarks: random weights of every format, tolerances from the math."""
from __future__ import annotations

import math
from typing import Optional

import torch

from .format import _LUT_FIELDS, MixedQuantizedWeight, QuantizedWeight
from .packing import pack_codes

__all__ = ["random_qweight", "random_mixed_qweight", "random_lut_sets", "matmul_tolerance", "kernel_tolerance",
           "exact_matmul", "rel_error", "KERNEL_TEST_FORMATS", "assert_graph_replay_follows_timestep"]

# (lut_kind, extra random_qweight args) every kernel backend is tested on: affine-style scaled,
# scaled without zero, per-row codebook, table, binary
KERNEL_TEST_FORMATS = [("scaled", {}), ("scaled", {"zero": False}), ("scaled", {"per_row_codebook": True}),
                       ("table", {}), ("binary", {})]


def rtn_qweight(N: int, K: int, bits: int, group_size: Optional[int], dtype: torch.dtype,
                generator: torch.Generator, in_scale: bool = False, device: str = "cuda") -> QuantizedWeight:
    """A round-to-nearest weight (the affine `scaled` kind the tensor-core paths take) from a random
    normal matrix, optionally with a random positive in_scale, on ``device``."""
    from .quantizers import quantize_weight

    qw = quantize_weight(torch.randn(N, K, generator=generator), bits=bits, group_size=group_size, method="rtn",
                         lut_dtype=dtype)
    if in_scale:
        qw = qw._replace(in_scale=(torch.rand(K, generator=generator) + 0.5).to(dtype))
    return qw.to(device)


def random_qweight(N: int, K: int, *, bits: int = 4, lut_kind: str = "scaled", group_size: Optional[int] = 128,
                   lut_dtype: torch.dtype = torch.float16, in_scale: bool = False, per_row_codebook: bool = False,
                   zero: bool = True, device="cpu", generator: Optional[torch.Generator] = None) -> QuantizedWeight:
    """A QuantizedWeight with random codes and random, non-degenerate LUT fields (never zeros)."""
    g = K if group_size is None else group_size
    G, E = K // g, 1 << bits
    gen = generator

    def rnd(*shape, lo=-1.0, hi=1.0):
        return (torch.rand(*shape, generator=gen) * (hi - lo) + lo)

    codes = torch.randint(0, E, (N, K), generator=gen)
    f = {}
    if lut_kind == "table":
        f["table"] = rnd(N, G, E) * 0.1
    elif lut_kind == "scaled":
        f["codebook"] = rnd(N, E) if per_row_codebook else torch.linspace(-1, 1, E) + rnd(E, lo=-0.05, hi=0.05)
        f["scale"] = rnd(N, G, lo=0.01, hi=0.1)
        if zero:
            f["zero"] = rnd(N, G, lo=-0.05, hi=0.05)
    elif lut_kind == "binary":
        f["alpha"] = rnd(N, G, bits, lo=0.005, hi=0.08)
        f["mu"] = rnd(N, G, lo=-0.02, hi=0.02)
    else:
        raise ValueError(f"unknown lut_kind {lut_kind!r}")
    f = {k: v.to(device=device, dtype=lut_dtype) for k, v in f.items()}
    ins = rnd(K, lo=0.5, hi=2.0).to(device=device, dtype=lut_dtype) if in_scale else None
    return QuantizedWeight(bits=bits, group_size=g, in_features=K, codes=pack_codes(codes, bits).to(device),
                           lut_kind=lut_kind, in_scale=ins, **f)


def random_lut_sets(qw: QuantizedWeight, T: int, fields=None, generator: Optional[torch.Generator] = None):
    """Per-bucket LUT sets for ``TimestepTables(luts=...)``: each of ``fields`` (default: every LUT
    field the weight holds) as T perturbed copies (bucket b scaled by 1 + 0.25 b, plus noise),
    different enough that a kernel using the wrong bucket fails a tolerance check."""
    names = fields or [f for f in _LUT_FIELDS if getattr(qw, f) is not None]
    out = {}
    for name in names:
        base = getattr(qw, name).float().cpu()
        noise = torch.rand((T,) + tuple(base.shape), generator=generator) * 0.1 - 0.05
        out[name] = torch.stack([base * (1 + 0.25 * b) for b in range(T)]).add_(noise * base.abs().mean()) \
            .to(device=qw.device, dtype=getattr(qw, name).dtype)
    return out


def random_mixed_qweight(N: int, widths=((1, 64), (2, 128), (3, 64)), *, lut_kind="binary", group_size=32,
                         lut_dtype=torch.float16, device="cpu", generator=None) -> MixedQuantizedWeight:
    """A MixedQuantizedWeight of segments (bits, K_s) over a random permutation of input channels."""
    segs = [random_qweight(N, k, bits=b, lut_kind=lut_kind, group_size=group_size, lut_dtype=lut_dtype,
                           device=device, generator=generator) for b, k in widths]
    K = sum(k for _, k in widths)
    perm = torch.randperm(K, generator=generator).to(device)
    return MixedQuantizedWeight(perm, segs)


def matmul_tolerance(out_dtype: torch.dtype, K: int, acc_dtype: torch.dtype = torch.float32) -> float:
    """Bound on ||y - y_exact|| / ||y_exact|| for y = x @ W.T accumulated in ``acc_dtype`` and
    rounded to ``out_dtype``: one rounding of the output (<= eps/2, we allow eps) plus the
    accumulation's random-walk error (~ sqrt(K) * eps_acc, we allow 4x)."""
    return torch.finfo(out_dtype).eps + 4 * torch.finfo(acc_dtype).eps * math.sqrt(K)


def kernel_tolerance(dtype: torch.dtype, K: int) -> float:
    """``matmul_tolerance`` plus one rounding of each dequantized weight to the activation dtype
    (kernels that feed tensor cores or cuBLAS with fp16/bf16 weights)."""
    return matmul_tolerance(dtype, K) + torch.finfo(dtype).eps


def exact_matmul(x: torch.Tensor, qw, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``x @ W.T + bias`` in float64, from the float64 dequantization of ``qw``."""
    from .reference import dequantize

    y = x.double() @ dequantize(qw, torch.float64).T
    return y + bias.double() if bias is not None else y


def bias_and_timestep_case(qw, M: int, dtype: torch.dtype, generator: Optional[torch.Generator] = None,
                           bounds=(0.5,)):
    """Inputs for a CUDA op call with bias and a per-row timestep-bias table (one bucket per boundary
    plus one), and the float64 answer: ``(x, bias, t, bounds, ts_bias, want)``, all on the GPU."""
    N, K = qw.shape
    bias = torch.randn(N, generator=generator).to(dtype).cuda()
    bounds = torch.tensor(bounds, device="cuda")
    ts_bias = torch.randn(len(bounds) + 1, N, generator=generator).to(dtype).cuda()
    x = torch.randn(M, K, generator=generator).to(dtype).cuda()
    t = torch.rand(M, generator=generator).cuda()
    want = exact_matmul(x, qw, bias) + ts_bias[torch.searchsorted(bounds, t, right=True)].double()
    return x, bias, t, bounds, ts_bias, want


def rel_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    y, ref = y.detach().double(), ref.detach().double()
    if not bool(torch.isfinite(y).all()):
        return float("inf")
    return float((y - ref).norm() / ref.norm().clamp_min(1e-300))


def tiny_llama(seed: int = 0, vocab: int = 256, hidden: int = 128, layers: int = 2):
    """A small random-init Llama (transformers) for tests: no download."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def chain_weight(K: int, bits: int, generator: Optional[torch.Generator] = None) -> QuantizedWeight:
    """A (K, K) RTN weight on the GPU with entries ~ N(0, 1/K): a chain of them keeps x's magnitude."""
    from .quantizers import quantize_weight

    w = torch.randn(K, K, generator=generator) / K ** 0.5
    return quantize_weight(w, bits=bits, group_size=128, method="rtn", lut_dtype=torch.float16).to("cuda")


def capture_graph(fn, warmups: int = 1):
    """``(graph, output)``: ``fn()`` run ``warmups`` times on a side stream (tuning, compiling and
    allocating outside the capture), then captured once; replay the graph after writing new inputs
    in place into the tensors ``fn`` reads."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warmups):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = fn()
    return g, out


def assert_chain_matches(run, qws, M: int, generator: Optional[torch.Generator] = None, tol: float = 5e-3) -> None:
    """Launches that each read the previous one's output (``x = run(x, i)`` for each weight i of
    ``qws``, fp16, nothing between them), eagerly and replayed from a CUDA graph with new inputs,
    against the float64 reference rounded to fp16 after each layer: a kernel that reads its input
    before the launch ahead of it has finished (programmatic dependent launches) fails here."""
    def chain(x):
        for i in range(len(qws)):
            x = run(x, i)
        return x

    def chain_ref(x):
        for qw in qws:
            x = exact_matmul(x, qw).half()
        return x.double()

    K = qws[0].in_features
    x = torch.randn(M, K, generator=generator).half().cuda()
    for _ in range(3):
        assert rel_error(chain(x), chain_ref(x)) <= tol
    g, y = capture_graph(lambda: chain(x))
    for _ in range(3):
        x.copy_(torch.randn(M, K, generator=generator).half())
        g.replay()
        torch.cuda.synchronize()
        assert rel_error(y, chain_ref(x)) <= tol


def assert_graph_replay_follows_timestep(lin, M: int, generator: Optional[torch.Generator] = None,
                                         replays: int = 3) -> None:
    """Capture ``lin`` (a CUDA QuantLinear with timestep tables) once with a per-row and a scalar
    device timestep, replay with new x and t written in place, and check each replay against the
    reference: the kernels must read t and pick buckets on the device, with no host sync."""
    from .reference import lut_matmul_reference
    K = lin.in_features
    x = torch.randn(M, K, generator=generator).half().cuda()
    t_rows, t_one = torch.zeros(M, device="cuda"), torch.zeros((), device="cuda")
    g, (y_rows, y_one) = capture_graph(lambda: (lin(x, timestep=t_rows), lin(x, timestep=t_one)), warmups=2)
    qw = lin.qweight
    for _ in range(replays):
        x.copy_(torch.randn(M, K, generator=generator).half())
        t_rows.copy_(torch.rand(M, generator=generator))
        t_one.fill_(float(torch.rand(1, generator=generator)))
        g.replay()
        torch.cuda.synchronize()
        for y, t in ((y_rows, t_rows), (y_one, t_one)):
            err = rel_error(y, lut_matmul_reference(x.double(), qw, timestep=t))
            assert err <= kernel_tolerance(torch.float16, K), (M, t, err)
