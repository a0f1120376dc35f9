"""Plot a kernel-benchmark JSON: one log-log figure per shape (time vs M, every series), with the
HBM roofline of the 4-bit packed weight for reference.

    python benchmarks/plot_results.py benchmarks/results/kernels_<gpu>_<date>.json
    python benchmarks/plot_results.py --merge --tag v4 OLDER.json NEWER.json
        # one figure per shape from several runs of one GPU: a later file's (series, M) point
        # replaces an earlier one (a kernel that changed, re-timed), others are kept (peers, fp16)
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def merged(paths: list) -> dict:
    res, points = None, {}
    for p in paths:
        r = json.load(open(p))
        if res is not None and r["device"] != res["device"]:
            raise ValueError(f"{p} is from {r['device']}, not {res['device']}")
        res = r
        for row in r["rows"]:
            points[(tuple(row["shape"]), row["series"], row["M"])] = row
    return dict(res, rows=list(points.values()))


def plot(path: str, res: dict = None, tag: str = "") -> list:
    res = res or json.load(open(path))
    out = []
    for shape in sorted({tuple(r["shape"]) for r in res["rows"]}):
        rows = [r for r in res["rows"] if tuple(r["shape"]) == shape]
        fig, ax = plt.subplots(figsize=(8, 5.5))
        for s in sorted({r["series"] for r in rows}, key=lambda s: (not s.startswith("fp16"), not s.startswith("triton"), s)):
            pts = sorted((r["M"], r["us"]) for r in rows if r["series"] == s)
            style = "-o" if s.startswith("triton") else ("-k*" if s.startswith("fp16") else "--s")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, ms=4, label=s, lw=2 if s.startswith("fp16") else 1.3)
        roof = (sorted((r["M"], r["roofline_us"]) for r in rows if r["series"] == "triton-w4-rtn")
                or sorted((r["M"], r["roofline_us"]) for r in rows if r["series"] == "cuda-w4-rtn"))
        if roof:
            ax.plot([p[0] for p in roof], [p[1] for p in roof], ":", color="gray", label="HBM roofline, w4 packed bytes")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("M (tokens)")
        ax.set_ylabel("µs (median, L2 flushed, best of eager / CUDA graph)")
        ax.set_title(f"(K, N) = {shape} — {res['device']}, {res['date']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        png = os.path.join(os.path.dirname(path), f"plot_{shape[0]}x{shape[1]}_{res['device'].replace(' ', '_')}_{res['date']}{tag}.png")
        fig.savefig(png, dpi=110)
        plt.close(fig)
        out.append(png)
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    tag = ""
    if "--tag" in args:
        i = args.index("--tag")
        tag = "_" + args[i + 1]
        del args[i:i + 2]
    if args and args[0] == "--merge":
        print("\n".join(plot(args[-1], merged(args[1:]), tag)))
    else:
        for p in args:
            print("\n".join(plot(p, tag=tag)))
