"""GPU timing shared by the Triton tuner and the benchmarks."""
from __future__ import annotations

import torch


def capture_graph(fn) -> "torch.cuda.CUDAGraph":
    """A CUDA graph of one call of ``fn`` (warmed up on a side stream first, as capture requires)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g


def median_ms(fn, rep_ms: float = 15, warmup_ms: float = 3, graph: bool = True):
    """Median milliseconds of ``fn`` (L2 flushed between repetitions by ``do_bench``): of a
    CUDA-graph replay when ``graph`` and the call can be captured (launch overhead excluded),
    else of eager calls. Returns (ms, used_graph)."""
    from triton.testing import do_bench

    fn()
    torch.cuda.synchronize()
    if graph:
        try:
            g = capture_graph(fn)
            return do_bench(g.replay, warmup=warmup_ms, rep=rep_ms, return_mode="median"), True
        except Exception:
            pass
    return do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median"), False
