#!/usr/bin/env bash
# lut_mma at M = 1 (the GEMV range) with and without a timestep table, L2 flushed: the time per
# launch and the median / slowest block's phases (mma_phases.cu), in interleaved rounds. Where the
# table's +7% at M = 1 (probe_ts_overhead, fourteenth session) goes.
set -uo pipefail
cd "$(dirname "$0")/../.."
nvcc -std=c++20 -O3 -Icsrc -DQUANTDLLM_MMA_TRACE --expt-relaxed-constexpr -arch=sm_90a \
  benchmarks/debug/mma_phases.cu csrc/lut_mma.cu csrc/lut_common.cu -o /tmp/mma_phases || exit 1
for r in 1 2 3; do
  for shape in "4096 12288" "4096 4096"; do
    for ts in none one rows; do
      echo "== round $r K N = $shape ts $ts"
      QUANTDLLM_PHASES_FLUSH=1 QUANTDLLM_PHASES_TS=$ts /tmp/mma_phases $shape ${M:-1} 4 | grep -E "plan|flushed|median block|slowest"
    done
  done
done
