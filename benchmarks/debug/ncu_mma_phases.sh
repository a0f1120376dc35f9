#!/usr/bin/env bash
# ncu on lut_mma without the extension: builds mma_phases (csrc/lut_mma.cu linked in) and profiles one
# launch (the 21st, past warm-up; ncu flushes caches between its replay passes) per width, writing
# ncu's details page and the raw metrics (CSV) under $OUT. Twenty-first session, call 6: w3 vs w4 at
# (4096, 4096) M = 16 (results/ncu_w{3,4}_m16_4096_details_s21_call6.txt).
#   bash benchmarks/debug/ncu_mma_phases.sh [K=4096] [N=4096] [M=16] [BITS="3 4"]   (a device call)
set -uo pipefail
cd "$(dirname "$0")/../.."
K=${1:-4096}; N=${2:-4096}; M=${3:-16}; BITS=${4:-"3 4"}; O=${OUT:-/tmp}
nvcc -std=c++20 -O3 -Icsrc -Ibenchmarks/debug -DQUANTDLLM_MMA_TRACE --expt-relaxed-constexpr -lineinfo -arch=sm_90a \
  benchmarks/debug/mma_phases.cu csrc/lut_mma.cu csrc/lut_common.cu -o /tmp/ncu_mma_phases 2>&1 | grep -v C7519 | tail -3
for b in $BITS; do
  tag="w${b}_m${M}_${K}x${N}"
  timeout 90 ncu --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
    --section LaunchStats --section Occupancy -k regex:lut_mma -s 20 -c 1 -f -o /tmp/ncu_$tag \
    /tmp/ncu_mma_phases "$K" "$N" "$M" "$b" > /tmp/ncu_$tag.log 2>&1
  echo "ncu $tag rc=$?"
  ncu -i /tmp/ncu_$tag.ncu-rep --page details > "$O/ncu_${tag}_details.txt" 2>&1
  ncu -i /tmp/ncu_$tag.ncu-rep --page raw --csv > "$O/ncu_${tag}_raw.csv" 2>&1
  grep -E "lut_mma_kernel|Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Grid Size" \
    "$O/ncu_${tag}_details.txt" | head -12
  python3 - "$O/ncu_${tag}_raw.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
d = dict(zip(rows[0], rows[2]))
pre, post = "smsp__average_warps_issue_stalled_", "_per_issue_active.ratio"
st = sorted(((float(v.replace(",", "")), k[len(pre):-len(post)]) for k, v in d.items()
             if k.startswith(pre) and k.endswith(post)), reverse=True)
print("stalls per issued instruction:", ", ".join(f"{n} {v:.2f}" for v, n in st[:8]))
PY
done
