#!/usr/bin/env bash
# One device call: install carried peer wheels, build/install the package, run all tests (GPU
# tests included), then the kernel benchmark. Everything lands in $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
python3 -m pip install -q --no-build-isolation --no-deps -e . 2>&1 | tail -2
QUANTDLLM_TRITON_TUNE=${TEST_TUNE:-0} timeout ${TEST_TIMEOUT:-300} python3 -m pytest python_tests -q -x ${PYTEST_ARGS:-} 2>&1 | tee "$OUT/gpu_tests.log" | tail -15
timeout ${BENCH_TIMEOUT:-360} python3 benchmarks/bench_kernels.py --out "$OUT" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" | tail -80
