#!/bin/bash
# The GPU benchmark as one prepared command for a lent GPU machine (the project's device tool):
#   bash benchmarks/gpu_run.sh [bench_gpu.py options]
# Installs this checkout without dependencies (the machine's image has JAX with CUDA, Numba, NumPy, SciPy),
# prints the device, runs benchmarks/bench_gpu.py, and leaves the log and the JSON in $OUT (or results/).
set -o pipefail
OUT=${OUT:-results}
mkdir -p "$OUT"
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, numba, numpy; print('jax', jax.__version__, jax.devices(), 'numba', numba.__version__, 'numpy', numpy.__version__)"
PYTHONUNBUFFERED=1 python3 benchmarks/bench_gpu.py --out "$OUT/bench_gpu.json" "$@" 2>&1 | tee "$OUT/bench_gpu.log"
