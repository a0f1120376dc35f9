#!/usr/bin/env bash
# lut_wgmma's two x forms for 4-bit codes, side by side (sixteenth session, results/x_as_stored_ab_s16_call4.txt):
# bench_kernels' cuda-w4-rtn with lut_wgmma forced from M = 1 (QUANTDLLM_WGMMA_MIN_M=1), x read as stored
# (QUANTDLLM_WGMMA_PREPASS=0) and through the pre-pass (=1); and, with CROSSOVER=1, lut_wgmma against
# lut_mma at M = 16-64 (QUANTDLLM_WGMMA_MIN_M=1 / 100000; results/crossover_s16_call3.txt).
# OURS picks the widths (default cuda-w4-rtn; 2/3-bit read x as stored since the twenty-first session), MINM the
# lut_wgmma start (default 1: forced from M = 1; "" leaves the op's routing).
#   bash benchmarks/debug/x_as_stored_ab.sh [--ms 32 64 128 256]   (a device call; writes $OUT/x_as_stored_ab.txt)
set -uo pipefail
cd "$(dirname "$0")/../.."
O=${OUT:-/tmp}
SHAPES="4096x12288 4096x4096 12288x4096"
MS=${*:---ms 32 64 128 256}
MINM=${MINM-1}
MINM_ENV=${MINM:+QUANTDLLM_WGMMA_MIN_M=$MINM}
{
  for pp in 0 1; do
    env QUANTDLLM_WGMMA_PREPASS=$pp $MINM_ENV python3 benchmarks/bench_kernels.py --no-peers \
      --ours ${OURS:-cuda-w4-rtn} --shapes $SHAPES $MS --reps-ms 30 --out "/tmp/ab_$pp" 2>&1 | grep -E "cuda-w|fp16" | sed "s/^/prepass=$pp /"
  done
  if [ "${CROSSOVER:-0}" = 1 ]; then
    for mm in 1 100000; do
      QUANTDLLM_WGMMA_MIN_M=$mm python3 benchmarks/bench_kernels.py --no-peers --ours cuda-w4-rtn --shapes $SHAPES \
        --ms 16 24 32 48 64 --reps-ms 40 --out "/tmp/xo_$mm" 2>&1 | grep cuda-w4 | sed "s/^/minm=$mm /"
    done
  fi
} | sort -u | tee "$O/x_as_stored_ab.txt"
