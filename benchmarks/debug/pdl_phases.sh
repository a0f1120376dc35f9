#!/usr/bin/env bash
# lut_mma launched back to back with and without programmatic dependent launch (QUANTDLLM_NO_PDL=1
# turns it off; read once per process): mma_phases.cu's eager back-to-back time per launch and its
# traced span / gap, in interleaved rounds, then bench_rotating.py (R weight copies in one CUDA
# graph) both ways. Fifteenth session: what PDL buys a chain of launches.
#   bash benchmarks/debug/pdl_phases.sh   (writes $OUT/pdl_phases.txt and $OUT/rotating_{pdl,nopdl}/)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUTD=${OUT:-/tmp}
nvcc -std=c++20 -O3 -Icsrc -DQUANTDLLM_MMA_TRACE --expt-relaxed-constexpr -arch=sm_90a \
  benchmarks/debug/mma_phases.cu csrc/lut_mma.cu csrc/lut_common.cu -o /tmp/mma_phases_pdl || exit 1
for r in 1 2 3; do
  for shape in "4096 12288 1" "4096 4096 1" "12288 4096 1" "4096 12288 8" "4096 12288 32"; do
    for mode in pdl nopdl; do
      echo "== round $r $shape $mode"
      if [ $mode = nopdl ]; then QUANTDLLM_NO_PDL=1 /tmp/mma_phases_pdl $shape 4; else /tmp/mma_phases_pdl $shape 4; fi \
        | grep -E "back to back|span"
    done
  done
done 2>&1 | tee "$OUTD/pdl_phases.txt" | awk '/^==/{k=$4" "$5" "$6" "$7} /back to back/{v[k]=v[k]" "$7} END{for (k in v) print k": "v[k]}' | sort
for mode in pdl nopdl; do
  if [ $mode = nopdl ]; then export QUANTDLLM_NO_PDL=1; fi
  python3 benchmarks/bench_rotating.py --ms 1 8 32 --out "$OUTD/rotating_$mode" 2>&1 | grep -E "cuda-w4|cuda-w2|int4" | sed "s/^/$mode /"
done
