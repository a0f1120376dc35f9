#!/usr/bin/env bash
# The wgmma path (x pre-pass + lut_wgmma) replayed back to back from a CUDA graph over rotating weight
# copies (bench_rotating.py), with the pre-pass a programmatic dependent of the launch before it and
# lut_wgmma letting the next launch start after its main loop (default) or as before
# (QUANTDLLM_NO_PDL=1: plain pre-pass launches), in interleaved rounds. Fifteenth session.
#   bash benchmarks/debug/pdl_wgmma.sh   (writes $OUT/pdl_wgmma.txt)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUTD=${OUT:-/tmp}
for r in 1; do
  for cfg in "4096 12288 8" "4096 4096 16"; do
    read -r K N C <<< "$cfg"
    for mode in pdl nopdl; do
      if [ $mode = nopdl ]; then export QUANTDLLM_NO_PDL=1; else unset QUANTDLLM_NO_PDL; fi
      python3 benchmarks/bench_rotating.py --K "$K" --N "$N" --copies "$C" --ms 256 1024 --out /tmp/pdlw 2>&1 \
        | grep -E "cuda-w4|fp16" | sed "s/^/round $r $mode /"
    done
  done
done | tee "$OUTD/pdl_wgmma.txt"
