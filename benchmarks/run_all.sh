#!/usr/bin/env bash
# Run every benchmark pinned to one core with one thread, and write the results tables.
#   benchmarks/run_all.sh            full run (about an hour: the n = 1024 cells dominate)
#   benchmarks/run_all.sh --quick    smoke run (~70 s), written to results_*.quick.md (git-ignored)
# PYTHON=... overrides the interpreter (default: .venv-bench/bin/python).
set -euo pipefail
QUICK=() SUFFIX=""
case "${1:-}" in
  --quick) QUICK=(--quick) SUFFIX=".quick" ;;  # never overwrites the real results
  "") ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv-bench/bin/python}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# JAX can deadlock on batched linear algebra on this 2-core machine unless pinned.
PIN=(taskset -c 0)
command -v taskset >/dev/null || { echo "warning: taskset not found; pinning in-process only" >&2; PIN=(); }
"${PIN[@]}" "$PY" benchmarks/bench_solve.py --out benchmarks/results_solve${SUFFIX}.md "${QUICK[@]}"
echo
"${PIN[@]}" "$PY" benchmarks/bench_overhead.py --out benchmarks/results_overhead${SUFFIX}.md "${QUICK[@]}"
echo
"${PIN[@]}" "$PY" benchmarks/bench_factorizations.py --out benchmarks/results_factorizations${SUFFIX}.md "${QUICK[@]}"
for b in spectral lstsq matfuncs sylvester norms; do
  echo
  "${PIN[@]}" "$PY" benchmarks/bench_${b}.py --out benchmarks/results_${b}${SUFFIX}.md "${QUICK[@]}"
done
