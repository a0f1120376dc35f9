#!/usr/bin/env bash
# Where lut_wgmma's timestep chunk spends its ~1.6 µs of prologue (seventeenth session): the traced
# tool (debug/wgmma_waves.cu, stamps 13-15 in the prologue) on the issue-5 shapes, L2 flushed and
# not (cold vs L2-resident t, boundaries and table). (Call 4 also timed forced M = 512 plans:
# results/ts_chunk_parts_s17_call4.txt.) One device call, no extension build (~60 s):
#   bash benchmarks/debug/ts_chunk_parts.sh [DIR...]   (source trees holding csrc/; default .; ONLY=REGEX)
set -uo pipefail
cd "$(dirname "$0")/../.."
O=${OUT:-/tmp}/ts_chunk_parts.txt
[ $# -ge 1 ] || set -- .   # source trees (DIR/csrc), each built into its own traced tool, run in interleaved rounds
i=0
for d in "$@"; do
  ( nvcc -std=c++20 -O3 -I"$d/csrc" -DQUANTDLLM_MMA_TRACE -DQUANTDLLM_SM90A --expt-relaxed-constexpr -gencode arch=compute_90a,code=sm_90a \
      benchmarks/debug/wgmma_waves.cu "$d/csrc/lut_wgmma.cu" "$d/csrc/lut_common.cu" -o /tmp/ts_ww_$i > /tmp/ts_ww_$i.log 2>&1 \
      || { echo "build failed: $d"; tail /tmp/ts_ww_$i.log; } ) &
  i=$((i + 1))
done
wait
# name | environment | K N M
CONFIGS=(
  "sq per-row 256|QUANTDLLM_WAVES_TS=rows|4096 4096 256"
  "sq per-row 256 noflush|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WAVES_NOFLUSH=1|4096 4096 256"
  "sq one t 256|QUANTDLLM_WAVES_TS=one|4096 4096 256"
  "sq per-row nat 256|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WAVES_XNAT=1|4096 4096 256"
  "sq per-row 32|QUANTDLLM_WAVES_TS=rows|4096 4096 32"
  "per-row 256|QUANTDLLM_WAVES_TS=rows|4096 12288 256"
  "per-row 256 noflush|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WAVES_NOFLUSH=1|4096 12288 256"
  "sq plain 256|QUANTDLLM_WAVES_X=1|4096 4096 256"
  "sq plain 256 noflush|QUANTDLLM_WAVES_X=1 QUANTDLLM_WAVES_NOFLUSH=1|4096 4096 256"
  "sq nat 256|QUANTDLLM_WAVES_XNAT=1|4096 4096 256"
  "sq per-row nat 256 s0|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WAVES_XNAT=1 QUANTDLLM_WGMMA_TS_SHIFT=0|4096 4096 256"
  "sq per-row 32 s0|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WGMMA_TS_SHIFT=0|4096 4096 32"
  "sq per-row nat 256 s1|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WAVES_XNAT=1 QUANTDLLM_WGMMA_TS_SHIFT=1|4096 4096 256"
  "sq per-row 32 s1|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WGMMA_TS_SHIFT=1|4096 4096 32"
  "sq per-row nat 256 s2|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WAVES_XNAT=1 QUANTDLLM_WGMMA_TS_SHIFT=2|4096 4096 256"
  "sq per-row 32 s2|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WGMMA_TS_SHIFT=2|4096 4096 32"
  "plain 256|QUANTDLLM_WAVES_X=1|4096 12288 256"
)
: > "$O"
for r in 1 2 3; do
  for c in "${CONFIGS[@]}"; do
    IFS='|' read -r name envs shape <<< "$c"
    [[ -z "${ONLY:-}" || "$name" =~ ${ONLY} ]] || continue
    for j in $(seq 0 $((i - 1))); do
      [ -x /tmp/ts_ww_$j ] || continue
      res=$(env $envs /tmp/ts_ww_$j $shape 4 2>&1)
      us=$(echo "$res" | sed -n 's/^untraced, [^:]*: \([0-9.]*\) us.*/\1/p')
      plan=$(echo "$res" | sed -n 's/.*plan \(bn [0-9]* ksplit [0-9]* per_split [0-9]* split_from [0-9]*\).*/\1/p')
      ts=$(echo "$res" | sed -n 's/^prologue, //p')
      ph=$(echo "$res" | awk '$2 == "whole" || $2 == "slice" {o = $2; for (f = 7; f <= 11; ++f) o = o " " $f; print o; exit}')
      echo "$r|$name [$j]|$us|$plan|$ph|$ts" >> "$O"
    done
  done
done
echo "trees: $*"
python3 - "$O" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1]) if l.strip()]
print("median us per launch of 3 interleaved rounds; last round's plan, phases (kind prolog loop stage store sum) and timestep chunk parts")
for n in dict.fromkeys(r[1] for r in rows):
    rs = [r for r in rows if r[1] == n]
    v = [float(r[2]) for r in rs if r[2]]
    print(f"{n:>24}: {statistics.median(v) if v else float('nan'):7.2f} | {rs[-1][3]} | {rs[-1][4]}" + (f"\n{'':>26}ts: {rs[-1][5]}" if rs[-1][5] else ""))
PY
