#!/usr/bin/env bash
# lut_mma launched back to back as a programmatic dependent launch that lets the next one start
# after its main loop (loop: the default), at its entry (entry: QUANTDLLM_PDL_TRIGGER=entry), and
# as a plain launch (nopdl: QUANTDLLM_NO_PDL=1); both read once per process. mma_phases.cu's eager
# back-to-back time per launch and its traced span / gap, in interleaved rounds, then
# bench_rotating.py (R weight copies in one CUDA graph) for loop and nopdl. Fifteenth session.
#   bash benchmarks/debug/pdl_phases.sh   (writes $OUT/pdl_phases.txt and $OUT/rotating_{loop,nopdl}/)
# ROUNDS=n (3), MODES="loop nopdl" (all three), ROTATING=0 (skip bench_rotating.py): a quicker check that
# PDL is live (the loop rows ~1.4 µs under the nopdl ones at (4096, 12288) M = 1).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUTD=${OUT:-/tmp}
nvcc -std=c++20 -O3 -Icsrc -DQUANTDLLM_MMA_TRACE --expt-relaxed-constexpr -arch=sm_90a \
  benchmarks/debug/mma_phases.cu csrc/lut_mma.cu csrc/lut_common.cu -o /tmp/mma_phases_pdl || exit 1
for r in $(seq 1 "${ROUNDS:-3}"); do
  for shape in "4096 12288 1 4" "4096 4096 1 4" "12288 4096 1 4" "4096 12288 8 4" "4096 12288 8 2" "4096 12288 32 4" \
               "4096 12288 32 2"; do
    for mode in ${MODES:-loop entry nopdl}; do
      echo "== round $r $shape $mode"
      case $mode in
        loop) /tmp/mma_phases_pdl $shape ;;
        entry) QUANTDLLM_PDL_TRIGGER=entry /tmp/mma_phases_pdl $shape ;;
        nopdl) QUANTDLLM_NO_PDL=1 /tmp/mma_phases_pdl $shape ;;
      esac | grep -E "back to back|span"
    done
  done
done 2>&1 | tee "$OUTD/pdl_phases.txt" | awk '/^==/{k=$4" "$5" "$6" w"$7" "$8} /back to back/{v[k]=v[k]" "$7} END{for (k in v) print k": "v[k]}' | sort
[ "${ROTATING:-1}" = 1 ] || exit 0
for mode in loop nopdl; do
  if [ $mode = nopdl ]; then export QUANTDLLM_NO_PDL=1; fi
  python3 benchmarks/bench_rotating.py --ms 1 8 32 --out "$OUTD/rotating_$mode" 2>&1 | grep -E "cuda-w4|cuda-w2|int4" | sed "s/^/$mode /"
done
