#!/usr/bin/env bash
# lut_wgmma from several source trees, side by side, without building the extension: each tree's
# csrc is linked into a traced wgmma_waves tool (the tree's own when it has benchmarks/debug/, else this
# tree's; built in parallel by build_wgmma_tool.sh), then every
# configuration below runs on every tree in interleaved rounds (drift cancels), and the table gives
# the median per-launch time of each (L2 flushed) and the median block's phases of the last round.
#   bash benchmarks/debug/compare_trees.sh DIR_A DIR_B ...   (DIR: a checkout holding csrc/)
# For branches on the device (which gets the working tree, not .git): `mkdir -p devsrc/NAME && git
# archive BRANCH csrc benchmarks/debug | tar -x -C devsrc/NAME` here before the call (plain untracked files travel; a
# worktree would not, being a nested repository), and remove devsrc/ after.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}  # BITS=2/3/4 (default 4); ONLY=REGEX runs only the configurations whose names match; PROLOGUE=1 prints the prologue's parts
[ $# -ge 1 ] || { echo "usage: $0 DIR..."; exit 2; }
# a tree's own wgmma_waves.cu when it has one (a branch that changed the launchers' signatures), else this one's
tool_of() { [ -f "$1/benchmarks/debug/wgmma_waves.cu" ] && echo "$1/benchmarks/debug/wgmma_waves.cu" || echo benchmarks/debug/wgmma_waves.cu; }
i=0
for d in "$@"; do
  ( bash benchmarks/debug/build_wgmma_tool.sh "$(tool_of "$d")" "$d/csrc" "/tmp/cmp_ww_$i" > "/tmp/cmp_ww_$i.log" 2>&1 \
      || echo "build failed: $d" ) &
  i=$((i + 1))
done
wait
# name | environment | K N M
CONFIGS=(
  "plain 256|QUANTDLLM_WAVES_X=1|4096 12288 256"
  "one t 256|QUANTDLLM_WAVES_TS=one|4096 12288 256"
  "per-row t 256|QUANTDLLM_WAVES_TS=rows|4096 12288 256"
  "sq per-row t 256|QUANTDLLM_WAVES_TS=rows|4096 4096 256"
  "sq plain 256|QUANTDLLM_WAVES_X=1|4096 4096 256"
  "pair 256|QUANTDLLM_WAVES_PERMUTE=1|4096 12288 256"
  "pair 512|QUANTDLLM_WAVES_PERMUTE=1|4096 12288 512"
  "pair 1024|QUANTDLLM_WAVES_PERMUTE=1|4096 12288 1024"
  "sq pair 256|QUANTDLLM_WAVES_PERMUTE=1|4096 4096 256"
  "sq 512|QUANTDLLM_WAVES_X=1|4096 4096 512"
  "sq pair 512|QUANTDLLM_WAVES_PERMUTE=1|4096 4096 512"
  "nat 256|QUANTDLLM_WAVES_XNAT=1|4096 12288 256"
  "nat 512|QUANTDLLM_WAVES_XNAT=1|4096 12288 512"
  "nat 1024|QUANTDLLM_WAVES_XNAT=1|4096 12288 1024"
  "sq nat 256|QUANTDLLM_WAVES_XNAT=1|4096 4096 256"
  "sq nat 512|QUANTDLLM_WAVES_XNAT=1|4096 4096 512"
  "tall nat 512|QUANTDLLM_WAVES_XNAT=1|12288 4096 512"
  "sq per-row nat 256|QUANTDLLM_WAVES_XNAT=1 QUANTDLLM_WAVES_TS=rows|4096 4096 256"
  "nat 128|QUANTDLLM_WAVES_XNAT=1|4096 12288 128"
  "plain 128|QUANTDLLM_WAVES_X=1|4096 12288 128"
  "sq nat 128|QUANTDLLM_WAVES_XNAT=1|4096 4096 128"
  "sq plain 128|QUANTDLLM_WAVES_X=1|4096 4096 128"
  "nat 64|QUANTDLLM_WAVES_XNAT=1|4096 12288 64"
  "plain 64|QUANTDLLM_WAVES_X=1|4096 12288 64"
  "sq per-row t 32|QUANTDLLM_WAVES_TS=rows|4096 4096 32"
  "sq plain 32|QUANTDLLM_WAVES_X=1|4096 4096 32"
  "sq per-row t 256 s0|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WGMMA_TS_SHIFT=0|4096 4096 256"
  "sq per-row t 256 s1|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WGMMA_TS_SHIFT=1|4096 4096 256"
  "sq per-row t 256 s2|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WGMMA_TS_SHIFT=2|4096 4096 256"
  "sq per-row t 256 s3|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WGMMA_TS_SHIFT=3|4096 4096 256"
  "sq per-row t 32 s0|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WGMMA_TS_SHIFT=0|4096 4096 32"
  "sq per-row t 32 s1|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WGMMA_TS_SHIFT=1|4096 4096 32"
  "sq per-row t 32 s2|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WGMMA_TS_SHIFT=2|4096 4096 32"
  "sq per-row t 32 s3|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WGMMA_TS_SHIFT=3|4096 4096 32"
  "tall pair 512|QUANTDLLM_WAVES_PERMUTE=1|12288 4096 512"
  "pair 1024 b2b|QUANTDLLM_WAVES_PERMUTE=1 QUANTDLLM_WAVES_SUSTAINED=1|4096 12288 1024"
  "per-row pair 256|QUANTDLLM_WAVES_PERMUTE=1 QUANTDLLM_WAVES_TS=rows|4096 12288 256"
  "sq per-row pair 256|QUANTDLLM_WAVES_PERMUTE=1 QUANTDLLM_WAVES_TS=rows|4096 4096 256"
  "sq per-row 256 noflush|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WAVES_NOFLUSH=1|4096 4096 256"
  "per-row 256 noflush|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WAVES_NOFLUSH=1|4096 12288 256"
  "sq plain 256 noflush|QUANTDLLM_WAVES_X=1 QUANTDLLM_WAVES_NOFLUSH=1|4096 4096 256"
  "sq one t 256|QUANTDLLM_WAVES_TS=one|4096 4096 256"
  "sq per-row nat 256 s0|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WAVES_XNAT=1 QUANTDLLM_WGMMA_TS_SHIFT=0|4096 4096 256"
  "sq per-row nat 256 s1|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WAVES_XNAT=1 QUANTDLLM_WGMMA_TS_SHIFT=1|4096 4096 256"
  "sq per-row nat 256 s2|QUANTDLLM_WAVES_TS=rows QUANTDLLM_WAVES_XNAT=1 QUANTDLLM_WGMMA_TS_SHIFT=2|4096 4096 256"
  "sq nat 512 bn128|QUANTDLLM_WAVES_XNAT=1 QUANTDLLM_WGMMA_BN=128 QUANTDLLM_WGMMA_KSPLIT=1|4096 4096 512"
  "sq plain 512 bn128|QUANTDLLM_WAVES_X=1 QUANTDLLM_WGMMA_BN=128 QUANTDLLM_WGMMA_KSPLIT=1|4096 4096 512"
  "tall nat 512 bn128|QUANTDLLM_WAVES_XNAT=1 QUANTDLLM_WGMMA_BN=128 QUANTDLLM_WGMMA_KSPLIT=1|12288 4096 512"
  "nat 512 bn128|QUANTDLLM_WAVES_XNAT=1 QUANTDLLM_WGMMA_BN=128|4096 12288 512"
  "nat 1024 bn128|QUANTDLLM_WAVES_XNAT=1 QUANTDLLM_WGMMA_BN=128|4096 12288 1024"
  "sq nat 1024 bn128|QUANTDLLM_WAVES_XNAT=1 QUANTDLLM_WGMMA_BN=128|4096 4096 1024"
  "sq nat 1024|QUANTDLLM_WAVES_XNAT=1|4096 4096 1024"
)
OUTF=${OUT:-/tmp}/compare_trees.txt
: > "$OUTF.raw"
for r in $(seq 1 "$ROUNDS"); do
  for c in "${CONFIGS[@]}"; do
    IFS='|' read -r name envs shape <<< "$c"
    [[ -z "${ONLY:-}" || "$name" =~ ${ONLY} ]] || continue  # ONLY: a regex over the names below
    for j in $(seq 0 $((i - 1))); do
      [ -x "/tmp/cmp_ww_$j" ] || continue
      res=$(env $envs "/tmp/cmp_ww_$j" $shape "${BITS:-4}" 2>&1)
      us=$(echo "$res" | sed -n 's/^untraced, [^:]*: \([0-9.]*\) us.*/\1/p')
      # kind, then the phases from the prologue on (a tree whose tool prints the sum's parts gives 4 more)
      phases=$(echo "$res" | awk '$2 == "whole" || $2 == "slice" {o = $2; for (f = 7; f <= NF; ++f) o = o " " $f; print o; exit}')
      pro=$(echo "$res" | sed -n 's/^prologue, //p')  # the prologue's parts (trace stamps 13-15), where printed
      echo "$r|$name|$j|$us|$phases|$pro" >> "$OUTF.raw"
    done
  done
done
python3 - "$OUTF.raw" "$@" <<'PY' | tee "$OUTF"
import os, statistics, sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1]) if l.strip()]
trees = sys.argv[2:]
names = list(dict.fromkeys(r[1] for r in rows))
print("median us per launch over rounds (L2 flushed); phases of the last round: kind prolog loop stage store sum"
      " [skew loads ystore exit: the sum's parts, where the tree's tool has them]")
for j, t in enumerate(trees):
    print(f"  [{j}] {t}")
for n in names:
    cells = []
    for j in range(len(trees)):
        v = [float(r[3]) for r in rows if r[1] == n and r[2] == str(j) and r[3]]
        last = [r[4] for r in rows if r[1] == n and r[2] == str(j)]
        cells.append(f"[{j}] {statistics.median(v):7.2f}" if v else f"[{j}]   n/a ")
        cells[-1] += f" ({last[-1]})" if last else ""
    print(f"{n:>18}: " + " | ".join(cells))
    if os.environ.get("PROLOGUE") == "1":  # PROLOGUE=1: each tree's prologue parts, last round
        for j in range(len(trees)):
            pro = [r[5] for r in rows if r[1] == n and r[2] == str(j) and len(r) > 5 and r[5]]
            if pro:
                print(f"{'':>20}[{j}] prologue {pro[-1]}")
PY
