#!/usr/bin/env bash
# Does PDL change lut_mma's single launch after an L2 flush (bench_kernels' figure)? mma_phases.cu
# in its flush mode and bench_kernels at M = 1 / 8, each with and without QUANTDLLM_NO_PDL=1, in
# interleaved rounds. Fifteenth session.
#   bash benchmarks/debug/pdl_flushed.sh   (writes $OUT/pdl_flushed.txt)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUTD=${OUT:-/tmp}
[ -x /tmp/mma_phases_pdl ] || nvcc -std=c++20 -O3 -Icsrc -DQUANTDLLM_MMA_TRACE --expt-relaxed-constexpr -arch=sm_90a \
  benchmarks/debug/mma_phases.cu csrc/lut_mma.cu csrc/lut_common.cu -o /tmp/mma_phases_pdl || exit 1
for r in 1 2 3; do
  for shape in "4096 4096 1 4" "4096 12288 1 4" "4096 12288 8 4"; do
    for mode in pdl nopdl; do
      echo "== round $r $shape $mode"
      if [ $mode = nopdl ]; then export QUANTDLLM_NO_PDL=1; else unset QUANTDLLM_NO_PDL; fi
      QUANTDLLM_PHASES_FLUSH=1 /tmp/mma_phases_pdl $shape | grep -E "flushed"
    done
  done
  for mode in pdl nopdl; do
    if [ $mode = nopdl ]; then export QUANTDLLM_NO_PDL=1; else unset QUANTDLLM_NO_PDL; fi
    python3 benchmarks/bench_kernels.py --shapes 4096x4096 4096x12288 --ms 1 8 --ours cuda-w4-rtn --no-peers \
      --reps-ms 40 --out /tmp/pdlb 2>&1 | grep -E "cuda-w4" | sed "s/^/== round $r bench $mode /"
  done
done 2>&1 | tee "$OUTD/pdl_flushed.txt" | awk '/flushed/{print k, $(NF-6)} /^==/{k=$0}' | sort | uniq
