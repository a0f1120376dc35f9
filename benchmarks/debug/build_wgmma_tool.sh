#!/usr/bin/env bash
# Builds a debug tool linked with a traced lut_wgmma (-DQUANTDLLM_MMA_TRACE, sm_90a) from a source tree:
# the tree's lut_wgmma*.cu (one translation unit per code width since the twenty-second session; one
# before) and lut_common.cu compiled side by side, then linked with the tool (~40 s, was ~70 s as one
# translation unit).
#   bash benchmarks/debug/build_wgmma_tool.sh TOOL.cu CSRC_DIR OUT_BINARY
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: $0 TOOL.cu CSRC_DIR OUT_BINARY"; exit 2; }
TOOL=$1; SRC=$2; BIN=$3
OBJ=$(mktemp -d)
FLAGS=(-std=c++20 -O3 -I"$SRC" -DQUANTDLLM_MMA_TRACE -DQUANTDLLM_SM90A --expt-relaxed-constexpr -gencode arch=compute_90a,code=sm_90a)
pids=()
for f in "$SRC"/lut_wgmma*.cu "$SRC"/lut_common.cu; do
  nvcc "${FLAGS[@]}" -c "$f" -o "$OBJ/$(basename "$f" .cu).o" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ $rc = 0 ] && nvcc "${FLAGS[@]}" "$TOOL" "$OBJ"/*.o -o "$BIN" || rc=1
rm -rf "$OBJ"
exit $rc
