"""Top warp-stall SASS lines of one kernel in an Nsight Compute report (profile_cuda.py's output).

    ncu -i rep.ncu-rep --page source --csv --print-source sass > sass.csv
    python benchmarks/ncu_top_stalls.py sass.csv --top 30
"""
import argparse
import csv
import io


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--kernel-index", type=int, default=0, help="which kernel's table (0 = first)")
    args = ap.parse_args()
    text = open(args.csv, errors="replace").read()
    # one table per profiled kernel, each starting with a header row that has "Source"
    tables, cur = [], []
    for line in text.splitlines():
        if line.startswith('"#"') or line.startswith('"Address"') or ('"Source"' in line and cur):
            if cur:
                tables.append(cur)
            cur = [line]
        elif cur:
            cur.append(line)
    if cur:
        tables.append(cur)
    rows = list(csv.DictReader(io.StringIO("\n".join(tables[args.kernel_index]))))
    stall_col = next(c for c in rows[0] if c.startswith("Warp Stall Sampling (All"))
    total = sum(float(r[stall_col] or 0) for r in rows)
    print(f"{len(tables)} kernel tables; kernel {args.kernel_index}: {len(rows)} SASS lines, {total:.0f} stall samples")
    for r in sorted(rows, key=lambda r: -float(r[stall_col] or 0))[: args.top]:
        print(f"{float(r[stall_col] or 0) / total * 100:5.1f}%  {r.get('Address', '')}  {r['Source'][:90]}")


if __name__ == "__main__":
    main()
