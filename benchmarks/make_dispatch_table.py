"""Build ``quantdllm_kernels/measured_dispatch.json`` from benchmark JSON files: for every measured
(K, N, bits, method, M), the fastest of our backends. ``lut_matmul(backend=None)`` reads it to pick
a backend by measurement rather than by a fixed priority.

    python benchmarks/make_dispatch_table.py OLDER.json ... NEWER.json

Files are read in order and a later file's time for a (shape, bits, method, M, backend) replaces an
earlier one: a kernel that changed is judged by its latest measurement, not its best ever.
"""
import json
import os
import sys

from bench_kernels import parse_series

OUT = os.path.join(os.path.dirname(__file__), "..", "quantdllm_kernels", "measured_dispatch.json")


def main(paths, out=OUT):
    latest = {}  # (K, N, bits, method, M) -> {backend: us}, later files replacing earlier ones
    devices = set()
    for p in paths:
        res = json.load(open(p))
        devices.add(res["device"])
        for r in res["rows"]:
            if r["series"].split("-")[0] not in ("cuda", "triton"):
                continue
            backend, bits, method, variant = parse_series(r["series"])
            if variant:
                continue
            key = (r["shape"][0], r["shape"][1], bits, method, r["M"])
            latest.setdefault(key, {})[backend] = r["us"]
    best = {key: min((us, b) for b, us in by_backend.items()) for key, by_backend in latest.items()}
    rows = [{"K": k[0], "N": k[1], "bits": k[2], "method": k[3], "M": k[4], "backend": b, "us": round(us, 2)}
            for k, (us, b) in sorted(best.items())]
    with open(out, "w") as fh:
        json.dump({"devices": sorted(devices), "sources": [os.path.basename(p) for p in paths], "rows": rows}, fh,
                  indent=0)
    print(f"{len(rows)} entries -> {os.path.normpath(out)}")


if __name__ == "__main__":
    main(sys.argv[1:])
