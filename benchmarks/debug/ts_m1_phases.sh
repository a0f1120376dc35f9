#!/usr/bin/env bash
# lut_mma at M = 1 (the GEMV range) with and without a timestep table, L2 flushed: the time per
# launch and the median / slowest block's phases (mma_phases.cu), in interleaved rounds, for each
# source tree given (default: this one). Where the table's cost at M = 1 goes (fourteenth session).
#   bash benchmarks/debug/ts_m1_phases.sh [DIR...]   (DIR: a checkout holding csrc/; M=... to change M)
set -uo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || set -- .
i=0
for d in "$@"; do
  nvcc -std=c++20 -O3 -I"$d/csrc" -DQUANTDLLM_MMA_TRACE --expt-relaxed-constexpr -arch=sm_90a \
    benchmarks/debug/mma_phases.cu "$d/csrc/lut_mma.cu" "$d/csrc/lut_common.cu" -o "/tmp/mma_phases_$i" &
  i=$((i + 1))
done
wait
for r in 1 2 3; do
  for shape in "4096 12288" "4096 4096"; do
    for ts in none one rows; do
      j=0
      for d in "$@"; do
        echo "== round $r tree $d K N = $shape ts $ts"
        QUANTDLLM_PHASES_FLUSH=1 QUANTDLLM_PHASES_TS=$ts "/tmp/mma_phases_$j" $shape ${M:-1} 4 | grep -E "flushed|median block|slowest"
        j=$((j + 1))
      done
    done
  done
done
