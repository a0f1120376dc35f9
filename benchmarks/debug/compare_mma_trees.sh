#!/usr/bin/env bash
# lut_mma from several source trees, side by side, without building the extension (compare_trees.sh
# does the same for lut_wgmma): each tree's csrc is linked into a traced mma_phases tool (the tree's own
# when it has benchmarks/debug/mma_phases.cu, else this tree's; built in parallel), then every
# configuration runs on every tree in interleaved rounds (drift cancels). The table gives the
# median over rounds of the per-launch time with L2 flushed (median of 40 launches, as the bench
# times), of the back-to-back time (weights rotating past L2), and of the median block's main loop.
# Code values are arbitrary (mma_phases), so trees whose layouts differ compare fairly.
#   bash benchmarks/debug/compare_mma_trees.sh DIR_A DIR_B ...   (DIR: a checkout holding csrc/)
# ROUNDS=n (3); CONFIGS="K N M bits;K N M bits;..." replaces the list below.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
[ $# -ge 1 ] || { echo "usage: $0 DIR..."; exit 2; }
tool_of() { [ -f "$1/benchmarks/debug/mma_phases.cu" ] && echo "$1/benchmarks/debug/mma_phases.cu" || echo benchmarks/debug/mma_phases.cu; }
i=0
for d in "$@"; do
  ( nvcc -std=c++20 -O3 -I"$d/csrc" -Ibenchmarks/debug -DQUANTDLLM_MMA_TRACE --expt-relaxed-constexpr -arch=sm_90a \
      "$(tool_of "$d")" "$d/csrc/lut_mma.cu" "$d/csrc/lut_common.cu" -o "/tmp/cmp_mma_$i" > "/tmp/cmp_mma_$i.log" 2>&1 \
      || { echo "build failed: $d"; cat "/tmp/cmp_mma_$i.log"; } ) &
  i=$((i + 1))
done
wait
DEFAULT="4096 12288 1 4;4096 12288 1 3;4096 12288 1 2;4096 4096 1 3;4096 4096 1 2;4096 12288 8 3;4096 12288 8 2;4096 12288 32 3;4096 12288 32 2;4096 4096 32 3"
IFS=';' read -r -a CFG <<< "${CONFIGS:-$DEFAULT}"
RAW=$(mktemp)
for r in $(seq 1 "$ROUNDS"); do
  for c in "${CFG[@]}"; do
    i=0
    for d in "$@"; do
      out=$(QUANTDLLM_PHASES_FLUSH=1 "/tmp/cmp_mma_$i" $c 2>&1)
      fl=$(sed -n 's/.*L2 flushed: \([0-9.]*\) us.*/\1/p' <<< "$out")
      bb=$(sed -n 's/.*back to back.*: \([0-9.]*\) us per launch.*/\1/p' <<< "$out")
      lp=$(sed -n 's/^median block:.*main loop \([0-9.]*\) us.*/\1/p' <<< "$out")
      echo "$c|$i|$fl|$bb|$lp" >> "$RAW"
      i=$((i + 1))
    done
  done
done
printf '%-18s' "K N M bits"
i=0; for d in "$@"; do printf ' | %-28s' "[$i] $d flushed/b2b/loop"; i=$((i + 1)); done; echo
for c in "${CFG[@]}"; do
  printf '%-18s' "$c"
  i=0
  for d in "$@"; do
    python3 - "$RAW" "$c" "$i" <<'PY'
import statistics, sys
raw, cfg, tree = sys.argv[1], sys.argv[2], sys.argv[3]
vals = [l.rstrip("\n").split("|") for l in open(raw) if l.startswith(cfg + "|")]
cols = [[float(v[k]) for v in vals if v[1] == tree and v[k]] for k in (2, 3, 4)]
med = lambda xs: f"{statistics.median(xs):6.2f}" if xs else "   n/a"
print(f" | {med(cols[0])} {med(cols[1])} {med(cols[2])}          ", end="")
PY
    i=$((i + 1))
  done
  echo
done
rm -f "$RAW"
