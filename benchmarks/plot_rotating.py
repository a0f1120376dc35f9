"""Plot bench_rotating.py results side by side: µs per call of each series at each M, one bar per
JSON (e.g. the same tree with and without programmatic dependent launches), with the HBM roofline
of the series' bytes as a tick.

    python benchmarks/plot_rotating.py --tag s15 LABEL=rotating_a.json LABEL=rotating_b.json
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="LABEL=path.json")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=None, help="folder (default: the first JSON's)")
    a = ap.parse_args()
    runs = [(lab, json.load(open(path))) for lab, path in (r.split("=", 1) for r in a.runs)]
    first = runs[0][1]
    keys = sorted({(row["series"], row["M"]) for _, r in runs for row in r["rows"]}, key=lambda k: (k[1], k[0]))
    keys = [k for k in keys if not k[0].startswith("torch")]  # 2-7x slower here: it flattens the scale
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(keys)), 4))
    width = 0.8 / len(runs)
    for j, (lab, r) in enumerate(runs):
        by = {(row["series"], row["M"]): row for row in r["rows"]}
        xs = [i + j * width for i, k in enumerate(keys) if k in by]
        ax.bar(xs, [by[k]["us"] for k in keys if k in by], width, label=lab)
        if j == 0:
            ax.scatter([i + 0.4 - width / 2 for i, k in enumerate(keys) if k in by],
                       [by[k]["roofline_us"] for k in keys if k in by], marker="_", s=300, c="k", label="HBM roofline")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(keys))])
    ax.set_xticklabels([f"{s}\nM={m}" for s, m in keys], fontsize=7)
    ax.set_ylabel("µs per call (CUDA graph of rotating weight copies)")
    ax.set_title(f"{first['device']}, (K, N) = ({first['K']}, {first['N']}), {first['copies']} copies")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = a.out or os.path.dirname(a.runs[0].split("=", 1)[1])
    name = first["device"].replace(" ", "_")
    path = os.path.join(out, f"plot_rotating_{first['K']}x{first['N']}_{name}{'_' + a.tag if a.tag else ''}.png")
    fig.savefig(path, dpi=120)
    print(path)


if __name__ == "__main__":
    main()
