#!/usr/bin/env bash
# One device call: install carried peer wheels, build/install the package (CUDA extension for
# sm_90a), run the tests (GPU tests included), a compute-sanitizer memcheck of the CUDA kernels,
# then the kernel benchmark. Everything lands in $OUT. Knobs: PYTEST_ARGS (word-split: no spaces inside
# one argument), PYTEST_K (one -k expression, spaces allowed), TEST_TIMEOUT, TEST_TUNE,
# SANITIZE=0, PROFILE=1 (ncu; PROFILE_ARGS for profile_cuda.py), BENCH=0, BENCH_ARGS, BENCH_TIMEOUT, TEST=0, SHARDS=n (parallel pytest processes), EXTRA (a command run after the tests), TRAIN=1 (small dLLM,
# TRAIN_SECONDS), E2E=1 (E2E_ARGS), CALIB=1 (CALIB_ARGS). Carry .prebuilt to reuse an extension
# built by an earlier call from the same sources.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
t0=$(date +%s)
# The CUDA extension is rebuilt only when its sources change: a fresh build is returned under
# $OUT/prebuilt/<hash>/ with KEEP_PREBUILT=1; copied to .prebuilt/ here and carried, the next call reuses it (~60 s).
ARCH=${TORCH_CUDA_ARCH_LIST:-9.0a}
SRC_HASH=$( (echo "$ARCH"; python3 -c "import torch; print(torch.__version__)"; cat setup.py; \
             find csrc -type f | sort | xargs cat) | sha256sum | cut -c1-16)
if [ "$(cat build/.ext_hash 2>/dev/null)" = "$SRC_HASH" ] && ls quantdllm_kernels/_C*.so >/dev/null 2>&1; then
  # a warm machine keeps ignored files: the extension an earlier call built from these sources
  QUANTDLLM_BUILD_EXT=0 python3 -m pip install -v --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1
  echo "build rc=$? in $(( $(date +%s) - t0 )) s (extension $SRC_HASH kept from the last call)"
elif ls .prebuilt/"$SRC_HASH"/_C*.so >/dev/null 2>&1; then
  cp .prebuilt/"$SRC_HASH"/_C*.so quantdllm_kernels/
  QUANTDLLM_BUILD_EXT=0 python3 -m pip install -v --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1
  echo "build rc=$? in $(( $(date +%s) - t0 )) s (prebuilt extension $SRC_HASH reused)"
else
  TORCH_CUDA_ARCH_LIST=$ARCH MAX_JOBS=16 QUANTDLLM_BUILD_EXT=1 \
    python3 -m pip install -v --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1
  rc=$?
  echo "build rc=$rc in $(( $(date +%s) - t0 )) s (extension $SRC_HASH)"
  grep -E "error|registers|spill" "$OUT/build.log" | grep -v "^ *$" > "$OUT/ptxas.txt"
  [ $rc = 0 ] && mkdir -p "$OUT/prebuilt/$SRC_HASH" && cp quantdllm_kernels/_C*.so "$OUT/prebuilt/$SRC_HASH/"
  [ $rc = 0 ] && mkdir -p build && echo "$SRC_HASH" > build/.ext_hash
fi
grep -E "error" "$OUT/build.log" | head -20
python3 -c "import quantdllm_kernels as q; print('backends', q.available_backends())"
if [ "${TEST:-1}" = 1 ] && [ "${SHARDS:-1}" -gt 1 ]; then
  # The suite is compile-bound (Triton), not GPU-bound: SHARDS pytest processes share the GPU and
  # the CPU cores, each with every SHARDS-th test id; their logs are joined into gpu_tests.log.
  python3 -m pytest ${PYTEST_ARGS:-python_tests} ${PYTEST_K:+-k "$PYTEST_K"} --collect-only -q 2>/dev/null \
    | grep "::" > /tmp/test_ids
  echo "tests collected: $(wc -l < /tmp/test_ids) in $SHARDS shards"
  if [ ! -s /tmp/test_ids ]; then
    # an empty shard list would make every shard run the whole default suite
    echo "no tests collected from '${PYTEST_ARGS:-python_tests}': check the paths"; python3 -m pytest ${PYTEST_ARGS:-python_tests} --collect-only -q 2>&1 | tail -3
  else
  for i in $(seq 0 $(( SHARDS - 1 ))); do
    awk -v n="$SHARDS" -v i="$i" 'NR % n == i' /tmp/test_ids > /tmp/shard_$i
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TORCHINDUCTOR_COMPILE_THREADS=1 QUANTDLLM_TRITON_TUNE=${TEST_TUNE:-0} \
      timeout ${TEST_TIMEOUT:-300} python3 -m pytest -q -rfE -p no:cacheprovider \
      $(cat /tmp/shard_$i) > "$OUT/gpu_tests_shard_$i.log" 2>&1 &   # one thread each: 16 x SHARDS thrashed
  done
  wait
  cat "$OUT"/gpu_tests_shard_*.log > "$OUT/gpu_tests.log"
  grep -hE "^(FAILED|ERROR) " "$OUT"/gpu_tests_shard_*.log | head -30
  python3 - "$OUT" "$SHARDS" <<'PY'
import glob, re, sys
tot, done = {}, 0
for f in sorted(glob.glob(sys.argv[1] + "/gpu_tests_shard_*.log")):
    last = [l for l in open(f) if re.search(r"\d+ (passed|failed|error)", l)]
    if last:
        done += 1
        for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed)", last[-1]):
            tot[k] = tot.get(k, 0) + int(n)
print(f"shards finished: {done}/{sys.argv[2]}; totals: {tot}")
PY
  for f in "$OUT"/gpu_tests_shard_*.log; do echo "$(basename $f): $(tail -1 $f | cut -c1-100)"; done
  fi
elif [ "${TEST:-1}" = 1 ]; then
  QUANTDLLM_TRITON_TUNE=${TEST_TUNE:-0} timeout ${TEST_TIMEOUT:-300} python3 -m pytest ${PYTEST_ARGS:-python_tests} \
    ${PYTEST_K:+-k "$PYTEST_K"} -q 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
fi
[ -n "${EXTRA:-}" ] && bash -c "$EXTRA" 2>&1 | tee "$OUT/extra.log" | tail -40
if [ "${SANITIZE:-1}" = 1 ]; then
  compute-sanitizer --tool memcheck --error-exitcode 3 python3 benchmarks/sanitize_cuda.py > "$OUT/sanitizer.log" 2>&1
  echo "compute-sanitizer memcheck rc=$?"; tail -4 "$OUT/sanitizer.log"
fi
if [ "${PROFILE:-0}" = 1 ]; then
  timeout 120 ncu --section SpeedOfLight --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis \
    -k regex:lut_ python3 benchmarks/profile_cuda.py ${PROFILE_ARGS:-} > "$OUT/ncu.txt" 2>&1
  echo "ncu rc=$?"; grep -E "lut_|Duration|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Stall|DRAM Throughput" "$OUT/ncu.txt" | head -60
fi
if [ "${BENCH:-1}" = 1 ]; then
  timeout ${BENCH_TIMEOUT:-360} python3 benchmarks/bench_kernels.py --out "$OUT" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" | tail -80
fi
if [ "${TRAIN:-0}" = 1 ]; then
  timeout $(( ${TRAIN_SECONDS:-150} * 2 + 60 )) python3 benchmarks/dllm/train_small_dllm.py --seconds ${TRAIN_SECONDS:-150} --out "$OUT" 2>&1 | tee "$OUT/train.log" | tail -8
fi
if [ "${E2E:-0}" = 1 ]; then
  timeout ${E2E_TIMEOUT:-400} python3 benchmarks/bench_e2e.py --out "$OUT" ${E2E_ARGS:-} 2>&1 | tee "$OUT/e2e.log" | tail -14
fi
if [ "${CALIB:-0}" = 1 ]; then
  timeout ${CALIB_TIMEOUT:-540} python3 benchmarks/bench_calibration.py --out "$OUT" ${CALIB_ARGS:-} 2>&1 | tee "$OUT/calib.log" | grep -v "it/s\]" | tail -30
fi
# the device returns only a few files: logs other than the tests' and the benchmark's go in one archive
( cd "$OUT" && tar czf logs.tar.gz --remove-files $(ls build.log ptxas.txt gpu.txt sanitizer.log gpu_tests_shard_*.log \
    2>/dev/null) 2>/dev/null; [ "${KEEP_PREBUILT:-0}" = 1 ] || rm -rf prebuilt )
