#!/usr/bin/env bash
# The thirteenth session's lead: the bench's op (do_bench) costs more than wgmma_waves' pair at
# M = 512-1024, (4096, 12288) w4. Samples the SM clock and power (nvidia-smi, every 50 ms) while
# each runs, and prints the median clock of each beside its time. Needs a wgmma_waves build at
# $WW (compare_trees.sh leaves one at /tmp/cmp_ww_0) and the installed package.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUTD=${OUT:-/tmp}; WW=${WW:-/tmp/cmp_ww_0}
sample() { nvidia-smi --query-gpu=clocks.sm,power.draw --format=csv,noheader,nounits -lms 50 > "$1" & echo $!; }
summ() { python3 - "$1" "$2" <<'PY'
import statistics, sys
v = [l.split(",") for l in open(sys.argv[1]) if l.strip()]
c = [float(a) for a, b in v]; p = [float(b) for a, b in v]
busy = [x for x, w in zip(c, p) if w > 150] or c
print(f"{sys.argv[2]}: {len(c)} samples, SM clock median {statistics.median(c):.0f} MHz "
      f"(while drawing > 150 W: {statistics.median(busy):.0f} MHz, n={len(busy)}), power median {statistics.median(p):.0f} W, max {max(p):.0f} W")
PY
}
for M in 512 1024; do
  pid=$(sample "$OUTD/clk_tool_$M.csv")
  for r in 1 2 3; do QUANTDLLM_WAVES_PERMUTE=1 QUANTDLLM_WAVES_SUSTAINED=1 "$WW" 4096 12288 $M 4 | grep untraced; done
  kill $pid; summ "$OUTD/clk_tool_$M.csv" "tool pair M=$M"
done
pid=$(sample "$OUTD/clk_bench.csv")
python3 benchmarks/bench_kernels.py --shapes 4096x12288 --ms 512 1024 --ours cuda-w4-rtn --no-peers --out /tmp/clk_bench 2>&1 | grep -E "cuda-w4|fp16|M " | head -12
kill $pid; summ "$OUTD/clk_bench.csv" "bench (cuda w4 + fp16)"
cd "$OUTD" && tar czf clk.tar.gz --remove-files clk_*.csv
