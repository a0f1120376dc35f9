"""Kernel benchmark: fp16 cuBLAS vs this package's backends vs peer kernels, one run.

For each (K, N) shape and token count M it times (median, L2 flushed between repetitions by
``triton.testing.do_bench``) both an eager call and a CUDA-graph replay of the same call, keeps
the better, and prints/saves: microseconds, effective bits per weight, bytes moved, % of the
measured HBM bandwidth (a large device copy timed in the same run), TFLOP/s, speedup vs fp16.

    python benchmarks/bench_kernels.py --out benchmarks/results/            # full run (GPU)
    python benchmarks/bench_kernels.py --shapes 4096x4096 --ms 1 32 --quick  # a subset
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import traceback

import torch
import torch.nn.functional as F

SHAPES = [(4096, 4096), (4096, 12288), (12288, 4096), (4096, 126464)]  # (K, N), LLaDA-8B
MS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096]
# our series: "<backend>-w<bits>-<method>[+ts|+ts1|+tslut]" -- rtn gives the affine `scaled` kind, binary
# the any-order kind, kmeans the `table` kind; +ts adds timestep bias tables (per-row t), +ts1 the
# same tables with one scalar t, +tslut per-bucket LUT sets (scalar t): their overhead is the fused
# lookup's cost (issue 5).
OURS = ["cuda-w4-rtn", "cuda-w3-rtn", "cuda-w2-rtn", "cuda-w2-binary", "cuda-w4-kmeans",
        "triton-w4-rtn", "triton-w3-rtn", "triton-w2-rtn", "triton-w2-binary", "triton-w2-kmeans"]
TS_SERIES = ["cuda-w4-rtn+ts", "cuda-w4-rtn+ts1", "cuda-w4-rtn+tslut", "triton-w4-rtn+ts", "triton-w4-rtn+ts1"]


def parse_series(label):
    """(backend, bits, method, timestep variant) of one of our series labels."""
    base, _, variant = label.partition("+")
    backend, w, method = base.split("-")
    return backend, int(w[1:]), method, variant


def with_tables(qw, variant, T=8):
    import quantdllm_kernels as qd
    if not variant:
        return qw
    N = qw.out_features
    bounds = torch.linspace(0, 1, T + 1, device=qw.device)[1:-1]
    bias = torch.randn(T, N, device=qw.device, dtype=qw.lut_dtype) * 1e-3
    luts = None
    if variant == "tslut":
        luts = {"scale": torch.stack([qw.scale * (1 + 0.01 * b) for b in range(T)])}
    return qw.with_timestep_tables(qd.TimestepTables(bounds, bias, luts))


def measure_bandwidth() -> float:
    """Bytes/s of a 1 GiB device-to-device copy (bytes read + written)."""
    from triton.testing import do_bench
    n = 1 << 30
    src = torch.empty(n, dtype=torch.uint8, device="cuda").random_()
    dst = torch.empty_like(src)
    t = do_bench(lambda: dst.copy_(src), warmup=25, rep=200, return_mode="median") * 1e-3
    return 2 * n / t


def time_fn(fn, reps_ms=60) -> dict:
    """Median µs eager and CUDA-graph replay (both with L2 flushed between repetitions)."""
    from quantdllm_kernels.timing import median_ms
    eager = median_ms(fn, reps_ms, 10, graph=False)[0] * 1e3
    g_ms, used_graph = median_ms(fn, reps_ms, 10, graph=True)
    graph_us = g_ms * 1e3 if used_graph else None  # some peers are not capturable
    best = min(t for t in (eager, graph_us) if t is not None)
    return {"us": best, "eager_us": eager, "graph_us": graph_us}


# ---------------------------------------------------------------------------------------- peers
def rtn_int(W, bits, g):
    """Uniform asymmetric codes for the peers: q in [0, 2^b), w ~ (q - zero) * scale."""
    N, K = W.shape
    w = W.float().reshape(N, K // g, g)
    mn, mx = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
    scale = ((mx - mn) / (2**bits - 1)).clamp_min(1e-8)
    q = torch.round((w - mn) / scale).clamp(0, 2**bits - 1)
    return q.reshape(N, K).to(torch.uint8), scale.squeeze(-1), mn.squeeze(-1)


def peer_torch_int4(W, g=128):
    N, K = W.shape
    q, scale, mn = rtn_int(W, 4, g)
    packed = torch._convert_weight_to_int4pack((q[:, ::2] << 4 | q[:, 1::2]).contiguous(), 8)
    # tinygemm: w = (q - 8) * scale + zero  =>  zero = mn + 8 * scale
    sz = torch.stack([scale, mn + 8 * scale], -1).transpose(0, 1).contiguous().to(torch.bfloat16)
    nbytes = packed.numel() * packed.element_size() + sz.numel() * 2
    return (lambda x: torch._weight_int4pack_mm(x, packed, g, sz)), torch.bfloat16, nbytes


def peer_gemlite(W, bits, g=128):
    from gemlite.helper import A16Wn
    q, scale, mn = rtn_int(W, bits, g)
    zeros = (-mn / scale)  # gemlite: w = (q - zero) * scale
    lin = A16Wn(device="cuda:0", dtype=torch.float16).from_weights(q, scale.half(), zeros.half(), bits, g)
    nbytes = sum(t.numel() * t.element_size() for t in lin.state_dict().values() if torch.is_tensor(t))
    return lin, torch.float16, nbytes


def peer_bnb_nf4(W):
    import bitsandbytes as bnb
    N, K = W.shape
    lin = bnb.nn.Linear4bit(K, N, bias=False, compute_dtype=torch.float16, quant_type="nf4")
    lin.weight = bnb.nn.Params4bit(W.half().cpu(), requires_grad=False, quant_type="nf4")
    lin = lin.cuda()
    qs = lin.weight.quant_state
    nbytes = lin.weight.numel() * lin.weight.element_size() + qs.absmax.numel() * qs.absmax.element_size()
    return lin, torch.float16, nbytes


# ---------------------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="*", default=[f"{k}x{n}" for k, n in SHAPES])
    ap.add_argument("--ms", nargs="*", type=int, default=MS)
    ap.add_argument("--ours", nargs="*", default=OURS, help=f"our series; also {TS_SERIES}")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--budget-s", type=float, default=1e9, help="stop starting new shapes after this many seconds")
    ap.add_argument("--reps-ms", type=float, default=60)
    args = ap.parse_args(argv)

    import quantdllm_kernels as qd
    from quantdllm_kernels.backends.triton_backend import pack_for

    t_start = time.time()
    dev = torch.cuda.get_device_name()
    bw = measure_bandwidth()
    date = datetime.date.today().isoformat()
    tag = f"{dev.replace(' ', '_')}_{date}"
    os.makedirs(args.out, exist_ok=True)
    res = {"device": dev, "date": date, "torch": torch.__version__, "hbm_bytes_per_s": bw, "rows": [],
           "peer_errors": {}}
    print(f"device {dev} | measured copy bandwidth {bw / 1e12:.2f} TB/s | torch {torch.__version__}")
    ours = list(args.ours)
    gen = torch.Generator(device="cuda").manual_seed(0)
    for shape in args.shapes:
        if time.time() - t_start > args.budget_s:
            print(f"budget reached: skipping {shape}")
            continue
        K, N = map(int, shape.split("x"))
        W = torch.randn(N, K, device="cuda", generator=gen, dtype=torch.float16) * 0.02
        series = {"fp16-cublas": ((lambda x, W=W: F.linear(x, W)), torch.float16, N * K * 2, 16.0)}
        qcache = {}
        for label in ours:
            backend, bits, method, variant = parse_series(label)
            if backend not in qd.available_backends():
                print(f"  {label}: backend {backend} unavailable here")
                continue
            if (bits, method) not in qcache:
                qcache[bits, method] = qd.quantize_weight(W, bits=bits, group_size=128, method=method,
                                                          lut_dtype=torch.float16)
            qw = with_tables(qcache[bits, method], variant)
            nbytes = pack_for(qw).nbytes if backend == "triton" else qw.nbytes
            series[label] = ((lambda x, qw=qw, b=backend, v=variant: qd.lut_matmul(
                x, qw, backend=b, timestep=(None if not v else _timesteps(x, v)))), torch.float16,
                nbytes, 8 * nbytes / (N * K))
        if not args.no_peers:
            for name, mk in [("torch-int4pack-w4", lambda: peer_torch_int4(W)),
                             ("gemlite-w4", lambda: peer_gemlite(W, 4)), ("gemlite-w2", lambda: peer_gemlite(W, 2)),
                             ("bnb-nf4", lambda: peer_bnb_nf4(W))]:
                try:
                    fn, dt, nb = mk()
                    series[name] = (fn, dt, nb, 8 * nb / (N * K))
                except Exception as e:
                    res["peer_errors"][f"{name}@{shape}"] = f"{type(e).__name__}: {str(e)[:300]}"
                    print(f"  peer {name} unavailable: {type(e).__name__}: {str(e)[:120]}")
        for M in args.ms:
            x16 = torch.randn(M, K, device="cuda", generator=gen, dtype=torch.float16)
            xb = x16.to(torch.bfloat16)
            base = None
            for label, (fn, dt, wbytes, bits) in series.items():
                x = xb if dt == torch.bfloat16 else x16
                try:
                    if label.split("-")[0] in ("triton", "cuda") and "+" not in label:  # correctness guard
                        y = fn(x)
                        ref = (x.float() @ qd.dequantize(series_qw_cache(label, series, fn), torch.float32).T)
                        err = float((y.float() - ref).norm() / ref.norm())
                    else:
                        err = None
                    t = time_fn(lambda: fn(x), args.reps_ms)
                except Exception as e:
                    print(f"  {label} M={M} failed: {type(e).__name__}: {str(e)[:200]}")
                    traceback.print_exc(limit=2)
                    continue
                nbytes = wbytes + M * K * 2 + M * N * 2
                row = {"shape": [K, N], "M": M, "series": label, "bits_per_weight": bits, "bytes": nbytes,
                       "roofline_us": nbytes / bw * 1e6, "pct_hbm": (nbytes / bw * 1e6) / t["us"] * 100,
                       "tflops": 2 * M * N * K / (t["us"] * 1e-6) / 1e12, "rel_err_vs_dequant": err, **t}
                if label == "fp16-cublas":
                    base = t["us"]
                row["speedup_vs_fp16"] = base / t["us"] if base else None
                res["rows"].append(row)
                print_row(row)   # as it goes: a run cut off by its time limit still reports
            del x16, xb
            with open(os.path.join(args.out, f"kernels_{tag}.json"), "w") as fh:   # after every M
                json.dump(res, fh, indent=1)
        del series
        torch.cuda.empty_cache()
    try:
        from quantdllm_kernels.triton.ops import save_tuned_configs
        save_tuned_configs(os.path.join(args.out, f"triton_configs_{tag}.json"))
    except Exception as e:
        print("could not save tuned configs:", e)
    print_table(res)
    return 0


_TS = {}


def _timesteps(x, variant):
    """Per-row timesteps (+ts) or one scalar (+ts1, +tslut), as a persistent device tensor."""
    key = (variant, x.shape[0])
    if key not in _TS:
        _TS[key] = torch.rand(x.shape[0], device=x.device) if variant == "ts" else torch.tensor(0.4, device=x.device)
    return _TS[key]


def series_qw_cache(label, series, fn):
    return fn.__defaults__[0]  # the QuantizedWeight bound in the lambda


def print_table(res, shape=(4096, 12288)):
    rows = [r for r in res["rows"] if tuple(r["shape"]) == shape] or res["rows"]
    print(f"\n{'shape':>12} {'M':>5} {'series':<18} {'us':>9} {'bits':>5} {'%HBM':>6} {'TFLOP/s':>8} {'x fp16':>7}")
    for r in rows:
        print_row(r)


def print_row(r):
    print(f"{r['shape'][0]}x{r['shape'][1]:<7} {r['M']:>5} {r['series']:<18} {r['us']:>9.1f} "
          f"{r['bits_per_weight']:>5.2f} {r['pct_hbm']:>6.1f} {r['tflops']:>8.1f} "
          f"{(r['speedup_vs_fp16'] or float('nan')):>7.2f}")


if __name__ == "__main__":
    sys.exit(main())
