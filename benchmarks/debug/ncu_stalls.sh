#!/usr/bin/env bash
# Source-level (SASS) warp-stall sampling of lut_mma, plain vs +timestep tables, for a device call:
#   bash benchmarks/debug/ncu_stalls.sh "1 32" [4] > $OUT/ncu_stalls.txt
# profile_cuda.py launches each case twice, plain then +ts, per M. ncu's source page gives two tables
# per kernel, the second with its SASS lines (odd indices): per M, 4 kernels = indices +1, +3 (plain)
# and +5, +7 (+ts). Prints duration / DRAM throughput / occupancy per kernel, then the top stalled
# SASS lines of each.
set -uo pipefail
MS=${1:-"1 32"}; BITS=${2:-4}; REP=/tmp/ncu_stalls_rep
cd "$(dirname "$0")/.."
timeout 240 ncu --section SpeedOfLight --section WarpStateStats --section SourceCounters \
  --section LaunchStats --section Occupancy -k regex:lut_mma -f -o $REP \
  python3 profile_cuda.py --ms $MS --bits $BITS --ts > /tmp/ncu_stalls_run.log 2>&1
echo "ncu rc=$?"; tail -3 /tmp/ncu_stalls_run.log
ncu -i $REP.ncu-rep --page details 2>/dev/null | grep -E "lut_mma_kernel|Duration|DRAM Throughput|Memory Throughput|Issue Slots Busy|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Grid Size|Block Size" 
ncu -i $REP.ncu-rep --page source --csv --print-source sass > /tmp/ncu_stalls_sass.csv 2>/dev/null
n=$(python3 - <<'PY'
import re
t = open("/tmp/ncu_stalls_sass.csv", errors="replace").read().splitlines()
print(sum(1 for l in t if l.startswith('"#"') or l.startswith('"Address"')))
PY
)
echo "kernel tables: $n"
for i in $(seq 1 2 $(( n - 1 ))); do
  echo "=== kernel index $i ==="; python3 ncu_top_stalls.py /tmp/ncu_stalls_sass.csv --kernel-index $i --top 22
done
