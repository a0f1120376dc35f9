#!/usr/bin/env bash
# lut_wgmma's waves and phases (wgmma_waves.cu) over the shapes and plans that decide wgmma_plan, for a
# device call: bash benchmarks/debug/wgmma_waves.sh [binary] > $OUT/waves.txt. Builds the traced
# binary (-DQUANTDLLM_MMA_TRACE, build_wgmma_tool.sh, ~40 s) when none is given; "$OUT" receives one CSV per run.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${1:-/tmp/wgmma_waves}
if [ ! -x "$B" ]; then
  bash benchmarks/debug/build_wgmma_tool.sh benchmarks/debug/wgmma_waves.cu csrc "$B" || exit 1
fi
O=${OUT:-/tmp}
run() {  # name, env assignments..., then "K N M"
  local name=$1; shift
  echo "=== $name"
  env "$@" "$B" ${SHAPE} 4 "$O/waves_$name.csv"
}
SHAPE="4096 12288 512" run m512 ; SHAPE="4096 12288 512" run m512_whole QUANTDLLM_WGMMA_KSPLIT=1
SHAPE="4096 12288 768" run m768 ; SHAPE="4096 12288 1024" run m1024 ; SHAPE="4096 12288 4096" run m4096
SHAPE="4096 4096 128" run sq_m128 ; SHAPE="4096 4096 256" run sq_m256 ; SHAPE="4096 4096 512" run sq_m512
SHAPE="4096 4096 512" run sq_m512_whole QUANTDLLM_WGMMA_KSPLIT=1
SHAPE="12288 4096 256" run tall_m256 ; SHAPE="12288 4096 512" run tall_m512 ; SHAPE="12288 4096 1024" run tall_m1024
