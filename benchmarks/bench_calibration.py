"""Calibration cost and quality on the LLaDA-8B shape (random init from the config, no download).

A. Time and peak GPU memory of ``quantize_model`` at 2 bits with 128 sequences of 512 tokens,
   the model held on the CPU and its blocks moved to the GPU one at a time. A full 32-layer model
   does not fit in one device call, so a slice of ``--slice`` layers is calibrated and the total
   is extrapolated: catch (embedding pass) + 32 x the measured per-block time. Peak GPU memory
   does not grow with depth (one block on the GPU at a time), so the slice's peak is the model's.
B. The calibration-weighted relative output error of every method at 2, 3, 4 bits (group 128) on
   one LLaDA-8B-shaped block (the seven linears of 4096 x 4096 / 12288 x 4096 / 4096 x 12288),
   averaged over its layers.

Random weights and random-token inputs: the numbers rank the methods and measure cost; accuracy on
real text is the small dLLM's table (benchmarks/dllm/).

    python benchmarks/bench_calibration.py --out $OUT
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

METHODS = [("rtn", {}), ("rtn+gptq", {"method": "rtn", "gptq": True}), ("kmeans", {"method": "kmeans"}),
           ("kmeans+gptq", {"method": "kmeans", "gptq": True}), ("daq", {"method": "daq"})]
MIXED = [("daq+abmp", {"method": "daq", "mixed_precision": True, "avg_bits": 2.0}),
         ("kmeans+gptq+abmp", {"method": "kmeans", "gptq": True, "mixed_precision": True, "avg_bits": 2.0})]


def build(layers, device):
    from quantdllm_kernels import LLaDAConfig, LLaDAModelLM
    cfg = LLaDAConfig.llada_8b()
    cfg.n_layers = layers
    torch.manual_seed(0)
    with torch.device(device):
        return LLaDAModelLM(cfg).half().eval(), cfg


def calib_ids(cfg, n, L):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, cfg.mask_token_id, (n, L), generator=g)


def part_a(args, out):
    from quantdllm_kernels import QuantConfig, quantize_model
    rows = []
    for label, extra in (("daq 2-bit", {}), ("daq+abmp 2.0 + timestep bias T=8",
                                              {"mixed_precision": True, "avg_bits": 2.0, "timestep_buckets": 8})):
        model, cfg = build(args.slice, "cpu")
        data = calib_ids(cfg, 128, 512)
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        qc = QuantConfig(bits=2, group_size=128, method="daq", calib_batch_size=16, **extra)
        quantize_model(model, qc, calib_data=data, mask_token_id=cfg.mask_token_id, device="cuda", progress=True,
                       verbose=False)
        torch.cuda.synchronize()
        total = time.perf_counter() - t0
        layer_s = sum(r["seconds"] for r in model.quantdllm_report)
        per_block = total / args.slice        # upper bound: the catch pass is counted in every block
        row = {"config": label, "slice_layers": args.slice, "slice_seconds": total,
               "quantizer_seconds": layer_s, "peak_gpu_gb": torch.cuda.max_memory_allocated() / 1e9,
               "extrapolated_32_layer_minutes": per_block * 32 / 60,
               "mean_weighted_rel_error": statistics.mean(r["weighted_rel_error"] for r in model.quantdllm_report)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        del model
        torch.cuda.empty_cache()
        out["time_memory"] = rows
        dump(args, out)
        if time.time() - args.t0 > args.budget_s:
            break


def part_b(args, out):
    from quantdllm_kernels import QuantConfig, quantize_model
    runs = [(m, kw, b) for b in (2, 3, 4) for m, kw in METHODS] + [(m, kw, 2) for m, kw in MIXED]
    if args.b_only:
        runs = [r for r in runs if f"{r[0]}:{r[2]}" in args.b_only.split(",")]
    for name, kw, bits in runs:
        if time.time() - args.t0 > args.budget_s:
            print(f"budget reached before {name} {bits}-bit")
            break
        model, cfg = build(1, "cuda")
        data = calib_ids(cfg, args.b_seqs, 512)
        t0 = time.perf_counter()
        quantize_model(model, QuantConfig(bits=bits, group_size=128, calib_batch_size=16, **kw), calib_data=data,
                       mask_token_id=cfg.mask_token_id, progress=False, verbose=False)
        rep = model.quantdllm_report
        row = {"method": name, "bits": bits, "avg_bits": statistics.mean(r["bits"] for r in rep),
               "effective_bits": statistics.mean(r["effective_bits"] for r in rep),
               "weighted_rel_error": statistics.mean(r["weighted_rel_error"] for r in rep),
               "per_layer": {r["name"].split(".")[-1]: r["weighted_rel_error"] for r in rep},
               "seconds": time.perf_counter() - t0}
        print(f"{name:18s} {bits}-bit  rel err {row['weighted_rel_error']:.4f}  eff bits {row['effective_bits']:.3f}"
              f"  {row['seconds']:.1f}s", flush=True)
        del model
        torch.cuda.empty_cache()
        out["methods_llada_block"] = out.get("methods_llada_block", []) + [row]
        dump(args, out)


def dump(args, out):
    with open(os.path.join(args.out, "calibration_llada8b.json"), "w") as f:
        json.dump(out, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--slice", type=int, default=2)
    ap.add_argument("--b-seqs", type=int, default=32)
    ap.add_argument("--parts", default="a,b")
    ap.add_argument("--b-only", default=None, help="method:bits pairs of part B to run, e.g. daq:2,rtn:4")
    ap.add_argument("--budget-s", type=float, default=500)
    args = ap.parse_args()
    args.t0 = time.time()
    out = {"gpu": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d"),
           "calib": "128 x 512 random tokens (A); %d x 512 (B)" % args.b_seqs}
    if "a" in args.parts:
        part_a(args, out)
    if "b" in args.parts:
        part_b(args, out)


if __name__ == "__main__":
    main()
