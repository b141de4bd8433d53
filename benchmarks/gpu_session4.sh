#!/bin/bash
# Prepared command for a lent device machine (its 16 CPU cores; the GPU is not needed): the fluctuation theory's
# predicted constant against 128 seeds per width (benchmarks/fluctuations.py) on the default study, the shipped
# AR(1) study and the default study with the Gaussian initialisation; with SPLIT=1 also the source split against
# alpha and mixing (benchmarks/fluctuations.py --split, which also runs on 2 cores in a minute).
OUT=${OUT:-results}
mkdir -p "$OUT"
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit 1
export PYTHONUNBUFFERED=1
run() { timeout 300 python3 benchmarks/fluctuations.py --seeds 128 --processes 16 --out "$OUT" "$@"; }
run --widths 4096 8192 16384 > "$OUT/default.log" 2>&1
run --config ar1 --widths 2048 4096 > "$OUT/ar1.log" 2>&1
run --init gaussian --widths 4096 16384 > "$OUT/gaussian.log" 2>&1
[ -n "$SPLIT" ] && timeout 120 python3 benchmarks/fluctuations.py --split --out "$OUT" > "$OUT/split.log" 2>&1
tail -n 8 "$OUT"/*.log
