"""Build ``quantdllm_kernels/measured_dispatch.json`` from benchmark JSON files: for every GPU model
and measured (K, N, bits, method, M), the fastest of our backends. ``lut_matmul(backend=None)``
reads it to pick a backend by measurement rather than by a fixed priority, from the rows of the
GPU it runs on where that GPU was measured.

    python benchmarks/make_dispatch_table.py OLDER.json ... NEWER.json
    python benchmarks/make_dispatch_table.py --out my_table.json results/kernels_*.json
        # then quantdllm_kernels.load_dispatch_table("my_table.json"), or QUANTDLLM_DISPATCH_TABLE

Files are read in order and a later file's time for a (GPU, shape, bits, method, M, backend)
replaces an earlier one: a kernel that changed is judged by its latest measurement, not its best.
``FILE!SERIES,SERIES`` reads FILE without those series: a series timed on one backend only (say
cuda-w3-rtn, with no Triton 3-bit in the run) would otherwise decide its rows alone on that GPU.
"""
import argparse
import json
import os

from bench_kernels import parse_series

OUT = os.path.join(os.path.dirname(__file__), "..", "quantdllm_kernels", "measured_dispatch.json")


def main(paths, out=OUT):
    latest = {}  # (device, K, N, bits, method, M) -> {backend: us}, later files replacing earlier ones
    devices = set()
    for p in paths:
        p, _, skip = p.partition("!")
        skip = set(filter(None, skip.split(",")))
        res = json.load(open(p))
        device = res["device"]
        devices.add(device)
        for r in res["rows"]:
            if r["series"].split("-")[0] not in ("cuda", "triton") or r["series"] in skip:
                continue
            backend, bits, method, variant = parse_series(r["series"])
            if variant:
                continue
            key = (device, r["shape"][0], r["shape"][1], bits, method, r["M"])
            latest.setdefault(key, {})[backend] = r["us"]
    best = {key: min((us, b) for b, us in by_backend.items()) for key, by_backend in latest.items()}
    rows = [{"device": k[0], "K": k[1], "N": k[2], "bits": k[3], "method": k[4], "M": k[5], "backend": b,
             "us": round(us, 2)} for k, (us, b) in sorted(best.items())]
    with open(out, "w") as fh:
        json.dump({"devices": sorted(devices), "sources": [os.path.basename(p) for p in paths], "rows": rows}, fh,
                  indent=0)
    print(f"{len(rows)} entries -> {os.path.normpath(out)}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="dispatch table from benchmark results (oldest first)")
    ap.add_argument("results", nargs="+", help="bench_kernels.py JSON files, oldest first")
    ap.add_argument("--out", default=OUT, help="where to write the table (default: the packaged one)")
    a = ap.parse_args()
    main(a.results, out=a.out)
