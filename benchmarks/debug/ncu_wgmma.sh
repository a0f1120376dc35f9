#!/usr/bin/env bash
# Where lut_wgmma's time goes at large M, for a device call (after run_device.sh built the package):
#   bash benchmarks/debug/ncu_wgmma.sh "1024 4096" [4] [KxN] > $OUT/ncu_wgmma.txt
# profile_cuda.py runs each M twice through the CUDA backend with QUANTDLLM_WGMMA_MAX_M raised so
# that lut_wgmma takes it; the second launch of each M is profiled (tensor-pipe and shared-memory
# utilization, warp states, stall samples per SASS line).
set -uo pipefail
MS=${1:-"1024 4096"}; BITS=${2:-4}; SHAPE=${3:-4096x12288}; REP=/tmp/ncu_wgmma_rep
cd "$(dirname "$0")/.."
export QUANTDLLM_WGMMA_MAX_M=1000000
timeout 300 ncu --clock-control none --section SpeedOfLight --section ComputeWorkloadAnalysis \
  --section MemoryWorkloadAnalysis --section WarpStateStats --section SourceCounters --section Occupancy \
  -k regex:lut_wgmma -f -o $REP python3 profile_cuda.py --ms $MS --bits $BITS --shape $SHAPE \
  > /tmp/ncu_wgmma_run.log 2>&1
echo "ncu rc=$?"; tail -3 /tmp/ncu_wgmma_run.log
ncu -i $REP.ncu-rep --page details --print-details all 2>/dev/null | grep -vE "^\s*-+\s*$" \
  | grep -iE "lut_wgmma|Duration|Throughput|Pipe|gmma|Stall|Warp Cycles|Issue|Bank|Shared|L2 Hit|Occupancy|Eligible|Active Warps|Registers|Grid Size"
ncu -i $REP.ncu-rep --page source --csv --print-source sass > /tmp/ncu_wgmma_sass.csv 2>/dev/null
n=$(grep -cE '^"(#|Address)"' /tmp/ncu_wgmma_sass.csv)
echo "kernel tables: $n"
for i in $(seq 0 $(( n - 1 ))); do
  echo "=== kernel index $i ==="; python3 ncu_top_stalls.py /tmp/ncu_wgmma_sass.csv --kernel-index $i --top 25
done
