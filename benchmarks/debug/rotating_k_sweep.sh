#!/usr/bin/env bash
# Fixed cost vs streaming rate at M = 1: bench_rotating.py over K at one N (fp16 cuBLAS, our w4 / w2,
# torch int4), then a least-squares fit us = a + bytes / bw per series (a: the per-launch floor).
#   bash benchmarks/debug/rotating_k_sweep.sh OUTDIR [N] [K ...]
set -uo pipefail
OUTD=$1; N=${2:-12288}; shift; shift || true
KS=${*:-"1024 2048 4096 8192 16384"}
cd "$(dirname "$0")/.."
for K in $KS; do
  python3 bench_rotating.py --K "$K" --N "$N" --ms 1 --out "$OUTD/k$K" 2>&1 | grep -v "^$"
done
python3 - "$OUTD" <<'PY'
import glob, json, sys
rows = {}
for f in sorted(glob.glob(sys.argv[1] + "/k*/rotating_*.json")):
    d = json.load(open(f))
    for r in d["rows"]:
        rows.setdefault(r["series"], []).append((r["bytes"], r["us"], d["K"]))
fit = {}
for s, pts in rows.items():
    n = len(pts); mx = sum(b for b, _, _ in pts) / n; my = sum(u for _, u, _ in pts) / n
    sxx = sum((b - mx) ** 2 for b, _, _ in pts); sxy = sum((b - mx) * (u - my) for b, u, _ in pts)
    slope = sxy / sxx; a = my - slope * mx
    fit[s] = {"floor_us": a, "stream_TBps": 1e-6 / slope if slope > 0 else None, "points": sorted(pts)}
    print(f"{s:20s} floor {a:6.2f} us  streaming {1e-6 / slope:5.2f} TB/s  " +
          " ".join(f"K={k}:{u:.1f}" for _, u, k in sorted(pts)))
json.dump(fit, open(sys.argv[1] + "/rotating_k_sweep.json", "w"), indent=1)
PY
