#!/usr/bin/env bash
# Every GPU check the issues ask for, in one call on a lent CUDA machine (it has CuPy,
# NumPy, SciPy, pytest and Hypothesis, and no package registry), most important first,
# each step bounded so that the whole stays under one call's 600 s:
#
#   run(command="bash benchmarks/gpu_device_check.sh", timeout_s=600)
#
# Writes to $OUT (the device tool's folder; ./gpu_out elsewhere): device.txt,
# pytest_gpu.txt, check_gpu.txt, results_gpu.md (+ bench_gpu.log), pytest_gpu_rest.txt.  Copy the figures, with
# the device's name, into benchmarks/RESULTS.md.
set -u
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
export PYTHONPATH=.
{
  date -u
  nvidia-smi -L 2>&1 || echo "nvidia-smi not found"
  python3 -c "import cupy, numpy, scipy; print('cupy', cupy.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__); print(cupy.cuda.runtime.getDeviceProperties(0)['name'])"
  git log --oneline -1 2>/dev/null
} > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

START=$(date +%s)
left() { echo $(( 560 - ($(date +%s) - START) )); }

# 1. the gpu-marked tests, a first pass that fits: every rule at one matrix in float64 and
#    complex64 (against the CPU and finite differences, to second order) and the tests that
#    are not per rule.  CuPy compiles each elementwise kernel on first use: the first
#    minutes.  SIGINT at the limit, so that pytest still prints the failures it has seen
timeout -s INT -k 20 200 python3 -m pytest -m gpu -q -rf -p no:cacheprovider \
  -k "not rule_on_gpu or (single and (float64 or complex64))" > "$OUT/pytest_gpu.txt" 2>&1
echo "pytest -m gpu (first pass): rc=$? (124: timed out; the counts above are of the tests that ran)" \
  | tee -a "$OUT/pytest_gpu.txt"
tail -3 "$OUT/pytest_gpu.txt"

# 2. the command line's check on the device, first order (second order doubles the time)
timeout -s INT -k 10 80 python3 -m linalgad check --device gpu --order 1 > "$OUT/check_gpu.txt" 2>&1
echo "check --device gpu: rc=$? (124: timed out)" | tee -a "$OUT/check_gpu.txt"
tail -2 "$OUT/check_gpu.txt"

# 3. the GPU benchmark: ratios to CuPy's forward, and device against CPU gradients
timeout -s INT -k 10 150 python3 benchmarks/bench_gpu.py --budget 110 --out "$OUT/results_gpu.md" \
  > "$OUT/bench_gpu.log" 2>&1
echo "bench_gpu: rc=$? (124: timed out)" | tee -a "$OUT/bench_gpu.log"
tail -40 "$OUT/results_gpu.md" 2>/dev/null

# 4. what time is left: the other dtypes and the stacks (the kernels are compiled by now)
if [ "$(left)" -gt 30 ]; then
  timeout -s INT -k 10 "$(( $(left) - 15 ))" python3 -m pytest -m gpu -q -rf -p no:cacheprovider \
    -k "rule_on_gpu and not (single and (float64 or complex64))" > "$OUT/pytest_gpu_rest.txt" 2>&1
  echo "pytest -m gpu (the rest): rc=$? (124: timed out)" | tee -a "$OUT/pytest_gpu_rest.txt"
  tail -3 "$OUT/pytest_gpu_rest.txt"
fi
