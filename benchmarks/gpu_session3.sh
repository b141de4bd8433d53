#!/bin/bash
# Prepared command for a lent device machine (16 CPU cores, no Dask in its image): the calibration of the rate
# interval on the full default study (64 reseeds, widths 2^7..2^14, 16 processes of 4 reseeds each;
# benchmarks/coverage.py) and the grid error of the shipped AR(1) config against M (benchmarks/bench_grid.py).
# Both run on the machine's CPU cores. Evaluate the reseeds afterwards with
#   python benchmarks/coverage.py --full --reseeds 64 --out OUT/coverage_full --finished-only
OUT=${OUT:-results}
mkdir -p "$OUT"
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit 1
python3 -c "import tqdm, matplotlib, numba; print('ok')" || exit 1
for i in $(seq 0 15); do
    NUMBA_NUM_THREADS=1 PYTHONUNBUFFERED=1 timeout 330 python3 benchmarks/coverage.py --full --reseeds 4 \
        --start $((4 * i)) --workers 0 --out "$OUT/coverage_full" > "$OUT/coverage_full_$i.log" 2>&1 &
done
wait
ls "$OUT/coverage_full/runs" | wc -l
grep -v "reseeds:" "$OUT/coverage_full_0.log" | tail -5
PYTHONUNBUFFERED=1 timeout 180 python3 benchmarks/bench_grid.py --grids 2048 4096 8192 --seeds 0 1 \
    --out "$OUT/bench_grid.json" 2>&1 | tee "$OUT/bench_grid.log"
