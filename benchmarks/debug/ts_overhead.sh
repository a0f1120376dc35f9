#!/usr/bin/env bash
# Issue 5's figure in one device call, twelfth session's recipe: builds the traced wgmma_waves binary
# beside the extension (run_device.sh: tests PT with -k PK, SANITIZE), runs probe_ts_overhead
# (--ms PROBE_MS, 9 interleaved rounds), then lut_wgmma's phase stamps at M = 256 with no table, one t
# and per-row t (QUANTDLLM_WAVES_TS), with and without the L2 flush; WAVES_PLAIN adds K_N_M shapes.
#   bash benchmarks/debug/ts_overhead.sh            (from the repository root, on the device)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
( bash benchmarks/debug/build_wgmma_tool.sh benchmarks/debug/wgmma_waves.cu csrc /tmp/ww > "$OUT/ww_build.log" 2>&1
  echo "waves build rc=$?" ) &
SHARDS=${SHARDS:-2} PYTEST_ARGS="${PT:-python_tests/test_cuda_wgmma.py}" PYTEST_K="${PK:-timestep or graph or split}" SANITIZE=${SANITIZE:-0} BENCH=0 \
  EXTRA="python3 benchmarks/debug/probe_ts_overhead.py --ms ${PROBE_MS:-256} --rounds 9 --out \$OUT 2>&1 | tail -8" \
  bash benchmarks/run_device.sh 2>&1 | tail -20
wait
for shape in "4096 12288 256" "4096 4096 256"; do
  for form in none one rows; do
    echo "=== $shape $form"
    QUANTDLLM_WAVES_TS=$form /tmp/ww $shape 4 "$OUT/waves_${form}_${shape// /_}.csv" | grep -vE "^(K |SM clock|to shared)"
  done
done 2>&1 | tee "$OUT/waves.txt"
[ -n "${WAVES_PLAIN:-}" ] && for shape in $WAVES_PLAIN; do echo "=== ${shape//_/ }"; /tmp/ww ${shape//_/ } 4 | grep -vE "^(K |SM clock|to shared)"; done 2>&1 | tee -a "$OUT/waves.txt"
for form in none rows; do echo "=== 4096 12288 256 $form, no flush"; QUANTDLLM_WAVES_NOFLUSH=1 QUANTDLLM_WAVES_TS=$form /tmp/ww 4096 12288 256 4 | grep -vE "^(K |SM clock|to shared)"; done 2>&1 | tee -a "$OUT/waves.txt"
